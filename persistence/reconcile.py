"""Reconciliation: Redis (live inventory) against Postgres (the system of record).

The truth for an event is Postgres's bookings overlaid with the records still on their way
(outbox and in flight), latest version winning: CONFIRMED seats are sold, HELD seats are held,
and both count for their user. Redis is read first, in one MULTI, then Postgres: a record
flushed in between is seen in both and merged, a booking made after the snapshot is in
neither, and a booking changed after it (a cancel, a hold confirmed, released or expired) is
taken back to the version it had at the snapshot, so the drift found is exact. Repairs are
applied as deltas, so bookings go on while they run."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from engine.booking import Engine, EventSpec
from engine.errors import Code, EngineError
from engine.keys import KeySpace
from engine.records import Record
from engine.recovery import Recovery, Snapshot
from persistence.queries import record_of_row
from persistence.writer import persisted_ticks

EPOCH_KEY = "redis_epoch"

_BOOKINGS_OF_EVENT = """
SELECT id, user_id, event_id, seats, status, version, job_id, confirmed_at, updated_at,
       expires_at
FROM bookings WHERE event_id = $1
"""


_BOOKINGS_AFTER = """
SELECT id, user_id, event_id, seats, status, version, job_id, confirmed_at, updated_at,
       expires_at
FROM bookings WHERE id > $1 ORDER BY id LIMIT $2
"""


@dataclass
class EventDrift:
    event_id: int
    name: str
    loaded: bool
    redis_capacity: int | None
    redis_available: int | None
    redis_sold: int | None
    redis_held: int | None
    pg_capacity: int
    pg_confirmed_seats: int
    pending_seats: int
    expected_sold: int
    sold_drift: int
    available_drift: int
    capacity_drift: int
    user_drift: dict[int, int] = field(default_factory=dict)
    confirmed: list[Record] = field(default_factory=list, repr=False)
    truth_users: dict[int, int] = field(default_factory=dict, repr=False)
    open: bool = True
    max_per_user: int = 1
    venue: str = ""
    time: str = ""
    expected_held: int = 0
    held_drift: int = 0
    holds: list[Record] = field(default_factory=list, repr=False)

    @property
    def oversold(self) -> int:
        """Seats the truth has taken beyond the capacity: answered sales a Redis that went
        back in time let through twice (a process stalled past the grace, see RUNBOOK).
        No repair can undo them; they are reported so that someone does."""
        return max(0, self.expected_sold + self.expected_held - self.pg_capacity)

    @property
    def drifted(self) -> bool:
        return (
            self.oversold > 0
            or not self.loaded
            or self.sold_drift != 0
            or self.held_drift != 0
            or self.available_drift != 0
            or self.capacity_drift != 0
            or any(self.user_drift.values())
        )


# The status a booking had before its last change.
_BEFORE = {"CANCELLED": "CONFIRMED", "CONFIRMED": "HELD", "RELEASED": "HELD", "EXPIRED": "HELD"}


def as_of(record: Record, moment_ms: int) -> Record | None:
    """The version a persisted record had at `moment_ms` (the snapshot's Redis time), when it
    changed at most once since: made after it, it did not exist; changed after it, it was in
    the state before. (Two changes of one booking between the snapshot and the Postgres read,
    a few milliseconds, are not undone.)"""
    if not moment_ms or record.updated_ms <= moment_ms:
        return record
    before = _BEFORE.get(record.status)
    if record.version == 1 or before is None:
        return None
    return msgspec.structs.replace(record, st=before, v=record.version - 1)


def merge(persisted: Iterable[Record], pending: Iterable[Record]) -> dict[int, Record]:
    """Latest version of every booking, whichever side holds it."""
    latest = {r.id: r for r in persisted}
    for record in pending:
        seen = latest.get(record.id)
        if seen is None or seen.version < record.version:
            latest[record.id] = record
    return latest


def seats_by_user(records: Iterable[Record]) -> dict[int, int]:
    seats: dict[int, int] = defaultdict(int)
    for record in records:
        seats[record.user_id] += record.seats
    return dict(seats)


def _drift(event: Any, snap: Snapshot, persisted: list[Record]) -> EventDrift:
    at_snapshot = [r for r in (as_of(p, snap.now_ms) for p in persisted) if r is not None]
    latest = merge(at_snapshot, snap.pending)
    confirmed = [r for r in latest.values() if r.status == "CONFIRMED"]
    holds = [r for r in latest.values() if r.status == "HELD"]
    expected = sum(r.seats for r in confirmed)
    held = sum(r.seats for r in holds)
    pg_confirmed = sum(r.seats for r in persisted if r.status == "CONFIRMED")
    truth_users = seats_by_user([*confirmed, *holds])
    inv = snap.inventory
    capacity = int(event["capacity"])
    drift = EventDrift(
        event_id=int(event["id"]),
        name=str(event["name"]),
        loaded=inv is not None,
        redis_capacity=inv.capacity if inv else None,
        redis_available=inv.available if inv else None,
        redis_sold=inv.sold if inv else None,
        redis_held=inv.held if inv else None,
        pg_capacity=capacity,
        pg_confirmed_seats=pg_confirmed,
        pending_seats=expected - pg_confirmed,
        expected_sold=expected,
        sold_drift=(inv.sold - expected) if inv else 0,
        available_drift=(inv.available - max(0, capacity - expected - held)) if inv else 0,
        capacity_drift=(inv.capacity - capacity) if inv else 0,
        confirmed=confirmed,
        truth_users=truth_users,
        open=event["status"] == "OPEN",
        max_per_user=int(event["max_per_user"]),
        venue=str(event["venue"]),
        time=event["time"].isoformat(),
        expected_held=held,
        held_drift=(inv.held - held) if inv else 0,
        holds=holds,
    )
    if inv is not None:
        users = set(truth_users) | set(snap.user_seats)
        drift.user_drift = {
            u: snap.user_seats.get(u, 0) - truth_users.get(u, 0)
            for u in users
            if snap.user_seats.get(u, 0) != truth_users.get(u, 0)
        }
    return drift


class Reconciler:
    def __init__(self, pool: Any, engine: Engine) -> None:
        self.pool = pool
        self.engine = engine
        self.keys: KeySpace = engine.keys
        self.recovery = Recovery(engine)

    async def events(self, event_ids: list[int] | None = None) -> list[Any]:
        sql = (
            "SELECT id, name, venue, time, capacity, max_per_user, status FROM events"
            " WHERE status = 'OPEN'"
        )
        if event_ids is not None:
            return list(await self.pool.fetch(sql + " AND id = ANY($1) ORDER BY id", event_ids))
        return list(await self.pool.fetch(sql + " ORDER BY id"))

    async def inspect(self, event: Any) -> EventDrift:
        snap = await self.recovery.snapshot(int(event["id"]))
        rows = await self.pool.fetch(_BOOKINGS_OF_EVENT, int(event["id"]))
        return _drift(event, snap, [record_of_row(r) for r in rows])

    async def report(
        self,
        event_ids: list[int] | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> list[EventDrift]:
        found = []
        for event in await self.events(event_ids):
            found.append(await self.inspect(event))
            if progress:
                progress(1)
        return found

    async def repair(self, drift: EventDrift) -> bool:
        """Fix one drifted event atomically; returns False if it changed under us (loaded by
        someone else meanwhile) and nothing was done."""
        if drift.loaded:
            await self.recovery.repair(
                drift.event_id,
                drift.sold_drift,
                drift.pg_capacity,
                drift.user_drift,
                drift.held_drift,
            )
            return True
        await self.recovery.restore_records([*drift.confirmed, *drift.holds])
        spec = EventSpec(
            event_id=drift.event_id,
            capacity=drift.pg_capacity,
            max_per_user=drift.max_per_user,
            name=drift.name,
            venue=drift.venue,
            time=drift.time,
            sold=drift.expected_sold,
            held=drift.expected_held,
            open=drift.open,
            user_seats=drift.truth_users,
        )
        try:
            await self.engine.load_event(spec)
        except EngineError as exc:
            if exc.code is Code.ALREADY_LOADED:
                return False
            raise
        return True

    async def raise_sequences(self) -> None:
        """New booking ids must not reuse an id Postgres or the outbox already holds, and
        every fence floor (Postgres's marks, see migration 0008) must pass again."""
        floors = await persisted_ticks(self.pool)
        for shard in range(self.keys.shard_count):
            snap_pending = await self.recovery.snapshot_pending(shard)
            for record in snap_pending:
                floors[shard] = max(floors.get(shard, 0), KeySpace.tick_of_booking(record.id))
        for shard, floor in floors.items():
            if shard < self.keys.shard_count:
                await self.recovery.raise_sequence(shard, floor)

    async def rebuild(self, progress: Callable[[int], None] | None = None) -> list[EventDrift]:
        """Load every event whose inventory is missing (never touching loaded ones)."""
        await self.raise_sequences()
        rebuilt = []
        for drift in await self.report(progress=progress):
            if not drift.loaded and await self.repair(drift):
                rebuilt.append(drift)
        return rebuilt

    async def recover(self) -> tuple[list[EventDrift], int]:
        """After Redis lost data or came back older, with every shard frozen (nothing sells
        meanwhile): raise the booking ticks, bring every booking record up to Postgres's
        version, repair every event's counters and per-user seats (loading missing ones),
        and recount each shard's live bookings and held seats. Returns (repaired events,
        records restored)."""
        await self.raise_sequences()
        restored = await self.restore_all_records()
        report, repaired = await self.repair_all()
        repaired += await self.close_deleted()
        live: dict[int, int] = defaultdict(int)
        held: dict[int, int] = defaultdict(int)
        for drift in report:
            live[self.keys.shard_of_event(drift.event_id)] += len(drift.confirmed)
            held[self.keys.shard_of_event(drift.event_id)] += drift.expected_held
        for shard in range(self.keys.shard_count):
            await self.recovery.set_live_count(shard, live[shard], held[shard])
        return repaired, restored

    async def close_deleted(self) -> list[EventDrift]:
        """Events Postgres has deleted but a Redis that went back in time still sells: closed
        again (open = 0) and their counters repaired. Only while frozen (a recovery)."""
        rows = await self.pool.fetch(
            "SELECT id, name, venue, time, capacity, max_per_user, status FROM events"
            " WHERE status <> 'OPEN' ORDER BY id"
        )
        loaded = await self.recovery.loaded([int(r["id"]) for r in rows])
        closed = []
        for event in rows:
            if int(event["id"]) not in loaded:
                continue
            await self.recovery.close(int(event["id"]))
            drift = await self.inspect(event)
            if drift.drifted:
                await self.repair(drift)
            closed.append(drift)
        return closed

    async def restore_all_records(self, chunk: int = 5000) -> int:
        """Every booking Postgres holds, in id order a chunk at a time, restored into Redis
        where Redis lacks it or holds an older version (engine.recovery.restore_records)."""
        restored = 0
        after = -1
        while True:
            rows = await self.pool.fetch(_BOOKINGS_AFTER, after, chunk)
            if not rows:
                return restored
            restored += await self.recovery.restore_records(record_of_row(r) for r in rows)
            after = int(rows[-1]["id"])

    async def repair_all(
        self,
        progress: Callable[[int], None] | None = None,
        event_ids: list[int] | None = None,
    ) -> tuple[list[EventDrift], list[EventDrift]]:
        """Report, then repair exactly the drifted events (of `event_ids`, or all).
        Returns (report, repaired)."""
        await self.raise_sequences()
        report = await self.report(event_ids, progress=progress)
        repaired = [d for d in report if d.drifted and await self.repair(d)]
        return report, repaired

    # -- the epoch ------------------------------------------------------------------------

    async def stored_epoch(self) -> str | None:
        value = await self.pool.fetchval("SELECT value FROM system_state WHERE key = $1", EPOCH_KEY)
        return None if value is None else str(value)

    async def store_epoch(self, epoch: str) -> str:
        """Record an epoch unless one is recorded already; returns the recorded one."""
        await self.pool.execute(
            "INSERT INTO system_state (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
            EPOCH_KEY,
            epoch,
        )
        stored = await self.stored_epoch()
        assert stored is not None
        return stored
