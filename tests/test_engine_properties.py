"""Property test of the engine: any interleaving of bookings, cancellations and capacity
edits keeps the inventory whole (sold + held + available = capacity, available >= 0) and
the counters equal to the records."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from engine.booking import Engine, EventSpec
from engine.errors import Code, EngineError
from engine.holds import Holds
from engine.records import Record
from engine.recovery import Recovery
from persistence.persister import Persister
from persistence.reconcile import Reconciler
from persistence.writer import write_batch
from tests.support import insert_users
from tests.test_persister import make_event

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


LIFE = st.lists(
    st.one_of(
        st.tuples(st.just("book"), st.integers(0, 3), st.integers(1, 2)),
        st.tuples(st.just("hold"), st.integers(0, 3), st.integers(1, 2)),
        st.tuples(st.sampled_from(["cancel", "confirm", "release"]), st.integers(0, 20)),
        st.tuples(st.sampled_from(["persist", "snapshot", "rollback"])),
    ),
    max_size=30,
)


class RollbackableRedis:
    """A Redis key space that can be put back to an earlier copy of itself (DUMP/RESTORE of
    every key of the prefix): what a restart onto an older RDB does, without a restart."""

    def __init__(self, redis: Any, prefix: str) -> None:
        self.redis = redis
        self.pattern = f"{prefix}:*"
        self.saved: list[tuple[bytes, bytes]] | None = None

    async def snapshot(self) -> None:
        keys = [k async for k in self.redis.scan_iter(match=self.pattern, count=1000)]
        self.saved = [(k, await self.redis.dump(k)) for k in keys]

    async def roll_back(self) -> bool:
        if self.saved is None:
            return False
        keys = [k async for k in self.redis.scan_iter(match=self.pattern, count=1000)]
        if keys:
            await self.redis.delete(*keys)
        for key, value in self.saved:
            await self.redis.restore(key, 0, value, replace=True)
        return True


async def recover(engine: Engine, pool: Any) -> None:
    """What the inventory watcher does once it finds Redis behind: every shard frozen, the
    journal written to Postgres, then the recovery, then the shards thawed."""
    recovery = Recovery(engine)
    await recovery.freeze(True)
    await write_batch(pool, list(engine.journal))
    await Reconciler(pool, engine).recover()
    await recovery.freeze(False)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(ops=LIFE)
# Lives that broke promises before (each also found in black-box checks): a hold confirmed
# and persisted after the snapshot, confirmed again on the rolled-back HELD copy; a booking
# cancelled again from a stale copy after its cancel was persisted; ids after a rollback.
@example(
    ops=[("hold", 0, 1), ("snapshot",), ("confirm", 0), ("persist",), ("rollback",),
         ("confirm", 0), ("release", 0)]
)  # fmt: skip
@example(
    ops=[("book", 0, 1), ("persist",), ("snapshot",), ("cancel", 0), ("persist",),
         ("rollback",), ("cancel", 0), ("book", 1, 2)]
)  # fmt: skip
@example(
    ops=[("snapshot",), ("book", 0, 2), ("hold", 1, 2), ("persist",), ("rollback",),
         ("book", 2, 2), ("book", 3, 1)]
)  # fmt: skip
async def test_any_life_with_acks_evictions_and_rollbacks_keeps_every_promise(
    engine: Engine, pool: Any, persister: Persister, ops: list[tuple[Any, ...]]
):
    """Bookings, holds, confirms, releases and cancels interleaved with the persister's
    ack (which evicts) and with Redis going back to an earlier snapshot anywhere: nothing is
    sold twice, every answered change ends in Postgres as answered, no id is handed out
    twice, and the counters match the records."""
    event_id = await make_event(pool, engine, capacity=5, max_per_user=3)
    users = await insert_users(pool, 4, prefix=f"p{event_id}-")
    holds = Holds(engine)
    redis = RollbackableRedis(engine.redis, engine.keys.prefix)
    final: dict[int, tuple[str, str]] = {}  # id -> (jobId, the status last answered)
    taken: list[Record] = []

    async def run(op: tuple[Any, ...]) -> None:
        kind = op[0]
        if kind == "book":
            record = (await engine.book(event_id, users[op[1]], op[2])).record
        elif kind == "hold":
            record = (await holds.hold(event_id, users[op[1]], op[2], 60_000, 600_000)).record
        elif kind in ("cancel", "confirm", "release") and taken:
            chosen = taken[op[1] % len(taken)]
            if kind == "cancel":
                record = await engine.cancel(chosen.id, chosen.user_id)
            elif kind == "confirm":
                record = (await holds.confirm(chosen.job_id, chosen.user_id)).record
            else:
                record = await holds.release(chosen.job_id, chosen.user_id)
        elif kind == "persist":
            await persister.drain_once()
            return
        elif kind == "snapshot":
            await redis.snapshot()
            return
        elif kind == "rollback" and await redis.roll_back():
            await recover(engine, pool)
            return
        else:
            return
        if record.id not in final:
            taken.append(record)
        assert final.get(record.id, (record.job_id,))[0] == record.job_id, "id handed out twice"
        final[record.id] = (record.job_id, record.status)

    for op in ops:
        try:
            await run(op)
        except EngineError as exc:  # refused: sold out, over the limit, not a hold, ...
            assert exc.code is not Code.INVENTORY_NOT_READY, "Redis found behind unrecovered"

    await persister.drain_once()
    inventory = (await engine.inventories([event_id]))[event_id]
    assert inventory is not None and min(inventory.available, inventory.sold) >= 0
    assert inventory.sold + inventory.held + inventory.available == inventory.capacity == 5
    rows = await pool.fetch(
        "SELECT id, job_id, status, seats, user_id FROM bookings WHERE event_id = $1", event_id
    )
    assert {r["id"]: (r["job_id"], r["status"]) for r in rows} == final
    assert inventory.sold == sum(r["seats"] for r in rows if r["status"] == "CONFIRMED")
    assert inventory.held == sum(r["seats"] for r in rows if r["status"] == "HELD")
    [drift] = await Reconciler(pool, engine).report([event_id])
    assert not drift.drifted, drift
