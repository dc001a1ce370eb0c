"""Property test of the engine: any interleaving of bookings, cancellations and capacity
edits keeps the inventory whole (sold + held + available = capacity, available >= 0) and
the counters equal to the records."""

from __future__ import annotations

import asyncio
import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.booking import Engine, EventSpec
from engine.errors import EngineError

_event_ids = itertools.count(10_000)

OPS = st.lists(
    st.one_of(
        st.tuples(st.just("book"), st.integers(1, 8), st.integers(1, 3)),
        st.tuples(st.just("cancel"), st.integers(0, 50), st.just(0)),
        st.tuples(st.just("capacity"), st.integers(0, 15), st.just(0)),
    ),
    max_size=40,
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(ops=OPS)
async def test_any_interleaving_keeps_the_inventory_whole(engine: Engine, ops):
    event_id = next(_event_ids)
    spec = EventSpec(event_id, 10, 3, "P", "H", "t")
    await engine.load_event(spec)
    booked: list[int] = []

    async def run(op: tuple[str, int, int]) -> None:
        kind, a, b = op
        try:
            if kind == "book":
                booked.append((await engine.book(event_id, a, b)).record.id)
            elif kind == "cancel" and booked:
                await engine.cancel(booked[a % len(booked)], 0, is_admin=True)
            elif kind == "capacity":
                await engine.update_event(EventSpec(event_id, a, 3, "P", "H", "t"))
        except EngineError:
            pass  # refused: sold out, over the limit, already cancelled, below sold

    await asyncio.gather(*(run(op) for op in ops))  # interleaved at Redis, each atomic
    inventory = (await engine.inventories([event_id]))[event_id]
    assert inventory is not None
    assert inventory.available >= 0
    assert inventory.sold + inventory.held + inventory.available == inventory.capacity
    live = await engine.live_bookings(event_id)
    assert inventory.sold == sum(r.seats for r in live)
    per_user: dict[int, int] = {}
    for record in live:
        per_user[record.user_id] = per_user.get(record.user_id, 0) + record.seats
    assert all(seats <= 3 for seats in per_user.values())
