"""The outbox seen as the original's job queue: waiting = outbox, active = in flight,
completed = flushed, failed = dead letters. Read and steered by the admin routes."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from engine.booking import guarded
from engine.keys import KeySpace
from engine.records import decode_record
from engine.redis_client import RedisClient
from engine.scripts import Scripts


@dataclass(frozen=True, slots=True)
class ShardDepth:
    shard: int
    waiting: int
    active: int
    failed: int
    completed: int
    leased: bool
    oldest_waiting_ms: int | None
    held: int = 0  # seats held (two-phase bookings not yet confirmed), not queue items


@dataclass(slots=True)
class QueueStats:
    shards: list[ShardDepth] = field(default_factory=list)
    paused: bool = False
    persisters: int = 0
    now_ms: int = 0

    def total(self, name: str) -> int:
        return sum(int(getattr(s, name)) for s in self.shards)

    @property
    def lag_seconds(self) -> float:
        oldest = [s.oldest_waiting_ms for s in self.shards if s.oldest_waiting_ms is not None]
        return 0.0 if not oldest else max(0.0, (self.now_ms - min(oldest)) / 1000)

    @property
    def stalled(self) -> int:
        """Batches in flight on a shard no persister holds: someone died holding them."""
        return sum(1 for s in self.shards if s.active and not s.leased)


class Queue:
    def __init__(self, redis: RedisClient, keys: KeySpace) -> None:
        self.redis = redis
        self.keys = keys
        self.scripts = Scripts(redis)

    async def stats(self) -> QueueStats:
        async def fetch() -> list[Any]:
            pipe = self.redis.pipeline(transaction=False)
            for sk in self.keys.shards():
                pipe.llen(sk.outbox)
                pipe.llen(sk.inflight)
                pipe.llen(sk.dead)
                pipe.hget(sk.stats, "flushed")
                pipe.exists(sk.lease)
                pipe.lindex(sk.outbox, 0)
                pipe.hget(sk.stats, "held")
            pipe.exists(self.keys.persister_paused)
            pipe.zcount(f"{self.keys.prefix}:persisters", int(time.time() * 1000) - 60_000, "+inf")
            pipe.time()
            return await pipe.execute()

        replies = await guarded(fetch)
        seconds, micros = replies[-1]
        stats = QueueStats(
            paused=bool(replies[-3]),
            persisters=int(replies[-2]),
            now_ms=int(seconds) * 1000 + int(micros) // 1000,
        )
        for shard in range(self.keys.shard_count):
            waiting, active, failed, flushed, leased, head, held = replies[
                shard * 7 : shard * 7 + 7
            ]
            stats.shards.append(
                ShardDepth(
                    shard,
                    int(waiting),
                    int(active),
                    int(failed),
                    int(flushed or 0),
                    bool(leased),
                    _record_time(head),
                    int(held or 0),
                )
            )
        return stats

    async def samples(self, limit: int) -> dict[str, list[dict[str, Any]]]:
        """Up to `limit` records of each kind, oldest first, across shards."""

        async def fetch() -> list[Any]:
            pipe = self.redis.pipeline(transaction=False)
            for sk in self.keys.shards():
                pipe.lrange(sk.outbox, 0, limit - 1)
                pipe.lrange(sk.inflight, 0, limit - 1)
                pipe.lrange(sk.dead, 0, limit - 1)
            return await pipe.execute()

        replies = await guarded(fetch)
        found: dict[str, list[dict[str, Any]]] = {"waiting": [], "active": [], "failed": []}
        for i in range(0, len(replies), 3):
            shard = i // 3
            found["waiting"] += [_record(r, shard) for r in replies[i]]
            found["active"] += [_record(r, shard) for r in replies[i + 1]]
            found["failed"] += [_dead(r, shard) for r in replies[i + 2]]
        return {kind: items[:limit] for kind, items in found.items()}

    async def pause(self) -> None:
        await guarded(lambda: self.redis.set(self.keys.persister_paused, "1"))

    async def resume(self) -> None:
        await guarded(lambda: self.redis.delete(self.keys.persister_paused))

    async def clean(self, redrive: bool) -> int:
        """Drop every dead letter, or move them back to their outbox. Returns how many."""
        count = 0
        for sk in self.keys.shards():
            if redrive:
                moved: Any = await guarded(
                    lambda sk=sk: self.scripts.redrive(  # type: ignore[misc]
                        keys=[sk.dead, sk.outbox, sk.stats]
                    )
                )
                count += int(moved)
            else:

                async def drop(sk: Any = sk) -> int:
                    pipe = self.redis.pipeline(transaction=True)
                    pipe.llen(sk.dead)
                    pipe.delete(sk.dead)
                    return int((await pipe.execute())[0])

                count += await guarded(drop)
        return count

    async def live_bookings(self) -> int:
        async def fetch() -> list[Any]:
            pipe = self.redis.pipeline(transaction=False)
            for sk in self.keys.shards():
                pipe.hget(sk.stats, "bookings")
            return await pipe.execute()

        return sum(int(v or 0) for v in await guarded(fetch))


def _record_time(raw: bytes | None) -> int | None:
    if raw is None:
        return None
    try:
        return decode_record(raw).updated_ms
    except ValueError:
        return None


def _record(raw: bytes, shard: int) -> dict[str, Any]:
    try:
        record = decode_record(raw)
    except ValueError:
        return {"shard": shard, "raw": raw.decode("utf-8", "replace")}
    return {
        "shard": shard,
        "bookingId": record.id,
        "eventId": record.event_id,
        "userId": record.user_id,
        "seats": record.seats,
        "status": record.status,
        "version": record.version,
        "timestamp": record.updated_ms,
    }


def _dead(raw: bytes, shard: int) -> dict[str, Any]:
    try:
        entry = json.loads(raw)
        return {
            "shard": shard,
            "record": entry.get("record"),
            "reason": entry.get("reason"),
            "failedAt": entry.get("at"),
        }
    except ValueError:
        return {"shard": shard, "record": raw.decode("utf-8", "replace"), "reason": "unreadable"}
