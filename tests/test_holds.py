"""Two-phase booking (holds) against the real Redis and Postgres: the scripts' checks, 500
concurrent holds on 100 seats, expiry exactly once through an expirer killed -9 (real
`boxoffice persist` processes), confirm racing expiry at the boundary, the HTTP routes, the
history in Postgres, and a rebuild that restores live holds.

Every TTL here is short (milliseconds through the engine, or seconds over HTTP); nothing
asserts on wall-clock durations."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

import pytest
from redis.asyncio import Redis

from engine.booking import Engine, EventSpec
from engine.errors import Code, EngineError
from engine.holds import Holds
from engine.keys import KeySpace
from engine.records import Inventory, Record, decode_record
from persistence.expirer import Expirer
from persistence.reconcile import as_of
from tests.support import Proc, auth, insert_users
from tests.test_api_bookings import available, create_event
from tests.test_persister import make_event
from tests.test_persister_faults import (
    assert_postgres_matches_redis,
    drain_and_stop,
    persist_env,
    seeded,
    wait_for,
)

LONG = 60_000  # ms: a hold that will not lapse during a test
MAX = 600_000


async def inventory(engine: Engine, event_id: int) -> Inventory:
    inv = (await engine.inventories([event_id]))[event_id]
    assert inv is not None
    return inv


async def outbox_records(redis: Redis, keys: KeySpace, event_id: int) -> list[Record]:
    raws = await redis.lrange(keys.event(event_id).shard_keys.outbox, 0, -1)
    return [decode_record(r) for r in raws]


async def expect(code: Code, call: Any) -> EngineError:
    with pytest.raises(EngineError) as err:
        await call
    assert err.value.code is code, err.value
    return err.value


def spec(event_id: int = 1, capacity: int = 10, max_per_user: int = 1) -> EventSpec:
    return EventSpec(event_id, capacity, max_per_user, "Show", "Hall", "2030-01-01T00:00:00+00:00")


# -- the scripts ---------------------------------------------------------------------------


async def test_hold_moves_seats_to_held_and_records_an_expiry(engine, redis, keys):
    await engine.load_event(spec(capacity=5, max_per_user=3))
    result = await Holds(engine).hold(1, 7, 2, LONG, MAX)
    record = result.record
    assert (record.status, record.version, record.seats) == ("HELD", 1, 2)
    assert record.expires_ms == record.confirmed_ms + LONG
    inv = await inventory(engine, 1)
    assert (inv.available, inv.held, inv.sold, inv.capacity) == (3, 2, 0, 5)
    sk = keys.event(1).shard_keys
    assert int(await redis.hget(keys.event(1).users, "7")) == 2
    assert await redis.zscore(sk.holds, str(record.id)) == record.expires_ms
    assert int(await redis.hget(sk.stats, "held")) == 2
    assert await outbox_records(redis, keys, 1) == [record]
    assert KeySpace.shard_of_booking(record.id) == keys.shard_of_event(1)


async def test_ttl_beyond_the_bound_and_bad_seats_are_refused_and_change_nothing(engine):
    await engine.load_event(spec())
    holds = Holds(engine)
    await expect(Code.INVALID_TTL, holds.hold(1, 1, 1, MAX + 1, MAX))
    await expect(Code.INVALID_TTL, holds.hold(1, 1, 1, 0, MAX))
    await expect(Code.INVALID_INPUT, holds.hold(1, 1, 0, LONG, MAX))
    await expect(Code.EVENT_NOT_LOADED, holds.hold(99, 1, 1, LONG, MAX))
    inv = await inventory(engine, 1)
    assert (inv.available, inv.held) == (10, 0)


async def test_per_user_limit_counts_held_and_confirmed_seats(engine):
    await engine.load_event(spec(capacity=20, max_per_user=3))
    holds = Holds(engine)
    held = (await holds.hold(1, 5, 2, LONG, MAX)).record
    await expect(Code.LIMIT_EXCEEDED, engine.book(1, 5, seats=2))  # 2 held + 2 > 3
    await engine.book(1, 5, seats=1)  # 2 held + 1 booked = 3
    await expect(Code.LIMIT_EXCEEDED, holds.hold(1, 5, 1, LONG, MAX))
    await holds.confirm(held.job_id, 5)  # confirmed seats still count
    await expect(Code.LIMIT_EXCEEDED, holds.hold(1, 5, 1, LONG, MAX))
    other = (await holds.hold(1, 6, 3, LONG, MAX)).record
    await holds.release(other.job_id, 6)  # released seats stop counting
    await holds.hold(1, 6, 3, LONG, MAX)
    inv = await inventory(engine, 1)
    assert (inv.sold, inv.held, inv.available) == (3, 3, 14)


async def test_confirm_moves_held_to_sold_once_and_replays(engine, redis, keys):
    await engine.load_event(spec(capacity=4, max_per_user=2))
    holds = Holds(engine)
    held = (await holds.hold(1, 3, 2, LONG, MAX)).record
    await expect(Code.FORBIDDEN, holds.confirm(held.job_id, 4))
    guessed = held.job_id[:-1] + ("0" if held.job_id[-1] != "0" else "1")
    await expect(Code.HOLD_NOT_FOUND, holds.confirm(guessed, 3))
    first = await holds.confirm(held.job_id, 3)
    assert (first.record.status, first.record.version, first.replayed) == ("CONFIRMED", 2, False)
    assert first.record.expires_ms == held.expires_ms
    again = await holds.confirm(held.job_id, 3)
    assert again.replayed and again.record == first.record
    inv = await inventory(engine, 1)
    assert (inv.sold, inv.held, inv.available) == (2, 0, 2)
    sk = keys.event(1).shard_keys
    assert await redis.zcard(sk.holds) == 0
    assert int(await redis.hget(sk.stats, "bookings")) == 1
    assert int(await redis.hget(sk.stats, "held")) == 0
    assert [r.status for r in await outbox_records(redis, keys, 1)] == ["HELD", "CONFIRMED"]
    await expect(Code.NOT_HELD, holds.release(held.job_id, 3))  # confirmed: cancel it instead
    cancelled = await engine.cancel(held.id, 3)  # a confirmed hold cancels like any booking
    assert (cancelled.status, cancelled.expires_ms) == ("CANCELLED", held.expires_ms)


async def test_release_twice_the_second_changes_nothing(engine, redis, keys):
    await engine.load_event(spec(capacity=3))
    holds = Holds(engine)
    held = (await holds.hold(1, 9, 1, LONG, MAX)).record
    await expect(Code.HOLD_NOT_CONFIRMED, engine.cancel(held.id, 9))  # a hold is released
    released = await holds.release(held.job_id, 9)
    assert (released.status, released.version) == ("RELEASED", 2)
    before = (await inventory(engine, 1), await redis.llen(keys.event(1).shard_keys.outbox))
    await expect(Code.ALREADY_RELEASED, holds.release(held.job_id, 9))
    await expect(Code.ALREADY_RELEASED, holds.confirm(held.job_id, 9))
    after = (await inventory(engine, 1), await redis.llen(keys.event(1).shard_keys.outbox))
    assert after == before
    assert before[0].available == 3 and before[0].held == 0
    assert await redis.hget(keys.event(1).users, "9") is None


async def test_expire_is_a_no_op_before_the_expiry_and_after_a_confirm(engine, redis, keys):
    await engine.load_event(spec(capacity=5, max_per_user=5))
    holds = Holds(engine)
    live = (await holds.hold(1, 1, 1, LONG, MAX)).record
    assert await holds.expire(live) is None  # not due: nothing changes
    short = (await holds.hold(1, 2, 1, 30, MAX)).record
    await asyncio.sleep(0.06)
    expired = await holds.expire(short)
    assert expired is not None and (expired.status, expired.version) == ("EXPIRED", 2)
    assert await holds.expire(short) is None  # exactly once
    await expect(Code.HOLD_EXPIRED, holds.confirm(short.job_id, 2))
    await expect(Code.HOLD_EXPIRED, holds.release(short.job_id, 2))
    inv = await inventory(engine, 1)
    assert (inv.available, inv.held) == (4, 1)
    assert await redis.zrange(keys.event(1).shard_keys.holds, 0, -1) == [str(live.id).encode()]


async def test_idempotent_hold_sent_20_times_holds_once(engine):
    await engine.load_event(spec(capacity=5))
    holds = Holds(engine)
    results = await asyncio.gather(*(holds.hold(1, 3, 1, LONG, MAX, "h-1") for _ in range(20)))
    assert len({r.record.job_id for r in results}) == 1
    assert sum(not r.replayed for r in results) == 1
    assert (await inventory(engine, 1)).held == 1
    await engine.book(1, 4, 1, "b-1")
    await expect(Code.IDEMPOTENCY_KEY_REUSED, holds.hold(1, 4, 1, LONG, MAX, "b-1"))
    await expect(Code.IDEMPOTENCY_KEY_REUSED, engine.book(1, 3, 1, "h-1"))


# -- the races -----------------------------------------------------------------------------


async def test_500_concurrent_holds_on_100_seats_expire_exactly_once_through_an_expirer_kill(
    config, pool, redis, keys, tmp
):
    """Exactly 100 of 500 concurrent holds succeed. Their expiries are spread over a few
    seconds; a real persister expires them until it is killed -9 mid-way, a second one takes
    the shard over and finishes. Every seat comes back once: available is 100 again, each hold
    is EXPIRED at version 2 in Redis and in Postgres, nothing more."""
    seed, rng = seeded()
    engine = Engine(redis, keys)
    holds = Holds(engine)
    event_id = await make_event(pool, engine, capacity=100)
    users = await insert_users(pool, 500)

    async def attempt(user: int) -> Record | None:
        await asyncio.sleep(rng.random() / 50)
        try:
            return (await holds.hold(event_id, user, 1, 2000 + rng.randrange(4000), MAX)).record
        except EngineError as exc:
            assert exc.code is Code.SOLD_OUT
            return None

    won = [r for r in await asyncio.gather(*(attempt(u) for u in users)) if r is not None]
    assert len(won) == 100
    inv = await inventory(engine, event_id)
    assert (inv.available, inv.held, inv.sold) == (0, 100, 0)

    env = persist_env(config)

    async def expired_some() -> bool:
        return (await inventory(engine, event_id)).available >= 40

    first = Proc(["persist"], env, tmp / "persist-1.log")
    try:
        await wait_for(expired_some, 30, f"the first expirer to start (seed {seed})")
        first.kill9()
    finally:
        first.terminate()
    at_kill = (await inventory(engine, event_id)).available
    print(f"available when the expirer was killed: {at_kill}")
    assert 40 <= at_kill < 100, f"not killed mid-way (seed {seed})"

    second = Proc(["persist"], env, tmp / "persist-2.log")
    try:

        async def all_back() -> bool:
            return (await inventory(engine, event_id)).available == 100

        await wait_for(all_back, 30, f"every hold to expire:\n{second.output()}")
    finally:
        await drain_and_stop(second, redis, keys)

    inv = await inventory(engine, event_id)
    assert (inv.available, inv.held, inv.sold, inv.capacity) == (100, 0, 0, 100)
    sk = keys.event(event_id).shard_keys
    assert await redis.hlen(keys.event(event_id).users) == 0
    assert await redis.zcard(sk.holds) == 0
    assert int(await redis.hget(sk.stats, "held")) == 0
    assert await assert_postgres_matches_redis(pool, redis, keys) == 100
    rows = await pool.fetch("SELECT id, status, version, expires_at FROM bookings")
    assert {r["id"] for r in rows} == {r.id for r in won}
    assert {(r["status"], r["version"]) for r in rows} == {("EXPIRED", 2)}
    assert all(r["expires_at"] is not None for r in rows)


async def test_confirm_racing_expiry_ends_each_hold_once(pool, redis, keys, persister):
    """300 holds of 40 ms, each confirmed around its expiry while an expirer sweeps the shard
    without pause: each ends CONFIRMED (the confirm won) or EXPIRED (the confirm answered
    HOLD_EXPIRED), never both, never neither; the seats add up exactly."""
    _, rng = seeded()
    engine = Engine(redis, keys)
    holds = Holds(engine)
    trials = 300
    event_id = await make_event(pool, engine, capacity=trials)
    users = await insert_users(pool, trials)
    shard = keys.shard_of_event(event_id)
    expirer = Expirer(redis, keys, batch_size=50)
    stop = asyncio.Event()

    async def sweep() -> None:
        while not stop.is_set():
            await expirer.expire_shards([shard])
            await asyncio.sleep(0)

    # Twenty trials at a time keep the event loop's latency small beside a 40 ms TTL, so the
    # confirms land on both sides of the expiry.
    running = asyncio.Semaphore(20)

    async def trial(user: int) -> tuple[int, bool]:
        async with running:
            record = (await holds.hold(event_id, user, 1, 40, MAX)).record
            await asyncio.sleep(rng.uniform(0.02, 0.06))
            try:
                await holds.confirm(record.job_id, user)
                return record.id, True
            except EngineError as exc:
                assert exc.code is Code.HOLD_EXPIRED, exc
                return record.id, False

    sweeper = asyncio.create_task(sweep())
    try:
        outcomes = dict(await asyncio.gather(*(trial(u) for u in users)))

        async def swept() -> bool:
            return await redis.zcard(keys.shard(shard).holds) == 0

        await wait_for(swept, 10, "the expirer to sweep every lapsed hold")
    finally:
        stop.set()
        await sweeper
    confirmed = sum(outcomes.values())
    margins = [r.expires_ms - r.updated_ms for r in await live_records(engine, outcomes, True)]
    lags = [r.updated_ms - r.expires_ms for r in await live_records(engine, outcomes, False)]
    print(
        f"confirmed={confirmed} expired={trials - confirmed};"
        f" closest confirm {min(margins, default=None)} ms before its expiry,"
        f" quickest expiry {min(lags, default=None)} ms after it"
    )
    assert 0 < confirmed < trials, "the race was not exercised: both outcomes must occur"

    history: dict[int, list[str]] = defaultdict(list)
    for record in await outbox_records(redis, keys, event_id):
        history[record.id].append(record.status)
    assert set(history) == set(outcomes)
    for booking_id, won in outcomes.items():
        assert history[booking_id] == ["HELD", "CONFIRMED" if won else "EXPIRED"], booking_id
        live = await engine.get_booking(booking_id)
        assert live is not None and live.status == ("CONFIRMED" if won else "EXPIRED")
    inv = await inventory(engine, event_id)
    assert (inv.sold, inv.held, inv.available) == (confirmed, 0, trials - confirmed)
    assert await redis.hlen(keys.event(event_id).users) == confirmed
    assert expirer.expired == trials - confirmed

    await persister.drain_once()
    rows = await pool.fetch("SELECT id, status, version FROM bookings")
    assert {r["id"]: (r["status"], r["version"]) for r in rows} == {
        i: ("CONFIRMED" if won else "EXPIRED", 2) for i, won in outcomes.items()
    }


async def live_records(engine: Engine, outcomes: dict[int, bool], won: bool) -> list[Record]:
    found = [await engine.get_booking(i) for i, w in outcomes.items() if w is won]
    return [r for r in found if r is not None]


# -- over HTTP -----------------------------------------------------------------------------


async def hold_over_http(client: Any, token: str, event_id: int, **body: Any) -> Any:
    response = await client.post(f"/api/bookings/{event_id}/hold", json=body, headers=auth(token))
    assert response.status == 201, await response.text()
    return await response.json()


async def test_hold_then_confirm_over_http(client, accounts, persister, pool):
    _, admin = await accounts.admin()
    _, user = await accounts.user()
    event_id = await create_event(client, admin, capacity=10, maxPerUser=2)
    held = await hold_over_http(client, user, event_id, seats=2, ttlSeconds=60)
    assert held["seats"] == 2 and held["status"] == "HELD" and held["expiresAt"]
    view = await (await client.get(f"/api/events/{event_id}/view")).json()
    assert (view["available"], view["held"]) == (8, 2)
    listing = await (await client.get("/api/events/view")).json()
    assert (listing["data"][0]["available"], listing["data"][0]["held"]) == (8, 2)
    status = await (await client.get(held["statusEndpoint"])).json()
    assert status["result"]["bookingStatus"] == "HELD"
    assert status["expiresAt"] == held["expiresAt"] and status["jobId"] == held["holdId"]

    response = await client.post(held["confirmEndpoint"], headers=auth(user))
    assert response.status == 202, await response.text()
    body = await response.json()
    for field in ("message", "jobId", "queuePosition", "estimatedWaitTime", "statusEndpoint"):
        assert field in body
    assert body["status"] == "completed" and body["jobId"] == held["holdId"]
    assert body["booking"]["status"] == "CONFIRMED" and body["booking"]["seats"] == 2
    again = await client.post(held["confirmEndpoint"], headers=auth(user))
    assert again.status == 202 and (await again.json())["replayed"] is True
    view = await (await client.get(f"/api/events/{event_id}/view")).json()
    assert (view["available"], view["held"]) == (8, 0)

    await persister.drain_once()
    row = await pool.fetchrow("SELECT status, version, expires_at FROM bookings")
    assert (row["status"], row["version"]) == ("CONFIRMED", 2) and row["expires_at"] is not None
    status = await (await client.get(held["statusEndpoint"])).json()
    assert status["result"]["bookingStatus"] == "CONFIRMED" and status["persisted"] is True


async def test_confirm_after_expiry_is_409_hold_expired(client, accounts, services):
    _, admin = await accounts.admin()
    user_id, user = await accounts.user()
    event_id = await create_event(client, admin, capacity=3)
    record = (await Holds(services.engine).hold(event_id, user_id, 1, 30, MAX)).record
    await asyncio.sleep(0.06)
    response = await client.post(f"/api/bookings/holds/{record.job_id}/confirm", headers=auth(user))
    assert response.status == 409
    body = await response.json()
    assert (body["error"], body["code"]) == ("Hold has expired", "HOLD_EXPIRED")
    assert await available(client, event_id) == 2  # the expirer has not run: still held


async def test_release_twice_over_http_second_is_409_and_changes_nothing(
    client, accounts, services
):
    _, admin = await accounts.admin()
    (_, owner), (_, other) = await accounts.make(2)
    event_id = await create_event(client, admin, capacity=4)
    held = await hold_over_http(client, owner, event_id)
    url = f"/api/bookings/holds/{held['holdId']}"
    forbidden = await client.delete(url, headers=auth(other))
    assert forbidden.status == 403
    first = await client.delete(url, headers=auth(owner))
    assert first.status == 200 and await first.json() == {"message": "Hold released"}
    outbox = services.keys.event(event_id).shard_keys.outbox
    before = (await available(client, event_id), await services.redis.llen(outbox))
    second = await client.delete(url, headers=auth(owner))
    assert second.status == 409 and (await second.json())["code"] == "ALREADY_RELEASED"
    assert (await available(client, event_id), await services.redis.llen(outbox)) == before
    assert before[0] == 4
    confirm = await client.post(f"{url}/confirm", headers=auth(owner))
    assert confirm.status == 409 and (await confirm.json())["code"] == "ALREADY_RELEASED"


async def test_bad_hold_requests_are_4xx(client, accounts):
    _, admin = await accounts.admin()
    _, user = await accounts.user()
    event_id = await create_event(client, admin, capacity=2)
    url = f"/api/bookings/{event_id}/hold"
    too_long = await client.post(url, json={"ttlSeconds": 1801}, headers=auth(user))
    assert too_long.status == 400 and (await too_long.json())["code"] == "INVALID_TTL"
    zero = await client.post(url, json={"ttlSeconds": 0}, headers=auth(user))
    assert zero.status == 400
    anonymous = await client.post(url)
    assert anonymous.status == 401
    missing = await client.post("/api/bookings/999999/hold", headers=auth(user))
    assert missing.status == 404 and (await missing.json())["code"] == "EVENT_NOT_FOUND"
    for hold_id in ("nope", "1-" + "0" * 24):
        response = await client.post(f"/api/bookings/holds/{hold_id}/confirm", headers=auth(user))
        assert response.status == 404 and (await response.json())["code"] == "HOLD_NOT_FOUND"
    await hold_over_http(client, user, event_id)
    second = await client.post(url, headers=auth(user))  # max 1 per user: held counts
    assert second.status == 409 and (await second.json())["code"] == "LIMIT_EXCEEDED"
    assert await available(client, event_id) == 1


async def test_history_of_released_and_expired_holds_reaches_postgres(
    client, accounts, services, persister, pool
):
    _, admin = await accounts.admin()
    (a_id, a), (b_id, _) = await accounts.make(2)
    event_id = await create_event(client, admin, capacity=5)
    released = await hold_over_http(client, a, event_id)
    await persister.drain_once()  # HELD reaches Postgres first
    row = await pool.fetchrow("SELECT status, version, expires_at FROM bookings")
    assert (row["status"], row["version"]) == ("HELD", 1) and row["expires_at"] is not None
    await client.delete(f"/api/bookings/holds/{released['holdId']}", headers=auth(a))
    lapsing = (await Holds(services.engine).hold(event_id, b_id, 1, 20, MAX)).record
    await asyncio.sleep(0.05)
    await persister.drain_once()  # expires the lapsed hold, then writes every version
    rows = {r["user_id"]: r for r in await pool.fetch("SELECT * FROM bookings")}
    assert (rows[a_id]["status"], rows[a_id]["version"]) == ("RELEASED", 2)
    assert (rows[b_id]["status"], rows[b_id]["version"]) == ("EXPIRED", 2)
    assert round(rows[b_id]["expires_at"].timestamp() * 1000) == lapsing.expires_ms
    assert await available(client, event_id) == 5


async def test_admin_figures_show_held_seats(client, accounts):
    _, admin = await accounts.admin()
    users = await accounts.make(3)
    event_id = await create_event(client, admin, capacity=10)
    for _, token in users[:2]:
        await hold_over_http(client, token, event_id)
    await client.post(f"/api/bookings/{event_id}/book", headers=auth(users[2][1]))
    analytics = await (await client.get("/api/admin/analytics", headers=auth(admin))).json()
    [entry] = analytics["utilization"]
    assert (entry["booked"], entry["held"], analytics["totalBookings"]) == (1, 2, 1)
    stats = await (await client.get("/api/admin/queue/stats", headers=auth(admin))).json()
    assert stats["held"] == 2 and sum(s["held"] for s in stats["shards"]) == 2
    assert stats["stats"]["waiting"] == 3  # two HELD records and one booking in the outbox


async def test_forced_delete_releases_live_holds(client, accounts, services):
    _, admin = await accounts.admin()
    (_, a), (_, b) = await accounts.make(2)
    event_id = await create_event(client, admin, capacity=5)
    held = await hold_over_http(client, a, event_id)
    await client.post(f"/api/bookings/{event_id}/book", headers=auth(b))
    refused = await client.delete(f"/api/events/{event_id}/delete", headers=auth(admin))
    assert refused.status == 409 and (await refused.json())["code"] == "HAS_BOOKINGS"
    forced = await client.delete(f"/api/events/{event_id}/delete?force=true", headers=auth(admin))
    assert forced.status == 200, await forced.text()
    inv = await inventory(services.engine, event_id)
    assert (inv.sold, inv.held, inv.available, inv.open) == (0, 0, 5, False)
    record = await Holds(services.engine).find(held["holdId"])
    assert record.status == "RELEASED"


# -- reconciliation ------------------------------------------------------------------------


async def test_reconcile_counts_holds_as_held_and_rebuild_restores_them(
    client, accounts, services, persister
):
    _, admin = await accounts.admin()
    (a_id, a), (_, b), (c_id, _) = await accounts.make(3)
    event_id = await create_event(client, admin, capacity=6, maxPerUser=2)
    await client.post(f"/api/bookings/{event_id}/book", headers=auth(b))
    held = await hold_over_http(client, a, event_id, seats=2, ttlSeconds=60)
    await persister.drain_once()
    lapsing = (await Holds(services.engine).hold(event_id, c_id, 1, 300, MAX)).record
    report = await (await client.get("/api/admin/reconcile", headers=auth(admin))).json()
    [event] = report["events"]
    assert event["drifted"] is False and report["drifted"] == 0
    assert (event["expectedHeld"], event["heldDrift"], event["expectedSold"]) == (3, 0, 1)

    ek = services.keys.event(event_id)
    await services.redis.delete(ek.inventory, ek.users, ek.shard_keys.holds)  # data loss
    repaired = await (await client.post("/api/admin/reconcile", headers=auth(admin))).json()
    assert repaired["repaired"] == [event_id]
    inv = await inventory(services.engine, event_id)
    assert (inv.sold, inv.held, inv.available) == (1, 3, 2)
    assert int(await services.redis.hget(ek.users, str(a_id))) == 2
    holds_key = ek.shard_keys.holds
    assert await services.redis.zscore(holds_key, str(lapsing.id)) == lapsing.expires_ms
    # The rebuilt holds work: one confirms, the lapsing one expires and its seat comes back.
    response = await client.post(held["confirmEndpoint"], headers=auth(a))
    assert response.status == 202, await response.text()
    await asyncio.sleep(0.35)
    await persister.drain_once()
    inv = await inventory(services.engine, event_id)
    assert (inv.sold, inv.held, inv.available) == (3, 0, 3)
    report = await (await client.get("/api/admin/reconcile", headers=auth(admin))).json()
    assert report["drifted"] == 0


async def test_injected_held_drift_is_reported_and_repaired(client, accounts, services):
    _, admin = await accounts.admin()
    _, user = await accounts.user()
    event_id = await create_event(client, admin, capacity=10)
    await hold_over_http(client, user, event_id)
    inventory_key = services.keys.event(event_id).inventory
    await services.redis.hset(inventory_key, mapping={"held": 4, "avail": 6})  # 3 seats stuck
    report = await (await client.get("/api/admin/reconcile", headers=auth(admin))).json()
    [event] = report["events"]
    assert event["drifted"] is True and (event["heldDrift"], event["expectedHeld"]) == (3, 1)
    assert event["drift"]["available"] == -3
    await client.post("/api/admin/reconcile", headers=auth(admin))
    inv = await inventory(services.engine, event_id)
    assert (inv.held, inv.available, inv.sold) == (1, 9, 0)
    report = await (await client.get("/api/admin/reconcile", headers=auth(admin))).json()
    assert report["drifted"] == 0


def test_as_of_takes_a_record_back_to_the_snapshot():
    held = Record(id=1, e=1, u=1, s=1, st="HELD", v=1, j="1-x", t=100, ut=100, x=500)
    expired = Record(id=1, e=1, u=1, s=1, st="EXPIRED", v=2, j="1-x", t=100, ut=600, x=500)
    assert as_of(expired, 700) == expired  # changed before the snapshot: as it is
    assert as_of(expired, 550) == Record(
        id=1, e=1, u=1, s=1, st="HELD", v=1, j="1-x", t=100, ut=600, x=500
    )
    assert as_of(held, 50) is None  # made after the snapshot: not there yet
    cancelled = Record(id=2, e=1, u=1, s=1, st="CANCELLED", v=2, j="2-x", t=100, ut=600)
    back = as_of(cancelled, 550)
    assert back is not None and (back.status, back.version) == ("CONFIRMED", 1)
