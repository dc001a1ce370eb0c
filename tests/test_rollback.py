"""Redis restarting onto an older snapshot of itself (an RDB taken a while ago, a lagging
replica promoted): nothing oversold, nothing persisted lost, no id reused, no stale hold
coming back, and the counters exact after recovery (DESIGN invariant 7).

Each test runs on a private, RDB-only redis-server: SAVE takes the snapshot, then more is
sold and persisted, then the server is SIGKILLed and started again on the snapshot."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from api.app import init_app
from api.context import SERVICES, Services
from api.embedded import free_port
from engine.booking import Engine
from engine.config import Config
from engine.keys import KeySpace
from engine.redis_client import connect
from persistence import queries
from persistence.expirer import Expirer
from persistence.persister import Persister
from persistence.reconcile import Reconciler
from tests.redisserver import RedisServer
from tests.support import BOXOFFICE, ROOT, Proc, auth, drained, env_of, wait_http
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
        "SELECT coalesce(sum(seats), 0) FROM bookings WHERE event_id = $1 AND status = 'CONFIRMED'",
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


@dataclass
class Storm:
    """Clients of two API processes that keep every 2xx answer: booking id -> (user, jobId,
    seats, the status it must end with). A 503 (recovery under way) is retried."""

    session: aiohttp.ClientSession
    urls: list[str]
    event_id: int = 0
    answered: dict[int, tuple[int, str, int, str]] = field(default_factory=dict)

    async def call(self, i: int, method: str, path: str, token: str, **kw: Any) -> Any:
        deadline = time.monotonic() + 20
        while True:
            async with self.session.request(
                method, self.urls[i % 2] + path, headers=auth(token), **kw
            ) as response:
                body = await response.json()
                if response.status != 503 or time.monotonic() > deadline:
                    return response.status, body

    def answer(self, booking_id: int, user_id: int, job_id: str, seats: int, final: str) -> None:
        assert booking_id not in self.answered, "an id answered twice"
        self.answered[booking_id] = (user_id, job_id, seats, final)

    async def book(self, i: int, user: tuple[int, str]) -> int | None:
        status, body = await self.call(i, "POST", f"/api/bookings/{self.event_id}/book", user[1])
        if status != 202:
            assert status == 409 and body["code"] == "SOLD_OUT", body
            return None
        self.answer(body["booking"]["id"], user[0], body["jobId"], 1, "CONFIRMED")
        return int(body["booking"]["id"])

    async def cancel(self, i: int, user: tuple[int, str], booking_id: int | None) -> None:
        assert booking_id is not None
        status, body = await self.call(i, "DELETE", f"/api/bookings/{booking_id}/cancel", user[1])
        assert status == 200, body
        self.answered[booking_id] = (*self.answered[booking_id][:3], "CANCELLED")

    async def hold(self, i: int, user: tuple[int, str], then: str) -> None:
        """Hold, then confirm, release, or let it lapse."""
        path = f"/api/bookings/{self.event_id}/hold"
        status, body = await self.call(i, "POST", path, user[1], json={"ttlSeconds": 2})
        if status != 201:
            assert status == 409 and body["code"] == "SOLD_OUT", body
            return
        final = {"confirm": "CONFIRMED", "release": "RELEASED", "lapse": "EXPIRED"}[then]
        self.answer(body["bookingId"], user[0], body["holdId"], 1, final)
        hold = f"/api/bookings/holds/{body['holdId']}"
        if then == "confirm":
            status, body = await self.call(i, "POST", f"{hold}/confirm", user[1])
            assert status == 202 and body["replayed"] is False, body
        elif then == "release":
            status, body = await self.call(i, "DELETE", hold, user[1])
            assert status == 200, body


async def _serve_two_and_persist(config: Config, tmp: Path) -> tuple[list[Proc], list[str]]:
    env = env_of(config, BOXOFFICE_REBUILD_GRACE_MS="300", BOXOFFICE_EPOCH_CHECK_MS="100")
    procs, urls = [], []
    for name in ("a", "b"):
        port = free_port()
        procs.append(Proc(["serve", "--port", str(port)], env, tmp / f"{name}.log"))
        urls.append(f"http://127.0.0.1:{port}")
        await wait_http(f"{urls[-1]}/healthz", procs[-1])
    procs.append(Proc(["persist"], env, tmp / "persist.log"))
    return procs, urls


async def test_a_storm_over_two_processes_after_a_rollback_oversells_and_loses_nothing(
    config, pool, accounts, rollback_redis, tmp_path
):
    """Two API processes and a persister: 80 of 100 seats sold and persisted, 40 of them
    after the snapshot; Redis SIGKILLed and started on the snapshot; then books, holds,
    confirms, releases, lapsing holds and cancels (of bookings the snapshot has, and of
    bookings it lost) over both processes."""
    config = on(config, rollback_redis)
    _, admin = await accounts.admin()
    early, late, crowd = await accounts.make(40), await accounts.make(40), await accounts.make(160)
    redis = connect(rollback_redis.url)
    keys = KeySpace(config.key_prefix, config.shard_count)

    async def persisted() -> bool:
        return await drained(redis, keys)

    procs, urls = await _serve_two_and_persist(config, tmp_path)
    try:
        async with aiohttp.ClientSession() as session:
            storm = Storm(session, urls)
            event = {"name": "Rollback", "venue": "Hall", "time": "2030-01-01T00:00:00Z"}
            status, created = await storm.call(
                0, "POST", "/api/events/create", admin, json={**event, "capacity": 100}
            )
            assert status == 200, created
            storm.event_id = created["id"]
            first = await asyncio.gather(*(storm.book(i, u) for i, u in enumerate(early)))
            await eventually(persisted, 20, "the first 40 persisted")
            await rollback_redis.snapshot()
            second = await asyncio.gather(*(storm.book(i, u) for i, u in enumerate(late)))
            await eventually(persisted, 20, "the next 40 persisted")
            assert None not in first + second

            rollback_redis.roll_back()
            calls = [storm.cancel(i, early[i], first[i]) for i in range(0, 40, 4)]
            calls += [storm.cancel(i, late[i], second[i]) for i in range(0, 40, 4)]
            for i, user in enumerate(crowd):
                then = ("book", "confirm", "release", "lapse")[i % 4]
                calls.append(storm.book(i, user) if then == "book" else storm.hold(i, user, then))
            await asyncio.gather(*calls)
            await asyncio.sleep(2.2)  # every hold left alone has lapsed
            await eventually(
                lambda: _lapsed(redis, keys, storm.event_id), 20, "the lapsed holds returned"
            )
            await eventually(persisted, 20, "the storm persisted")
    finally:
        for proc in procs:
            proc.terminate()
    event_id = storm.event_id
    engine = Engine(redis, keys)
    inv = (await engine.inventories([event_id]))[event_id]
    assert inv is not None and min(inv.available, inv.sold, inv.held) >= 0
    assert inv.available + inv.sold + inv.held == 100 and inv.held == 0
    rows = await pool.fetch(
        "SELECT id, user_id, job_id, seats, status FROM bookings WHERE event_id = $1", event_id
    )
    persisted_rows = {r["id"]: (r["user_id"], r["job_id"], r["seats"], r["status"]) for r in rows}
    assert persisted_rows == storm.answered
    confirmed = sum(r["seats"] for r in rows if r["status"] == "CONFIRMED")
    assert confirmed == inv.sold <= 100
    [drift] = await Reconciler(pool, engine).report([event_id])
    assert not drift.drifted, drift
    await redis.aclose()


async def _lapsed(redis: Any, keys: KeySpace, event_id: int) -> bool:
    inv = (await Engine(redis, keys).inventories([event_id]))[event_id]
    return inv is not None and inv.held == 0


async def test_without_auto_rebuild_the_cli_repair_recovers_a_rolled_back_redis(
    config, pool, accounts, rollback_redis
):
    """BOXOFFICE_AUTO_REBUILD=false: after the rollback nothing sells until an operator runs
    `boxoffice reconcile --repair`, which runs the same recovery; then exactly the seats
    left sell."""
    config = on(config, rollback_redis)
    users = await accounts.make(8)
    _, admin = await accounts.admin()
    async with TestClient(TestServer(init_app(config))) as client:
        svc = client.app[SERVICES]
        svc.watcher.auto_rebuild = False  # after its start-up on the empty private Redis
        event_id = await create_event(client, admin, capacity=4)
        await rollback_redis.snapshot()
        for _, token in users[:3]:
            booked = await client.post(f"/api/bookings/{event_id}/book", headers=auth(token))
            assert booked.status == 202
        await persist_all(svc, pool)
        rollback_redis.roll_back()
        await eventually(lambda: _not_ready(client), 10, "the rollback noticed")
        refused = await client.post(f"/api/bookings/{event_id}/book", headers=auth(users[3][1]))
        assert refused.status == 503 and (await refused.json())["code"] == "INVENTORY_NOT_READY"
        repair = await asyncio.to_thread(
            subprocess.run,
            [*BOXOFFICE, "reconcile", "--repair"],
            env=env_of(config),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert repair.returncode == 0, repair.stderr
        await eventually(lambda: ready(client), 10, "ready after the repair")
        statuses = [
            (await client.post(f"/api/bookings/{event_id}/book", headers=auth(t))).status
            for _, t in users[3:]
        ]
        assert sorted(statuses) == [202, 409, 409, 409, 409]  # 4 seats, 3 sold before
        assert await inventory_of(client, event_id) == (0, 0)


async def _not_ready(client: Any) -> bool:
    return not await ready(client)


# Found by an adversarial review: the persister's hold expirer on a rolled-back Redis.


@asynccontextmanager
async def persisting(redis_url: str, pool: Any, keys: KeySpace) -> AsyncIterator[None]:
    """A persister (with its hold expirer) running all along, on a connection of its own."""
    stop = asyncio.Event()
    redis = connect(redis_url)
    task = asyncio.create_task(Persister(redis, pool, keys, idle_ms=50).run(stop))
    try:
        yield
    finally:
        stop.set()
        await task
        await redis.aclose()


async def _persisted_hold(client: Any, pool: Any, event_id: int, token: str) -> dict[str, Any]:
    """A one-second hold, once Postgres has it."""
    held = await client.post(
        f"/api/bookings/{event_id}/hold", json={"ttlSeconds": 1}, headers=auth(token)
    )
    body: dict[str, Any] = await held.json()
    booking_id = body["bookingId"]
    await eventually(
        lambda: _equals(queries.persisted_version(pool, booking_id), 1), 10, "the hold persisted"
    )
    return body


async def _equals(value: Awaitable[Any], expected: Any) -> bool:
    return await value == expected


async def test_the_expirer_never_lapses_a_hold_whose_confirm_redis_lost(
    config, pool, accounts, rollback_redis
):
    """Capacity 1: a hold (persisted), snapshot, persisting paused, confirm (202: only in
    Redis and the API's journal), the expiry time passes, Redis goes back to the snapshot. A
    persister running all along must not lapse the rolled-back HELD copy before a recovery
    (that EXPIRED version would take the confirm's place in Postgres, and its seat resold)."""
    config = dataclasses.replace(on(config, rollback_redis), epoch_check_ms=500)
    (holder_id, holder), (_, rival) = await accounts.make(2)
    _, admin = await accounts.admin()
    async with TestClient(TestServer(init_app(config))) as client:
        svc = client.app[SERVICES]
        async with persisting(rollback_redis.url, pool, svc.keys):
            event_id = await create_event(client, admin, capacity=1)
            hold = await _persisted_hold(client, pool, event_id, holder)
            await rollback_redis.snapshot()
            await svc.redis.set(svc.keys.persister_paused, "1")  # not in the snapshot
            confirmed = await client.post(
                f"/api/bookings/holds/{hold['holdId']}/confirm", headers=auth(holder)
            )
            assert confirmed.status == 202
            await asyncio.sleep(1.1)  # past the expiry the rolled-back copy carries
            rollback_redis.roll_back()
            await eventually(lambda: ready(client), 20, "recovery")
            late = await retrying(
                lambda: client.post(f"/api/bookings/{event_id}/book", headers=auth(rival))
            )
            assert late.status == 409, await late.text()
            await asyncio.sleep(0.5)  # whatever the expirer would do, it has done
    row = await pool.fetchrow(
        "SELECT user_id, status FROM bookings WHERE id = $1", hold["bookingId"]
    )
    assert (row["user_id"], row["status"]) == (holder_id, "CONFIRMED")


async def test_an_expiry_redis_lost_is_not_made_twice(config, pool, accounts, rollback_redis):
    """Capacity 1: a hold (persisted), snapshot, persisting paused; the expirer lapses it and
    a rival buys the seat (202, only in Redis and the journal); Redis goes back to the
    snapshot, where the hold still holds the seat. After recovery nobody else may buy it,
    however the restored hold ends."""
    config = on(config, rollback_redis)
    (_, holder), (_, rival), (_, third) = await accounts.make(3)
    _, admin = await accounts.admin()
    async with TestClient(TestServer(init_app(config))) as client:
        svc = client.app[SERVICES]
        async with persisting(rollback_redis.url, pool, svc.keys):
            event_id = await create_event(client, admin, capacity=1)
            await _persisted_hold(client, pool, event_id, holder)
            await rollback_redis.snapshot()
            await svc.redis.set(svc.keys.persister_paused, "1")
            await eventually(
                lambda: _equals(inventory_of(client, event_id), (1, 0)), 10, "the hold lapsed"
            )
            bought = await client.post(f"/api/bookings/{event_id}/book", headers=auth(rival))
            assert bought.status == 202
            rollback_redis.roll_back()
            await eventually(lambda: ready(client), 20, "recovery")
            await asyncio.sleep(1.0)  # the expirer has had every chance to lapse it again
            again = await retrying(
                lambda: client.post(f"/api/bookings/{event_id}/book", headers=auth(third))
            )
            assert again.status == 409, await again.text()
            await svc.redis.delete(svc.keys.persister_paused)
            await eventually(lambda: drained(svc.redis, svc.keys), 10, "persisted")
    sold = await pool.fetchval(
        "SELECT count(*) FROM bookings WHERE event_id = $1 AND status = 'CONFIRMED'", event_id
    )
    assert sold == 1


async def test_an_event_deleted_after_the_snapshot_stays_closed(
    config, pool, accounts, rollback_redis
):
    config = on(config, rollback_redis)
    users = await accounts.make(4)
    _, admin = await accounts.admin()
    async with TestClient(TestServer(init_app(config))) as client:
        svc = client.app[SERVICES]
        event_id = await create_event(client, admin, capacity=3)
        booked = await client.post(f"/api/bookings/{event_id}/book", headers=auth(users[0][1]))
        assert booked.status == 202
        await persist_all(svc, pool)
        await rollback_redis.snapshot()
        deleted = await client.delete(
            f"/api/events/{event_id}/delete?force=true", headers=auth(admin)
        )
        assert deleted.status == 200
        await persist_all(svc, pool)
        rollback_redis.roll_back()
        await eventually(lambda: ready(client), 20, "recovery")
        for _, token in users[1:]:
            refused = await retrying(
                lambda t=token: client.post(f"/api/bookings/{event_id}/book", headers=auth(t))
            )
            assert refused.status == 404, await refused.text()
        inv = (await svc.engine.inventories([event_id]))[event_id]
        assert inv is not None and not inv.open and inv.sold == 0
