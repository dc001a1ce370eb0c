"""Real `boxoffice` processes: two API servers sharing one event, and a persister killed -9
with a batch in flight."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import aiohttp

from engine.booking import Engine, EventSpec
from tests.support import Proc, env_of, insert_users, start_server, stop_and_drain


async def test_no_oversell_across_two_api_processes(config, pool, accounts, services, tmp):
    _, admin = await accounts.admin()
    users = await accounts.make(1000)
    servers = [await start_server(config, tmp, "a"), await start_server(config, tmp, "b")]
    try:
        async with aiohttp.ClientSession() as session:
            body = {"name": "Flash", "venue": "Arena", "time": "2030-01-01T00:00:00Z"}
            created = await session.post(
                f"{servers[0][1]}/api/events/create",
                json={**body, "capacity": 100},
                headers={"Authorization": f"Bearer {admin}"},
            )
            event_id = (await created.json())["id"]

            async def attempt(index: int, token: str) -> tuple[int, str]:
                base = servers[index % 2][1]
                async with session.post(
                    f"{base}/api/bookings/{event_id}/book",
                    headers={"Authorization": f"Bearer {token}"},
                ) as response:
                    payload = await response.json()
                    return response.status, payload.get("status") or payload.get("code")

            outcomes = Counter(
                await asyncio.gather(*(attempt(i, t) for i, (_, t) in enumerate(users)))
            )
        assert outcomes == {(202, "completed"): 100, (409, "SOLD_OUT"): 900}
    finally:
        stop_and_drain(servers, config, tmp)
    confirmed = await pool.fetchval(
        "SELECT count(*) FROM bookings WHERE event_id = $1 AND status = 'CONFIRMED'", event_id
    )
    assert confirmed == 100
    inventory = (await services.engine.inventories([event_id]))[event_id]
    assert (inventory.available, inventory.sold) == (0, 100)


async def _wait_for(predicate: Any, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what}")


async def test_persister_killed_with_a_batch_in_flight_loses_and_doubles_nothing(
    config, pool, redis, keys, tmp
):
    engine = Engine(redis, keys)
    event_id = int(
        await pool.fetchval(
            "INSERT INTO events (name, venue, time, capacity) VALUES ('S','H',now(),5000)"
            " RETURNING id"
        )
    )
    await engine.load_event(EventSpec(event_id, 5000, 1, "S", "H", "t"))
    users = await insert_users(pool, 4000)
    booked = {(await engine.book(event_id, u)).record.id for u in users}
    sk = keys.event(event_id).shard_keys

    env = env_of(config, BOXOFFICE_BATCH_SIZE="100", BOXOFFICE_LEASE_TTL_MS="1000")
    first = Proc(["persist"], env, tmp / "persist-1.log")
    try:
        await _wait_for(lambda: _in_flight(redis, sk.inflight), 30, "a batch in flight")
        first.kill9()
    finally:
        first.terminate()
    assert await redis.llen(sk.inflight) > 0, "the kill should leave a batch in flight"
    persisted_before = await pool.fetchval("SELECT count(*) FROM bookings")
    assert persisted_before < len(booked)

    second = Proc(["persist"], env, tmp / "persist-2.log")
    try:
        await _wait_for(lambda: _drained(redis, sk), 60, "the outbox to drain")
    finally:
        assert second.terminate() == 0, second.output()
    ids = [
        r["id"] for r in await pool.fetch("SELECT id FROM bookings WHERE event_id = $1", event_id)
    ]
    assert len(ids) == len(set(ids)) == len(booked)
    assert set(ids) == booked


async def _in_flight(redis: Any, key: str) -> bool:
    return bool(await redis.llen(key))


async def _drained(redis: Any, sk: Any) -> bool:
    return await redis.llen(sk.outbox) == 0 and await redis.llen(sk.inflight) == 0


async def test_serve_workers_share_one_port_and_stop_together(config, tmp):
    from tests.support import free_port, wait_http

    port = free_port()
    proc = Proc(["serve", "--port", str(port), "--workers", "2"], env_of(config), tmp / "w.log")
    try:
        await wait_http(f"http://127.0.0.1:{port}/healthz", proc)
        prefixes = set()
        for _ in range(300):  # until both workers answer (the second may still be starting)
            # A new connection each time: the kernel spreads them over the workers.
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"http://127.0.0.1:{port}/healthz") as response,
            ):
                assert response.status == 200
                prefixes.add(response.headers["X-Request-Id"].split("-")[0])
            if len(prefixes) == 2:
                break
            await asyncio.sleep(0.05)
        assert len(prefixes) == 2, "every answer came from one process"
    finally:
        assert proc.terminate() == 0, proc.output()
