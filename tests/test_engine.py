"""The Lua engine against the real Redis: each script's checks, its atomicity, its races."""

from __future__ import annotations

import asyncio
import random

import pytest

from engine.booking import Engine, EventSpec
from engine.errors import Code, EngineError
from engine.keys import KeySpace
from engine.records import decode_record


def spec(event_id: int = 1, capacity: int = 10, max_per_user: int = 1) -> EventSpec:
    return EventSpec(event_id, capacity, max_per_user, "Show", "Hall", "2030-01-01T00:00:00+00:00")


async def inventory(engine: Engine, event_id: int = 1):  # type: ignore[no-untyped-def]
    return (await engine.inventories([event_id]))[event_id]


async def test_book_decrements_and_appends_the_record_to_the_outbox(engine: Engine, redis, keys):
    await engine.load_event(spec(capacity=3))
    result = await engine.book(1, user_id=7, seats=1)
    inv = await inventory(engine)
    assert (inv.available, inv.sold) == (2, 1)
    outbox = await redis.lrange(keys.event(1).shard_keys.outbox, 0, -1)
    assert [decode_record(r) for r in outbox] == [result.record]
    assert result.record.status == "CONFIRMED" and result.record.version == 1
    assert KeySpace.shard_of_booking(result.record.id) == keys.shard_of_event(1)


async def test_concurrent_bookings_never_oversell(engine: Engine):
    await engine.load_event(spec(capacity=25))

    async def attempt(user: int) -> bool:
        await asyncio.sleep(random.random() / 100)
        try:
            await engine.book(1, user)
            return True
        except EngineError as exc:
            assert exc.code is Code.SOLD_OUT
            return False

    results = await asyncio.gather(*(attempt(u) for u in range(1, 101)))
    assert sum(results) == 25
    inv = await inventory(engine)
    assert (inv.available, inv.sold, inv.capacity) == (0, 25, 25)


async def test_seats_over_available_are_refused_whole(engine: Engine):
    await engine.load_event(spec(capacity=3, max_per_user=10))
    with pytest.raises(EngineError) as err:
        await engine.book(1, 1, seats=4)
    assert err.value.code is Code.SOLD_OUT
    assert (await inventory(engine)).available == 3


async def test_per_user_limit_counts_seats(engine: Engine):
    await engine.load_event(spec(capacity=10, max_per_user=3))
    await engine.book(1, 5, seats=2)
    with pytest.raises(EngineError) as err:
        await engine.book(1, 5, seats=2)
    assert err.value.code is Code.LIMIT_EXCEEDED
    await engine.book(1, 5, seats=1)
    assert (await inventory(engine)).sold == 3


@pytest.mark.parametrize("seats", [0, -1, 1.5])
async def test_script_refuses_bad_seat_counts(engine: Engine, seats):
    await engine.load_event(spec())
    with pytest.raises(EngineError) as err:
        await engine.book(1, 1, seats=seats)
    assert err.value.code is Code.INVALID_INPUT
    assert (await inventory(engine)).available == 10


async def test_unknown_event_is_not_loaded(engine: Engine):
    with pytest.raises(EngineError) as err:
        await engine.book(99, 1)
    assert err.value.code is Code.EVENT_NOT_LOADED


async def test_idempotency_key_replays_the_first_answer(engine: Engine):
    await engine.load_event(spec(capacity=5))
    results = await asyncio.gather(*(engine.book(1, 3, 1, "key-1") for _ in range(20)))
    assert len({r.record.job_id for r in results}) == 1
    assert sum(not r.replayed for r in results) == 1
    assert (await inventory(engine)).sold == 1


async def test_idempotency_key_on_another_event_is_refused(engine: Engine):
    await engine.load_event(spec(1))
    await engine.load_event(spec(17))  # same shard as 1 with 16 shards
    await engine.book(1, 3, 1, "k")
    with pytest.raises(EngineError) as err:
        await engine.book(17, 3, 1, "k")
    assert err.value.code is Code.IDEMPOTENCY_KEY_REUSED


async def test_cancel_restocks_once_and_checks_the_owner(engine: Engine):
    await engine.load_event(spec(capacity=2))
    booked = (await engine.book(1, 4)).record
    with pytest.raises(EngineError) as err:
        await engine.cancel(booked.id, actor_id=5)
    assert err.value.code is Code.FORBIDDEN
    cancelled = await engine.cancel(booked.id, actor_id=4)
    assert cancelled.status == "CANCELLED" and cancelled.version == 2
    with pytest.raises(EngineError) as err:
        await engine.cancel(booked.id, actor_id=4)
    assert err.value.code is Code.ALREADY_CANCELLED
    inv = await inventory(engine)
    assert (inv.available, inv.sold) == (2, 0)
    await engine.book(1, 4)  # the user may book again after cancelling


async def test_load_refuses_to_overwrite_live_inventory(engine: Engine):
    await engine.load_event(spec(capacity=5))
    await engine.book(1, 1)
    with pytest.raises(EngineError) as err:
        await engine.load_event(spec(capacity=5))
    assert err.value.code is Code.ALREADY_LOADED
    assert (await inventory(engine)).available == 4


async def test_capacity_change_by_difference_and_never_below_sold(engine: Engine):
    await engine.load_event(spec(capacity=5, max_per_user=5))
    await engine.book(1, 1, seats=3)
    assert await engine.update_event(spec(capacity=8, max_per_user=5)) == 5
    with pytest.raises(EngineError) as err:
        await engine.update_event(spec(capacity=2, max_per_user=5))
    assert err.value.code is Code.CAPACITY_BELOW_SOLD
    inv = await inventory(engine)
    assert (inv.capacity, inv.available, inv.sold) == (8, 5, 3)


async def test_close_refuses_with_live_bookings_unless_forced(engine: Engine):
    await engine.load_event(spec())
    await engine.book(1, 1)
    with pytest.raises(EngineError) as err:
        await engine.close_event(1)
    assert err.value.code is Code.HAS_BOOKINGS
    assert await engine.close_event(1, force=True) == 1
    with pytest.raises(EngineError) as err:
        await engine.book(1, 2)
    assert err.value.code is Code.EVENT_CLOSED
    assert [r.user_id for r in await engine.live_bookings(1)] == [1]


async def test_booking_ids_are_unique_across_shards(engine: Engine):
    for event_id in range(1, 6):
        await engine.load_event(spec(event_id))
    ids = [(await engine.book(e, u)).record.id for e in range(1, 6) for u in range(1, 4)]
    assert len(set(ids)) == len(ids)


async def test_wait_durability_counts_bookings_no_replica_acknowledged(redis, keys):
    """This Redis has no replica: WAIT 1 times out, the booking stands, the shortfall shows."""
    engine = Engine(redis, keys, wait_replicas=(1, 20))
    await engine.load_event(spec(capacity=2))
    result = await engine.book(1, 1)
    assert result.record.status == "CONFIRMED"
    assert engine.under_replicated == 1
    assert (await inventory(engine)).sold == 1
