"""Two-phase booking: hold seats for a while, then confirm them, release them, or let them
lapse. A hold is a booking record with status HELD and an expiry (`x`); each step is one Lua
call, and only a HELD record changes, so a hold ends CONFIRMED, RELEASED or EXPIRED exactly once.
Knows nothing of HTTP."""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from engine.booking import Engine, guarded
from engine.errors import Code, EngineError
from engine.keys import SHARD_SPACE, EventKeys
from engine.records import Record, decode_record, encode_record, is_record

# A hold id is the hold's jobId, `<booking id>-<96 random bits>`: unguessable.
HOLD_ID = re.compile(r"^([0-9]{1,16})-([0-9a-f]{24})$")


@dataclass(frozen=True, slots=True)
class HoldResult:
    record: Record
    replayed: bool


class Holds:
    """Hold operations over an Engine's Redis client, key space and scripts."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.redis = engine.redis
        self.keys = engine.keys
        self.scripts = engine.scripts

    async def hold(
        self,
        event_id: int,
        user_id: int,
        seats: int,
        ttl_ms: int,
        max_ttl_ms: int,
        idempotency_key: str | None = None,
    ) -> HoldResult:
        self.engine.gate()
        keys, args = self.engine.take_call(event_id, user_id, seats, idempotency_key)
        holds_key = self.keys.event(event_id).shard_keys.holds
        reply = await guarded(
            lambda: self.scripts.hold(keys=[*keys, holds_key], args=[*args, ttl_ms, max_ttl_ms])
        )
        ok = self.engine.checked(reply)
        record = decode_record(ok[1])
        if record.event_id != event_id or record.expires_ms == 0:  # or a booking's key
            raise EngineError(Code.IDEMPOTENCY_KEY_REUSED)
        if not ok[2]:
            await self.engine.settle(record)
        return HoldResult(record, bool(ok[2]))

    async def confirm(self, hold_id: str, actor_id: int) -> HoldResult:
        """HELD -> CONFIRMED if not lapsed; a second confirm replays the confirmed record."""

        async def run(record: Record) -> Sequence[Any]:
            ek = self.keys.event(self._owned(record, hold_id).event_id)
            sk = ek.shard_keys
            reply = await guarded(
                lambda: self.scripts.confirm(
                    keys=[
                        ek.inventory,
                        sk.bookings,
                        sk.outbox,
                        sk.stats,
                        sk.holds,
                        sk.pending,
                        sk.changed,
                    ],
                    args=[
                        record.id,
                        record.event_id,
                        actor_id,
                        hold_id,
                        encode_record(record),
                        self.engine.fence.floors[ek.shard],
                    ],
                )
            )
            return self.engine.checked(reply)

        ok = await self.engine.with_latest(self.booking_id(hold_id), Code.HOLD_NOT_FOUND, run)
        confirmed = decode_record(ok[1])
        if not ok[2]:
            await self.engine.settle(confirmed)
        return HoldResult(confirmed, bool(ok[2]))

    async def release(self, hold_id: str, actor_id: int, is_admin: bool = False) -> Record:
        """HELD -> RELEASED before the expiry; a second release is ALREADY_RELEASED."""

        async def run(record: Record) -> Record:
            self._owned(record, hold_id)
            reply = await guarded(
                lambda: self._release(record, "RELEASED", actor_id, is_admin, hold_id)
            )
            return decode_record(self.engine.checked(reply)[1])

        released = await self.engine.with_latest(self.booking_id(hold_id), Code.HOLD_NOT_FOUND, run)
        await self.engine.settle(released)
        return released

    async def expire(self, record: Record) -> Record | None:
        """HELD -> EXPIRED if the expiry passed by Redis time; None when nothing changed."""
        self.engine.gate()
        reply = await guarded(lambda: self._release(record, "EXPIRED", 0, False, ""))
        raw = self.engine.checked(reply)[1]
        return decode_record(raw) if raw else None

    @staticmethod
    def booking_id(hold_id: str) -> int:
        """The booking a hold id names (its unguessable part is checked against the record)."""
        match = HOLD_ID.match(hold_id)
        if match is None:
            raise EngineError(Code.HOLD_NOT_FOUND)
        return int(match.group(1))

    @staticmethod
    def _owned(record: Record, hold_id: str) -> Record:
        """The record is this hold's (same unguessable id) and is a hold at all."""
        if not record.expires_ms or not secrets.compare_digest(record.job_id, hold_id):
            raise EngineError(Code.HOLD_NOT_FOUND)
        return record

    async def find(self, hold_id: str) -> Record:
        """The live record of a hold, by its unguessable id."""
        record = await self.engine.get_booking(self.booking_id(hold_id))
        if record is None:
            raise EngineError(Code.HOLD_NOT_FOUND)
        return self._owned(record, hold_id)

    async def due(self, shards: Sequence[int], limit: int = 1000) -> dict[int, list[bytes]]:
        """Up to `limit` lapsed holds (by Redis time) of each shard that has any: two round
        trips however many shards are asked."""

        async def read() -> dict[int, list[bytes]]:
            seconds, micros = await self.redis.time()
            now_ms = int(seconds) * 1000 + int(micros) // 1000
            pipe = self.redis.pipeline(transaction=False)
            for shard in shards:
                pipe.zrangebyscore(self.keys.shard(shard).holds, "-inf", now_ms, 0, limit)
            replies = await pipe.execute()
            return {shard: ids for shard, ids in zip(shards, replies, strict=True) if ids}

        return await guarded(read) if shards else {}

    async def expire_ids(self, shard: int, ids: Sequence[bytes]) -> int:
        """Expire these holds of one shard in one pipelined round trip, each its own atomic
        script call (a no-op unless still HELD and lapsed). Returns how many expired."""
        sk = self.keys.shard(shard)

        async def run() -> int:
            raws: list[Any] = await self.redis.hmget(sk.bookings, list(ids))
            gone = [m for m, raw in zip(ids, raws, strict=True) if raw is None]
            if gone:  # a record that is gone cannot be held
                await self.redis.zrem(sk.holds, *gone)
            # Issued together, the calls share one pipelined round trip (engine.wire). A
            # tombstone (persisted, so not a live hold) is dropped from the expiries by the
            # script itself, fenced like every other seat change.
            replies = await asyncio.gather(
                *(
                    self._release(
                        decode_record(raw) if is_record(raw) else _placeholder(int(member)),
                        "EXPIRED",
                        0,
                        False,
                        "",
                    )
                    for member, raw in zip(ids, raws, strict=True)
                    if raw is not None
                )
            )
            expired = [decode_record(r[1]) for r in replies if r[0] == b"ok" and r[1]]
            for record in expired:  # journaled: an expiry a rolled-back Redis loses is kept
                await self.engine.settle(record)
            return len(expired)

        return await guarded(run) if ids else 0

    def _release(
        self,
        record: Record,
        mode: str,
        actor_id: int,
        is_admin: bool,
        hold_id: str,
    ) -> Any:
        """The release.lua call (an awaitable, batched with its tick's other calls)."""
        ek: EventKeys = self.keys.event(record.event_id)
        sk = ek.shard_keys
        return self.scripts.release(
            keys=[
                ek.inventory,
                ek.users,
                sk.bookings,
                sk.outbox,
                sk.stats,
                sk.holds,
                sk.pending,
                sk.changed,
            ],
            args=[
                record.id,
                record.event_id,
                mode,
                actor_id,
                "1" if is_admin else "0",
                hold_id,
                encode_record(record) if hold_id else "",
                self.engine.fence.floors[ek.shard],
            ],
        )


def _placeholder(booking_id: int) -> Record:
    """Stands for an evicted booking in an expiry call: release.lua reads the tombstone, not
    this, and only drops the id from the expiries (the event id only routes the keys, and any
    event of the booking's shard has the same shard keys)."""
    return Record(booking_id, booking_id % SHARD_SPACE, 0, 1, "EXPIRED", 0, "", 0, 0)
