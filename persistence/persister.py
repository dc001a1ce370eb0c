"""The write-behind persister: drains each owned shard's outbox into Postgres.

Reliable-queue pattern: claim.lua moves a batch to the shard's in-flight list atomically; the
batch is written in one transaction; ack.lua drops it only after the commit. A crash at any
point leaves the batch in flight, and the next owner of the shard writes it again first; the
version-guarded upsert makes that second write a no-op.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import secrets
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

import asyncpg
import msgspec
import structlog

from engine.booking import CHANGE_MARKS_KEEP_MS, UNAVAILABLE_ERRORS
from engine.errors import EngineUnavailable
from engine.keys import KeySpace
from engine.records import Record, decode_record
from engine.redis_client import RedisClient
from engine.scripts import Scripts
from persistence import metrics
from persistence.expirer import Expirer
from persistence.impressions import apply_deltas, parse_reply
from persistence.leases import LeaseManager
from persistence.writer import write_batch

log = structlog.get_logger("persister")


class LeaseLost(Exception):
    """Another persister owns the shard now."""


class Persister:
    def __init__(
        self,
        redis: RedisClient,
        pool: Any,
        keys: KeySpace,
        *,
        batch_size: int = 1000,
        idle_ms: int = 50,
        lease_ttl_ms: int = 5000,
        parallel: int = 4,
        evict: bool = True,
    ) -> None:
        self.redis = redis
        self.pool = pool
        self.keys = keys
        self.scripts = Scripts(redis)
        self.batch_size = batch_size
        self.parallel = max(1, parallel)
        self.evict = evict
        self.idle_s = idle_ms / 1000
        self.token = secrets.token_hex(8)
        self.leases = LeaseManager(redis, keys, self.scripts, self.token, lease_ttl_ms)
        self.renew_every_s = lease_ttl_ms / 4000
        self.expirer = Expirer(redis, keys, batch_size, pool)
        self.flushed = 0
        self._postgres_down = False
        self._backlog = True  # start with every lane: a restart usually finds a backlog

    async def flush_shard(self, shard: int) -> int:
        """Write one batch of a shard (the in-flight one first). Returns records handled."""
        return (await self.flush_shards([shard]))[0]

    async def flush_shards(self, shards: Sequence[int]) -> list[int]:
        """One batch from each shard (its in-flight one first), all written in ONE
        transaction; returns the records handled per shard. The shards' claims, and then
        their acks, are issued together, so they share a pipelined round trip. At a steady
        1,800 bookings/s a round found a few records per shard, and a transaction per shard
        (16 commits a round) was most of the write-behind's CPU and the bursts that showed in
        booking p99. A shard whose lease is lost is left out and raises LeaseLost after the
        others are acked."""
        claimed = await asyncio.gather(*(self._claim(shard) for shard in shards))
        lost = [shard for shard, raws in zip(shards, claimed, strict=True) if raws is None]
        batches = {s: raws for s, raws in zip(shards, claimed, strict=True) if raws}
        if batches:
            started = time.perf_counter()
            records: list[Record] = []
            dead: dict[int, list[str]] = {shard: [] for shard in batches}
            leaving: dict[int, list[str]] = {}
            for shard, raws in batches.items():
                decoded = _decode_all(raws)
                records.extend(decoded.records)
                dead[shard].extend(decoded.undecodable)
                leaving[shard] = decoded.acked if self.evict else _kept(decoded.acked)
            refused: set[str] = set()
            for record, why in await write_batch(self.pool, records):
                entry = _dead_entry(json.dumps(msgspec.to_builtins(record)), why)
                dead[self.keys.shard_of_booking(record.booking_id)].append(entry)
                refused.add(str(record.booking_id))
            if refused:  # Postgres does not have them: Redis keeps them readable
                leaving = {shard: _without(pairs, refused) for shard, pairs in leaving.items()}
            acked = await asyncio.gather(
                *(
                    self._ack(shard, len(raws), dead[shard], leaving[shard])
                    for shard, raws in batches.items()
                )
            )
            lost += [shard for shard, ok in zip(batches, acked, strict=True) if not ok]
            handled = sum(len(raws) for raws in batches.values())
            self.flushed += handled
            metrics.FLUSHED.inc(handled)
            metrics.BATCH_RECORDS.observe(handled)
            metrics.FLUSH_SECONDS.observe(time.perf_counter() - started)
        if lost:
            for shard in lost:
                self.leases.lost(shard)
            raise LeaseLost(lost[0])
        return [len(batches.get(shard, ())) for shard in shards]

    async def _claim(self, shard: int) -> list[bytes] | None:
        """The shard's batch (empty when there is none), or None when the lease is lost."""
        sk = self.keys.shard(shard)
        reply: list[bytes] = await self.scripts.claim(
            keys=[sk.outbox, sk.inflight, sk.lease], args=[self.batch_size, self.token]
        )
        return None if reply[0] == b"err" else reply[1:]

    async def _ack(self, shard: int, count: int, dead: list[str], leaving: list[str]) -> bool:
        """Acknowledge a written batch; False when the lease was lost meanwhile (written but
        not acked: the new owner writes it again, and the version guard makes that a no-op).
        `leaving`: (position, booking id, tombstone) triples, flat, of the records Postgres
        now holds (see lua/ack.lua)."""
        sk = self.keys.shard(shard)
        ack = await self.scripts.ack(
            keys=[sk.inflight, sk.stats, sk.lease, sk.dead, sk.bookings, sk.pending, sk.changed],
            args=[self.token, count, len(leaving) // 3, *leaving, *dead],
        )
        if ack[0] == b"err":
            return False
        if dead:
            log.warning("dead_letters", shard=shard, count=len(dead))
            metrics.DEAD.inc(len(dead))
        return True

    async def flush_impressions(self, shard: int) -> int:
        """Add the shard's pending view counts to Postgres, once. Returns events touched."""
        sk = self.keys.shard(shard)
        reply = await self.scripts.take_impressions(
            keys=[sk.impressions, sk.impressions_inflight, sk.lease],
            args=[self.token, secrets.token_hex(12)],
        )
        if reply[0] == b"err":
            raise LeaseLost(shard)
        taken = parse_reply(reply)
        if taken is None:
            return 0
        batch_id, deltas = taken
        await apply_deltas(self.pool, batch_id, deltas)
        await self.redis.delete(sk.impressions_inflight)
        return len(deltas)

    async def trim_change_marks(
        self, shards: list[int], keep_ms: int = CHANGE_MARKS_KEEP_MS
    ) -> None:
        """Housekeeping, at every lease renewal: history's change marks (set by every script
        that changes a record, lua/ack.lua's included) past CHANGE_MARKS_KEEP_MS. The one
        place they are trimmed."""
        await asyncio.gather(
            *(
                self.scripts.trim_changed(keys=[self.keys.shard(shard).changed], args=[keep_ms])
                for shard in shards
            )
        )

    async def paused(self) -> bool:
        return bool(await self.redis.exists(self.keys.persister_paused))

    async def drain_once(self) -> int:
        """Burst mode (tests, tools): take every free shard, flush until empty, release.
        Honours neither pause nor fair share."""

        async def drain(shard: int) -> int:
            while await self.expirer.expire_shards([shard]):
                pass
            total = 0
            while handled := await self.flush_shard(shard):
                total += handled
            await self.flush_impressions(shard)
            await self.trim_change_marks([shard])
            return total

        async def keep_leases() -> None:
            while True:  # a long drain outlives one lease TTL
                await asyncio.sleep(self.renew_every_s)
                await self.leases.renew_all()

        renewing = asyncio.create_task(keep_leases())
        try:
            shards = sorted(await self.leases.take_all())
            return sum(await self._in_parallel(drain, shards))
        finally:
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewing
            await self.leases.release_all()

    async def _in_parallel(self, work: Any, shards: list[int]) -> list[int]:
        """Shards are written concurrently, `self.parallel` at a time (one connection each):
        one Postgres backend per core does the upserts and foreign-key checks."""
        gate = asyncio.Semaphore(self.parallel)

        async def one(shard: int) -> int:
            async with gate:
                return int(await work(shard))

        return list(await asyncio.gather(*(one(s) for s in shards)))

    async def run(self, stop: asyncio.Event) -> None:
        """Loop until `stop` is set, then finish the batch in hand and release the leases."""
        backoff = _Backoff()
        next_renew = 0.0
        log.info("persister_started", token=self.token)
        try:
            while not stop.is_set():
                now = time.monotonic()
                try:
                    if now >= next_renew:
                        await self.leases.rebalance()
                        await self.trim_change_marks(sorted(self.leases.held))
                        next_renew = now + self.renew_every_s
                    # Lapsed holds go back to stock even while persisting is paused.
                    expired = await self.expirer.expire_shards(sorted(self.leases.held))
                    written = [] if await self.paused() else await self._flush_owned(stop)
                    self._set_postgres_down(False)
                    backoff.reset()
                except LeaseLost as lost:
                    self.leases.lost(int(str(lost.args[0])))
                    continue
                except STORE_ERRORS as exc:
                    self._set_postgres_down(True, exc)
                    await _sleep_or_stop(stop, backoff.next())
                    continue
                # Straight on only while a backlog fills whole batches; otherwise let records
                # gather for idle_ms. Looping on near-empty batches cost a third of a core
                # in writes of a few rows each at 1,800 bookings/s (the bench's half peak).
                if expired < self.batch_size and max(written, default=0) < self.batch_size:
                    await _sleep_or_stop(stop, self.idle_s)
        finally:
            await self.leases.release_all()
            log.info("persister_stopped", token=self.token, flushed=self.flushed)

    async def _flush_owned(self, stop: asyncio.Event) -> list[int]:
        """One batch from each owned shard; the records each one wrote. The shards are split
        into `parallel` groups, each written in one transaction, the groups concurrently."""
        if stop.is_set():
            return []
        held = sorted(self.leases.held)
        # All lanes only while a backlog fills whole batches. At a steady rate one
        # transaction a round keeps one Postgres backend busy at a time, not `parallel`
        # of them at once: on the bench's two cores, four concurrent writes took the core
        # the API needed (booking p99 at half peak 19-37 ms with four, 10-15 ms with one).
        lanes = min(self.parallel if self._backlog else 1, len(held))
        groups = [held[i::lanes] for i in range(lanes)]
        written = await asyncio.gather(*(self.flush_shards(group) for group in groups))
        await asyncio.gather(*(self.flush_impressions(shard) for shard in held))
        counts = [count for group in written for count in group]
        self._backlog = max(counts, default=0) >= self.batch_size
        return counts

    def _set_postgres_down(self, down: bool, exc: BaseException | None = None) -> None:
        if down == self._postgres_down:
            return
        self._postgres_down = down
        if down:
            metrics.STORE_DOWN.inc()
            log.error("store_unavailable", error=f"{type(exc).__name__}: {exc}")
        else:
            log.info("store_recovered")


# A store is unwell (not the data): back off and retry, keeping everything in Redis.
STORE_ERRORS: tuple[type[BaseException], ...] = (
    TimeoutError,
    OSError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    # A server shutdown whose FATAL reaches a pooled connection just before asyncpg uses it
    # again (e.g. the pool's reset on release, after a commit) raises this: "cannot switch to
    # state 15; another operation (2) is in progress". The connection is dropped; retry.
    asyncpg.InternalClientError,
    *UNAVAILABLE_ERRORS,  # Redis (or a cluster node) cannot answer now, as the engine sees it
    EngineUnavailable,  # the same, as the engine's hold scripts report it
)


class _Decoded(NamedTuple):
    records: list[Record]
    undecodable: list[str]  # dead-letter entries
    # Flat (1-based position, booking id, tombstone) triples, for ack.lua: the tombstone is
    # the version to leave in place of the record, or "0" to keep it (a live hold).
    acked: list[str]


def _decode_all(raws: list[bytes]) -> _Decoded:
    """A claimed batch, decoded once; what ack.lua needs comes from here too."""
    decoded = _Decoded([], [], [])
    for position, raw in enumerate(raws, start=1):
        try:
            record = decode_record(raw)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            entry = _dead_entry(raw.decode("utf-8", "replace"), f"undecodable: {exc}")
            decoded.undecodable.append(entry)
            continue
        decoded.records.append(record)
        tombstone = "0" if record.status == "HELD" else str(record.version)
        decoded.acked.extend((str(position), str(record.id), tombstone))
    return decoded


def _kept(triples: list[str]) -> list[str]:
    """The same triples with every record kept in Redis (eviction off)."""
    kept = list(triples)
    kept[2::3] = ["0"] * (len(kept) // 3)
    return kept


def _without(triples: list[str], booking_ids: set[str]) -> list[str]:
    """Flat triples, less those naming `booking_ids`."""
    kept: list[str] = []
    for i in range(0, len(triples), 3):
        if triples[i + 1] not in booking_ids:
            kept.extend(triples[i : i + 3])
    return kept


def _dead_entry(record: str, reason: str) -> str:
    return json.dumps({"record": record, "reason": reason, "at": int(time.time() * 1000)})


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


class _Backoff:
    """Exponential backoff with full jitter, capped."""

    def __init__(self, base: float = 0.1, cap: float = 5.0) -> None:
        self.base = base
        self.cap = cap
        self.attempt = 0

    def next(self) -> float:
        self.attempt += 1
        return random.uniform(0, min(self.cap, self.base * 2**self.attempt))

    def reset(self) -> None:
        self.attempt = 0
