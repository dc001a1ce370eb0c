"""Once Postgres has a booking, Redis lets go of its record (ack.lua): status, cancel and
hold confirm/release then read it from Postgres, and nothing changes for the caller."""

from __future__ import annotations

import asyncio

from engine.errors import Code, EngineError
from engine.holds import Holds
from engine.records import is_record, tombstone_version
from persistence.persister import Persister
from tests.support import auth, insert_users
from tests.test_api_bookings import available, create_event
from tests.test_persister import make_event


async def test_persisted_records_leave_redis_and_postgres_has_each_latest_version(
    pool, engine, persister: Persister, keys
):
    event_id = await make_event(pool, engine, capacity=50)
    users = await insert_users(pool, 30)
    booked = [(await engine.book(event_id, u)).record for u in users[:20]]
    for record in booked[:5]:
        await engine.cancel(record.id, record.user_id)
    holds = Holds(engine)
    held = [(await holds.hold(event_id, u, 1, 60_000, 600_000)).record for u in users[20:]]
    assert await persister.drain_once() == 20 + 5 + 10
    remaining = await engine.redis.hgetall(keys.event(event_id).shard_keys.bookings)
    records = {int(i) for i, raw in remaining.items() if is_record(raw)}
    assert records == {h.id for h in held}  # live holds stay
    tombstones = {
        int(i): tombstone_version(raw)
        for i, raw in remaining.items()
        if i not in {str(h.id).encode() for h in held}
    }
    assert tombstones == {r.id: 2 if r in booked[:5] else 1 for r in booked}  # the versions
    latest = {r.id: r for r in engine.journal}  # every version this engine produced, in order
    rows = await pool.fetch("SELECT id, status, version FROM bookings")
    assert {(r["id"], r["status"], r["version"]) for r in rows} == {
        (r.id, r.status, r.version) for r in latest.values()
    }


async def test_cancel_and_status_after_eviction(client, accounts, persister: Persister, services):
    _, admin = await accounts.admin()
    (_, owner), (_, other) = await accounts.make(2)
    event_id = await create_event(client, admin, capacity=3)
    booked = await (await client.post(f"/api/bookings/{event_id}/book", headers=auth(owner))).json()
    await persister.drain_once()
    shard = services.keys.event(event_id).shard_keys
    booking_id = booked["booking"]["id"]
    assert await services.redis.hget(shard.bookings, str(booking_id)) == b"1"  # a tombstone
    status = await (await client.get(booked["statusEndpoint"])).json()
    assert status["persisted"] is True and status["result"]["bookingStatus"] == "CONFIRMED"
    forbidden = await client.delete(f"/api/bookings/{booking_id}/cancel", headers=auth(other))
    assert forbidden.status == 403
    ok, again = await asyncio.gather(
        client.delete(f"/api/bookings/{booking_id}/cancel", headers=auth(owner)),
        client.delete(f"/api/bookings/{booking_id}/cancel", headers=auth(owner)),
    )
    assert sorted([ok.status, again.status]) == [200, 409]  # restocked exactly once
    assert await available(client, event_id) == 3
    await persister.drain_once()
    row = await services.pool.fetchrow(
        "SELECT status, version FROM bookings WHERE id = $1", booking_id
    )
    assert (row["status"], row["version"]) == ("CANCELLED", 2)
    status = await (await client.get(booked["statusEndpoint"])).json()
    assert status["result"]["bookingStatus"] == "CANCELLED"


async def test_a_lapsed_hold_evicted_after_expiry_still_refuses_confirmation(
    pool, engine, persister: Persister
):
    event_id = await make_event(pool, engine, capacity=5)
    [user] = await insert_users(pool, 1)
    holds = Holds(engine)
    hold = (await holds.hold(event_id, user, 1, 1, 600_000)).record
    await asyncio.sleep(0.01)
    await persister.drain_once()  # expires it, then persists and evicts the EXPIRED record
    sk = engine.keys.event(event_id).shard_keys
    assert await engine.redis.hget(sk.bookings, str(hold.id)) == b"2"  # EXPIRED's tombstone
    try:
        await holds.confirm(hold.job_id, user)
    except EngineError as exc:
        assert exc.code is Code.HOLD_EXPIRED
    else:
        raise AssertionError("a lapsed hold was confirmed")
    inventory = (await engine.inventories([event_id]))[event_id]
    assert (inventory.available, inventory.held, inventory.sold) == (5, 0, 0)


async def test_redis_memory_per_persisted_booking_is_small(pool, engine, persister: Persister):
    """DESIGN §6: <= 200 bytes per booking once persisted (measured: what stays in Redis)."""
    event_id = await make_event(pool, engine, capacity=2000)
    users = await insert_users(pool, 2000)
    before = await engine.redis.memory_usage(engine.keys.event(event_id).users) or 0
    for u in users:
        await engine.book(event_id, u)
    await persister.drain_once()
    ek = engine.keys.event(event_id)
    kept = 0
    for key in (ek.users, ek.shard_keys.bookings):
        kept += await engine.redis.memory_usage(key) or 0
    per_booking = (kept - before) / len(users)
    print(f"redis bytes per persisted booking: {per_booking:.0f}")
    assert per_booking <= 200


async def test_a_record_changed_after_its_claim_stays_until_its_new_version_is_persisted(
    pool, engine, persister: Persister, keys
):
    """ack.lua evicts only what is still the live version: the persister names records by
    their place in the in-flight batch, and a cancel made meanwhile must survive the ack."""
    from engine.records import decode_record

    event_id = await make_event(pool, engine, capacity=5)
    [user] = await insert_users(pool, 1)
    record = (await engine.book(event_id, user)).record
    shard = keys.shard_of_booking(record.id)
    bookings = keys.shard(shard).bookings
    await persister.leases.take_all()
    try:
        assert await persister._claim(shard)  # the CONFIRMED version is now in flight
        await engine.cancel(record.id, user)  # a newer version, in the hash and the outbox
        assert await persister.flush_shard(shard) == 1  # the in-flight batch, written and acked
        live = await engine.redis.hget(bookings, str(record.id))
        assert live is not None and decode_record(live).status == "CANCELLED"
        assert await persister.flush_shard(shard) == 1  # the cancel itself
        assert await engine.redis.hget(bookings, str(record.id)) == b"2"  # the cancel's tombstone
    finally:
        await persister.leases.release_all()


async def test_a_dead_lettered_booking_stays_readable_in_redis(pool, engine, persister, keys):
    """A confirmed record Postgres refuses (here: its user is gone, a foreign key) goes to the
    dead letters and must stay in the bookings hash: Postgres does not have it, so evicting it
    would make its status answer 404 and its cancel "not found" until it is re-driven."""
    event_id = await make_event(pool, engine, capacity=10)
    (user,) = await insert_users(pool, 1)
    kept = (await engine.book(event_id, user)).record
    orphan = (await engine.book(event_id, 999_999)).record  # no such user
    assert await persister.drain_once() == 2
    bookings = keys.event(event_id).shard_keys.bookings
    assert await engine.redis.hget(bookings, str(kept.id)) == b"1"  # persisted: a tombstone
    assert await engine.get_booking(orphan.id) == orphan  # dead-lettered: still in Redis
    assert await engine.redis.llen(keys.event(event_id).shard_keys.dead) == 1
