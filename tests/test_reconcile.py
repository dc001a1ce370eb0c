"""Reconciliation and Redis-loss recovery against real Redis and Postgres."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from api.app import init_app
from api.context import SERVICES
from engine.booking import Engine
from engine.config import Config
from engine.keys import KeySpace
from engine.redis_client import connect
from persistence.persister import Persister
from persistence.reconcile import Reconciler
from tests.redisserver import RedisServer
from tests.support import auth
from tests.test_api_bookings import create_event


async def _report(client: Any, admin: str, query: str = "") -> dict[str, Any]:
    response = await client.get(f"/api/admin/reconcile{query}", headers=auth(admin))
    assert response.status == 200, await response.text()
    return dict(await response.json())


async def test_clean_state_reports_no_drift(client, accounts):
    _, admin = await accounts.admin()
    _, user = await accounts.user()
    event_id = await create_event(client, admin, capacity=5)
    await client.post(f"/api/bookings/{event_id}/book", headers=auth(user))
    body = await _report(client, admin)
    assert body["drifted"] == 0
    [event] = body["events"]
    assert event["redis"] == {"capacity": 5, "available": 4, "sold": 1, "held": 0}
    assert event["postgres"] == {"capacity": 5, "confirmedSeats": 0}
    assert event["outboxPendingSeats"] == 1 and event["expectedSold"] == 1


async def test_injected_available_drift_is_reported_exactly_and_repaired(
    client, accounts, services, persister
):
    _, admin = await accounts.admin()
    users = await accounts.make(3)
    event_id = await create_event(client, admin, capacity=10)
    other = await create_event(client, admin, capacity=10)
    for _, token in users:
        await client.post(f"/api/bookings/{event_id}/book", headers=auth(token))
    await persister.drain_once()
    inventory = services.keys.event(event_id).inventory
    await services.redis.hset(inventory, mapping={"avail": 9, "sold": 1})  # lost 2 sales
    body = await _report(client, admin)
    drifted = [e for e in body["events"] if e["drifted"]]
    assert [e["eventId"] for e in drifted] == [event_id]
    assert drifted[0]["drift"] == {"sold": -2, "available": 2, "capacity": 0}
    repaired = await (await client.post("/api/admin/reconcile", headers=auth(admin))).json()
    assert repaired["repaired"] == [event_id]
    after = await _report(client, admin)
    assert after["drifted"] == 0
    by_id = {e["eventId"]: e for e in after["events"]}
    assert by_id[event_id]["redis"] == {"capacity": 10, "available": 7, "sold": 3, "held": 0}
    assert by_id[other]["redis"]["available"] == 10


async def test_deleted_event_keys_are_rebuilt_with_outbox_records_not_yet_in_postgres(
    client, accounts, services, persister, pool
):
    _, admin = await accounts.admin()
    users = await accounts.make(5)
    event_id = await create_event(client, admin, capacity=10)
    for _, token in users[:2]:
        await client.post(f"/api/bookings/{event_id}/book", headers=auth(token))
    await persister.drain_once()  # two in Postgres
    for _, token in users[2:]:  # three still in the outbox: the persister is "paused"
        await client.post(f"/api/bookings/{event_id}/book", headers=auth(token))
    ek = services.keys.event(event_id)
    await services.redis.delete(ek.inventory, ek.users)  # wipe only the inventory keys
    booking = await client.post(f"/api/bookings/{event_id}/book", headers=auth(users[0][1]))
    assert booking.status == 503 and (await booking.json())["code"] == "INVENTORY_NOT_READY"
    report = await _report(client, admin)
    [event] = report["events"]
    assert event["loaded"] is False and event["drifted"] is True
    assert (event["postgres"]["confirmedSeats"], event["outboxPendingSeats"]) == (2, 3)
    await _report(client, admin, "?repair=true")
    inventory = (await services.engine.inventories([event_id]))[event_id]
    assert (inventory.available, inventory.sold) == (5, 5)
    again = await client.post(f"/api/bookings/{event_id}/book", headers=auth(users[4][1]))
    assert again.status == 409 and (await again.json())["code"] == "LIMIT_EXCEEDED"
    assert (await _report(client, admin))["drifted"] == 0
    await persister.drain_once()
    assert await pool.fetchval("SELECT count(*) FROM bookings") == 5


async def test_user_counts_drift_is_repaired(client, accounts, services):
    _, admin = await accounts.admin()
    (user_id, token), _ = await accounts.make(2)
    event_id = await create_event(client, admin, capacity=10)
    await client.post(f"/api/bookings/{event_id}/book", headers=auth(token))
    users_key = services.keys.event(event_id).users
    await services.redis.hdel(users_key, str(user_id))  # the per-user limit forgot the user
    report = await _report(client, admin)
    assert report["events"][0]["userDrift"] == 1
    await _report(client, admin, "?repair=true")
    assert int(await services.redis.hget(users_key, str(user_id))) == 1
    second = await client.post(f"/api/bookings/{event_id}/book", headers=auth(token))
    assert second.status == 409


async def test_capacity_edits_racing_bookings_never_oversell(client, accounts, services):
    _, admin = await accounts.admin()
    users = await accounts.make(200)
    event_id = await create_event(client, admin, capacity=50)
    body = {"name": "Show", "venue": "Hall", "time": "2030-01-01T20:00:00Z"}

    async def book(token: str) -> int:
        response = await client.post(f"/api/bookings/{event_id}/book", headers=auth(token))
        return response.status

    async def edit(capacity: int) -> int:
        response = await client.put(
            f"/api/events/{event_id}/update",
            json={**body, "capacity": capacity},
            headers=auth(admin),
        )
        return response.status

    capacities = [30, 80, 10, 120, 60, 5, 100]
    results = await asyncio.gather(*(book(t) for _, t in users), *(edit(c) for c in capacities))
    booked = Counter(results[: len(users)])
    edits = results[len(users) :]
    assert set(booked) <= {202, 409} and set(edits) <= {200, 409}
    inventory = (await services.engine.inventories([event_id]))[event_id]
    assert inventory.sold == booked[202]
    assert inventory.sold + inventory.available == inventory.capacity
    assert inventory.available >= 0
    refused = await edit(inventory.sold - 1) if inventory.sold else 409
    assert refused == 409
    assert (await services.engine.inventories([event_id]))[event_id] == inventory


# -- a private Redis that the tests may wipe and crash --------------------------------------


@pytest_asyncio.fixture(loop_scope="session")
async def private_redis(tmp_path: Path) -> AsyncIterator[RedisServer]:
    server = RedisServer(tmp_path / "redis", appendonly=True, fsync="always")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _on(config: Config, server: RedisServer, **extra: Any) -> Config:
    return dataclasses.replace(config, redis_url=server.url, **extra)


async def test_flushall_mid_storm_never_oversells_and_sells_exactly_the_remainder(
    config, pool, accounts, private_redis
):
    config = _on(config, private_redis, rebuild_grace_ms=300, epoch_check_ms=100)
    users = await accounts.make(600)
    _, admin = await accounts.admin()
    capacity = 250
    async with TestClient(TestServer(init_app(config))) as client:
        services = client.app[SERVICES]
        persister = Persister(services.redis, pool, services.keys, idle_ms=5)
        stop = asyncio.Event()
        persisting = asyncio.create_task(persister.run(stop))
        event_id = await create_event(client, admin, capacity=capacity)
        wiper = connect(private_redis.url)
        outcomes: Counter[tuple[int, str]] = Counter()
        pending = list(users)

        async def storm(worker: int) -> None:
            while pending:
                _, token = pending.pop()
                for _attempt in range(50):  # a 503 is retried, as a client would
                    response = await client.post(
                        f"/api/bookings/{event_id}/book", headers=auth(token)
                    )
                    payload = await response.json()
                    outcomes[(response.status, payload.get("status") or payload["code"])] += 1
                    if outcomes[(202, "completed")] >= capacity // 2:
                        half_sold.set()
                    if response.status != 503:
                        break
                    await asyncio.sleep(0.05)

        half_sold = asyncio.Event()

        async def flush_midway() -> None:
            await half_sold.wait()
            await wiper.flushall()

        await asyncio.gather(*(storm(w) for w in range(20)), flush_midway())
        stop.set()
        await persisting
        await wiper.aclose()
        accepted = outcomes[(202, "completed")]
        assert accepted == capacity, outcomes
        assert outcomes[(503, "INVENTORY_NOT_READY")] > 0, outcomes
        assert set(outcomes) <= {
            (202, "completed"),
            (409, "SOLD_OUT"),
            (503, "INVENTORY_NOT_READY"),
        }
        await Persister(services.redis, pool, services.keys).drain_once()
        confirmed = await pool.fetchval(
            "SELECT count(*) FROM bookings WHERE event_id = $1 AND status = 'CONFIRMED'", event_id
        )
        assert confirmed == capacity
        inventory = (await services.engine.inventories([event_id]))[event_id]
        assert (inventory.available, inventory.sold) == (0, capacity)
        ready = await client.get("/readyz")
        assert ready.status == 200


async def test_readyz_turns_false_within_a_second_of_data_loss(config, accounts, private_redis):
    # Rebuild on its own only after a minute: the test sees the gap, then repairs by hand.
    config = _on(config, private_redis, rebuild_grace_ms=60_000)
    async with TestClient(TestServer(init_app(config))) as client:
        assert (await client.get("/readyz")).status == 200
        wiper = connect(private_redis.url)
        await wiper.flushall()
        await wiper.aclose()
        for _ in range(20):
            response = await client.get("/readyz")
            if response.status == 503:
                break
            await asyncio.sleep(0.05)
        body = await response.json()
        assert response.status == 503 and body["checks"]["inventory"] is False
        _, admin = await accounts.admin()
        repaired = await client.post("/api/admin/reconcile", headers=auth(admin))
        assert repaired.status == 200
        assert (await client.get("/readyz")).status == 200


async def test_redis_killed_with_aof_always_loses_no_confirmed_booking(config, pool, private_redis):
    config = _on(config, private_redis)
    client = connect(private_redis.url)
    keys = KeySpace(config.key_prefix, config.shard_count)
    engine = Engine(client, keys)
    event_id = int(
        await pool.fetchval(
            "INSERT INTO events (name, venue, time, capacity) VALUES ('S','H',now(),500)"
            " RETURNING id"
        )
    )
    from engine.booking import EventSpec
    from tests.support import insert_users

    await engine.load_event(EventSpec(event_id, 500, 1, "S", "H", "t"))
    users = await insert_users(pool, 300)
    booked = {(await engine.book(event_id, u)).record.id for u in users}
    await client.aclose()
    private_redis.kill()  # SIGKILL: no shutdown save
    private_redis.start()
    client = connect(private_redis.url)
    engine = Engine(client, keys)
    inventory = (await engine.inventories([event_id]))[event_id]
    assert (inventory.sold, inventory.available) == (300, 200)
    await Persister(client, pool, keys).drain_once()
    rows = await pool.fetch("SELECT id FROM bookings WHERE event_id = $1", event_id)
    assert {r["id"] for r in rows} == booked
    reconciler = Reconciler(pool, engine)
    assert not any(d.drifted for d in await reconciler.report())
    await client.aclose()


@pytest.mark.parametrize("events", [3])
async def test_cli_reconcile_reports_and_repairs(config, pool, redis, keys, tmp, events):
    import subprocess

    from engine.booking import EventSpec
    from tests.support import BOXOFFICE, ROOT, env_of

    engine = Engine(redis, keys)
    for _ in range(events):
        event_id = int(
            await pool.fetchval(
                "INSERT INTO events (name, venue, time, capacity) VALUES ('S','H',now(),5)"
                " RETURNING id"
            )
        )
        await engine.load_event(EventSpec(event_id, 5, 1, "S", "H", "t"))
    await redis.hset(keys.event(event_id).inventory, "avail", 1)
    env = env_of(config)
    report = await asyncio.to_thread(
        subprocess.run,
        [*BOXOFFICE, "reconcile"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert report.returncode == 1
    assert f"event {event_id}: loaded=True sold drift=0 available drift=-4" in report.stdout
    assert "reconcile" in report.stderr  # the progress bar
    fixed = await asyncio.to_thread(
        subprocess.run,
        [*BOXOFFICE, "reconcile", "--repair"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert fixed.returncode == 0, fixed.stderr
    assert f"{events} events, 1 drifted, 1 repaired" in fixed.stdout
    assert (await engine.inventories([event_id]))[event_id].available == 5


async def test_redis_back_from_an_older_snapshot_is_reconciled_before_selling_again(
    config, pool, accounts, tmp_path
):
    """A restart onto older data keeps the epoch, so only the restart gives it away: the
    journal is flushed, sequences raised above every persisted id, counters repaired."""
    import shutil

    server = RedisServer(tmp_path / "redis", appendonly=False)
    server.start()
    try:
        config = _on(config, server, epoch_check_ms=100, rebuild_grace_ms=300)
        users = await accounts.make(7)
        async with TestClient(TestServer(init_app(config))) as client:
            services = client.app[SERVICES]
            admin = services.tokens.issue((await accounts.make(1, "ADMIN"))[0][0], "a", "ADMIN")
            event_id = await create_event(client, admin, capacity=10)
            for _, token in users[:3]:
                await client.post(f"/api/bookings/{event_id}/book", headers=auth(token))
            await services.redis.save()
            shutil.copy(server.dir / "dump.rdb", tmp_path / "older.rdb")
            for _, token in users[3:6]:  # these three exist only in the journal afterwards
                await client.post(f"/api/bookings/{event_id}/book", headers=auth(token))
            server.kill()
            shutil.copy(tmp_path / "older.rdb", server.dir / "dump.rdb")
            server.start()
            for _ in range(100):
                if (await client.get("/readyz")).status == 200:
                    break
                await asyncio.sleep(0.05)
            last = await client.post(f"/api/bookings/{event_id}/book", headers=auth(users[6][1]))
            assert last.status == 202, await last.text()
            inventory = (await services.engine.inventories([event_id]))[event_id]
            assert (inventory.sold, inventory.available) == (7, 3)
            await Persister(services.redis, pool, services.keys).drain_once()
            rows = await pool.fetch(
                "SELECT id, user_id FROM bookings WHERE event_id = $1", event_id
            )
            assert len({r["id"] for r in rows}) == 7 and len({r["user_id"] for r in rows}) == 7
    finally:
        server.stop()
