"""The crowd's reads (event list, event page, booking status), each one script call per shard
sent on the engine's pipelined connection: a request costs one Redis round trip, however many
events it shows, and no redis-py command building or parsing on the way. Knows nothing of HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from engine.booking import Engine, guarded
from engine.records import Inventory, Record, decode_record, is_record, tombstone_version


@dataclass(frozen=True, slots=True)
class LiveCounts:
    """What the event list shows live of one event."""

    available: int | None  # None: not loaded in Redis
    held: int
    pending_views: int


@dataclass(frozen=True, slots=True)
class BookingState:
    """What Redis knows of a booking: its record (None when only a tombstone is left), the
    tombstone's version, and whether its latest version still waits for Postgres."""

    record: Record | None
    tombstone: int | None
    pending: bool


@dataclass(frozen=True, slots=True)
class PageView:
    """What one event page read: the list generation, the event's inventory (None when not
    loaded or closed) and its views not yet flushed to Postgres."""

    generation: int
    inventory: Inventory | None
    pending_views: int


@dataclass(frozen=True, slots=True)
class UserChanges:
    """When a user's booking records last changed, as history's kept pages need it: the
    event-list generation, and per changes.lua call (one in all on one server, one per shard
    on a cluster, each on its own node's clock) (Redis ms now, Redis ms of the user's last
    change there or -1)."""

    generation: int
    clocks: tuple[tuple[int, int], ...]


class Reads:
    def __init__(self, engine: Engine) -> None:
        self.keys = engine.keys
        self.scripts = engine.scripts
        self._generation_key = [engine.keys.events_cache_generation]
        self._cluster = engine.cluster
        self._changed_keys = engine.every_shard(lambda sk: [sk.changed])

    async def generation(self) -> int:
        """The event-list generation: every change to an event bumps it."""
        return int(await guarded(lambda: self.scripts.generation(keys=self._generation_key)))

    async def view(self, event_id: int, viewer: str, window_seconds: int) -> PageView:
        """Count one view (once per viewer per window) and read the event's live counts and
        the list generation: one script call on one server; on a cluster the generation's
        call goes with it, pipelined (its key is in another slot)."""
        ek = self.keys.event(event_id)
        keys = [
            ek.inventory,
            ek.shard_keys.impressions,
            self.keys.impression_seen(event_id, viewer),
        ]
        args = [event_id, window_seconds]
        if self._cluster:

            async def read() -> list[Any]:
                return list(
                    await asyncio.gather(
                        self.scripts.generation(keys=self._generation_key),
                        self.scripts.view(keys=keys, args=args),
                    )
                )

            generation, reply = await guarded(read)
            reply = [generation, *reply[1:]]
        else:
            keys.append(self._generation_key[0])
            reply = await guarded(lambda: self.scripts.view(keys=keys, args=args))
        if len(reply) == 1:
            return PageView(int(reply[0]), None, 0)
        generation, cap, avail, sold, held, mpu, is_open, pending = reply
        inventory = Inventory(
            capacity=int(cap),
            available=int(avail),
            sold=int(sold or 0),
            held=int(held or 0),
            max_per_user=int(mpu or 1),
            open=is_open == b"1",
        )
        return PageView(int(generation), inventory, int(pending))

    async def counts(self, event_ids: Sequence[int]) -> dict[int, LiveCounts]:
        """Live counts of many events: one script call per shard, all in one round trip."""
        by_shard: dict[int, list[int]] = {}
        for event_id in event_ids:
            by_shard.setdefault(self.keys.shard_of_event(event_id), []).append(event_id)

        async def read() -> list[Any]:
            return await asyncio.gather(
                *(
                    self.scripts.counts(
                        keys=[
                            *(self.keys.event(e).inventory for e in ids),
                            self.keys.shard(shard).impressions,
                        ],
                        args=ids,
                    )
                    for shard, ids in by_shard.items()
                )
            )

        found: dict[int, LiveCounts] = {}
        if not by_shard:
            return found
        for ids, flat in zip(by_shard.values(), await guarded(read), strict=True):
            for i, event_id in enumerate(ids):
                avail, held, pending = flat[3 * i : 3 * i + 3]
                found[event_id] = LiveCounts(
                    None if avail < 0 else int(avail), int(held), int(pending)
                )
        return found

    async def user_changes(self, user_id: int) -> UserChanges:
        """One round trip: on one server one call reads every shard's mark and the
        generation; on a cluster, one call per shard and the generation's, pipelined."""
        if not self._cluster:
            keys = [*self._changed_keys[0], *self._generation_key]
            reply: list[Any] = await guarded(
                lambda: self.scripts.changes(keys=keys, args=[user_id, "1"])
            )
            return UserChanges(int(reply[2]), ((int(reply[0]), int(reply[1])),))

        async def read() -> list[Any]:
            return await asyncio.gather(
                self.scripts.generation(keys=self._generation_key),
                *(self.scripts.changes(keys=k, args=[user_id, "0"]) for k in self._changed_keys),
            )

        generation, *replies = await guarded(read)
        return UserChanges(int(generation), tuple((int(r[0]), int(r[1])) for r in replies))

    async def booking(self, booking_id: int) -> BookingState | None:
        """The booking as Redis holds it, in one call; None when Redis holds nothing of it."""
        shard = self.keys.shard_of_booking(booking_id)
        if shard >= self.keys.shard_count:
            return None
        sk = self.keys.shard(shard)
        reply: list[Any] = await guarded(
            lambda: self.scripts.status(keys=[sk.bookings, sk.pending], args=[booking_id])
        )
        if not reply:
            return None
        raw, pending = reply
        if is_record(raw):
            return BookingState(decode_record(raw), None, bool(pending))
        return BookingState(None, tombstone_version(raw), bool(pending))
