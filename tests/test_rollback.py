"""Redis restarting onto an older snapshot of itself (an RDB taken a while ago, a lagging
replica promoted): nothing oversold, nothing persisted lost, no id reused, no stale hold
coming back, and the counters exact after recovery (DESIGN invariant 7).

Each test runs on a private, RDB-only redis-server: SAVE takes the snapshot, then more is
sold and persisted, then the server is SIGKILLed and started again on the snapshot."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from api.app import init_app
from api.context import SERVICES, Services
from engine.config import Config
from engine.redis_client import connect
from persistence.expirer import Expirer
from persistence.persister import Persister
from persistence.reconcile import Reconciler
from tests.redisserver import RedisServer
from tests.support import auth, drained
from tests.test_api_bookings import create_event


class RollbackRedis:
    """A private RDB-only redis-server that can go back in time."""

    def __init__(self, workdir: Path) -> None:
        self.server = RedisServer(workdir, appendonly=False)
        self.dir = workdir

    @property
    def url(self) -> str:
        return self.server.url

    async def snapshot(self) -> None:
        client = connect(self.url)
        try:
            await client.save()
        finally:
            await client.aclose()
        shutil.copy(self.dir / "dump.rdb", self.dir / "snapshot.rdb")

    def roll_back(self) -> None:
        """SIGKILL, then start again on the snapshot (what an AOF-less restart does)."""
        self.server.kill()
        shutil.copy(self.dir / "snapshot.rdb", self.dir / "dump.rdb")
        self.server.start()


@pytest_asyncio.fixture(loop_scope="session")
async def rollback_redis(tmp_path: Path) -> AsyncIterator[RollbackRedis]:
    redis = RollbackRedis(tmp_path / "redis")
    redis.server.start()
    try:
        yield redis
    finally:
        redis.server.stop()


def on(config: Config, redis: RollbackRedis) -> Config:
    return dataclasses.replace(
        config, redis_url=redis.url, rebuild_grace_ms=300, epoch_check_ms=100
    )


async def eventually(check: Callable[[], Awaitable[bool]], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if await check():
                return
        except Exception:  # Redis still restarting
            pass
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def persist_all(svc: Services, pool: Any) -> None:
    persister = Persister(svc.redis, pool, svc.keys)
    await persister.drain_once()
    assert await drained(svc.redis, svc.keys)


async def ready(client: Any) -> bool:
    return (await client.get("/readyz")).status == 200


async def retrying(call: Callable[[], Awaitable[Any]], within: float = 15) -> Any:
    """A client that retries 503s (recovery under way), as the Retry-After asks."""
    deadline = time.monotonic() + within
    while True:
        response = await call()
        if response.status != 503 or time.monotonic() > deadline:
            return response
        await asyncio.sleep(0.05)


async def inventory_of(client: Any, event_id: int) -> tuple[int, int]:
    body = await (await client.get(f"/api/events/{event_id}/view")).json()
    return int(body["available"]), int(body["held"])


async def test_a_hold_confirmed_after_the_snapshot_is_not_handed_out_again(
    config, pool, accounts, rollback_redis
):
    """Capacity 1: hold, snapshot, confirm (persisted), roll back. The snapshot still has the
    HELD record and its expiry; after the TTL nobody else may get the seat."""
    config = on(config, rollback_redis)
    (_, holder), (_, rival) = await accounts.make(2)
    _, admin = await accounts.admin()
    async with TestClient(TestServer(init_app(config))) as client:
        svc = client.app[SERVICES]
        event_id = await create_event(client, admin, capacity=1)
        held = await client.post(
            f"/api/bookings/{event_id}/hold", json={"ttlSeconds": 1}, headers=auth(holder)
        )
        assert held.status == 201
        hold_id = (await held.json())["holdId"]
        await rollback_redis.snapshot()
        confirmed = await client.post(
            f"/api/bookings/holds/{hold_id}/confirm", headers=auth(holder)
        )
        assert confirmed.status == 202
        await persist_all(svc, pool)

        rollback_redis.roll_back()
        await eventually(lambda: ready(client), 15, "recovery")
        await asyncio.sleep(1.2)  # past the hold's TTL
        await Expirer(svc.redis, svc.keys).expire_shards(range(svc.keys.shard_count))
        response = await retrying(
            lambda: client.post(f"/api/bookings/{event_id}/book", headers=auth(rival))
        )
        assert response.status == 409, await response.text()
        assert (await response.json())["code"] == "SOLD_OUT"
        assert await inventory_of(client, event_id) == (0, 0)
        await persist_all(svc, pool)
    sold = await pool.fetchval(
        "SELECT coalesce(sum(seats), 0) FROM bookings WHERE event_id = $1"
        " AND status = 'CONFIRMED'",
        event_id,
    )
    assert sold == 1


async def test_a_hold_taken_after_the_snapshot_still_lapses_back_to_stock(
    config, pool, accounts, rollback_redis
):
    """Capacity 1: snapshot, hold (persisted), roll back: the hold must come back with its
    expiry, keep the seat while it lives, and hand it back when it lapses."""
    config = on(config, rollback_redis)
    (_, holder), (_, buyer) = await accounts.make(2)
    _, admin = await accounts.admin()
    async with TestClient(TestServer(init_app(config))) as client:
        svc = client.app[SERVICES]
        event_id = await create_event(client, admin, capacity=1)
        await persist_all(svc, pool)
        await rollback_redis.snapshot()
        held = await client.post(
            f"/api/bookings/{event_id}/hold", json={"ttlSeconds": 2}, headers=auth(holder)
        )
        assert held.status == 201
        await persist_all(svc, pool)

        rollback_redis.roll_back()
        await eventually(lambda: ready(client), 15, "recovery")
        assert await inventory_of(client, event_id) == (0, 1)  # the hold still holds it
        early = await client.post(f"/api/bookings/{event_id}/book", headers=auth(buyer))
        assert early.status == 409
        await asyncio.sleep(2.1)
        assert await Expirer(svc.redis, svc.keys).expire_shards(range(svc.keys.shard_count)) == 1
        assert await inventory_of(client, event_id) == (1, 0)
        late = await client.post(f"/api/bookings/{event_id}/book", headers=auth(buyer))
        assert late.status == 202, await late.text()


async def test_a_process_that_never_saw_the_old_redis_sells_nothing_on_it(
    config, pool, accounts, rollback_redis
):
    """Bookings made after the snapshot are persisted by a process that then goes away; a
    fresh process starts on the rolled-back Redis. It must not sell on the old counters or
    hand out old ids: the seats sold after the snapshot still count, every new booking gets
    a new id, and Postgres keeps every answered booking as answered."""
    config = on(config, rollback_redis)
    users = await accounts.make(30)
    _, admin = await accounts.admin()
    answered: dict[int, tuple[int, str]] = {}

    async def book(client: Any, event_id: int, user: tuple[int, str]) -> int:
        response = await retrying(
            lambda: client.post(f"/api/bookings/{event_id}/book", headers=auth(user[1]))
        )
        if response.status == 202:
            body = await response.json()
            booking_id = body["booking"]["id"]
            assert booking_id not in answered, "an id answered twice"
            answered[booking_id] = (user[0], body["jobId"])
        return int(response.status)

    async with TestClient(TestServer(init_app(config))) as first:
        svc = first.app[SERVICES]
        event_id = await create_event(first, admin, capacity=20)
        for user in users[:5]:
            assert await book(first, event_id, user) == 202
        await persist_all(svc, pool)
        await rollback_redis.snapshot()
        for user in users[5:15]:
            assert await book(first, event_id, user) == 202
        await persist_all(svc, pool)

    rollback_redis.roll_back()
    async with TestClient(TestServer(init_app(config))) as fresh:
        svc = fresh.app[SERVICES]
        statuses = [await book(fresh, event_id, user) for user in users[15:]]
        assert statuses.count(202) == 5 and statuses.count(409) == 10  # 20 seats, no more
        assert await inventory_of(fresh, event_id) == (0, 0)
        await persist_all(svc, pool)
        report = await Reconciler(pool, svc.engine).report([event_id])
        assert not report[0].drifted, report
    rows = await pool.fetch("SELECT id, user_id, job_id, status FROM bookings")
    assert {r["id"]: (r["user_id"], r["job_id"]) for r in rows} == answered
    assert all(r["status"] == "CONFIRMED" for r in rows)
