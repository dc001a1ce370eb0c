"""The write-behind side: how fast a persister drains the outbox, how long a confirmed booking
waits before Postgres has it, and what a booking costs in Redis before and after it is
persisted (what stays is the live record the status route reads, and the per-user count)."""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from engine.booking import Engine
from engine.keys import KeySpace
from loadtest.engine_rate import redis_cpu
from loadtest.measure import CpuMeter, Measure
from loadtest.stage import SHARDS, Stage
from persistence.persister import Persister

# A booking tick far above the clock's (lua/book.lua: ticks follow Redis time), still with
# tick * 1024 < 2^53: booking ids no stage run reaches for decades.
SEQ_FLOOR = 2**42

LAG_SQL = """
SELECT count(*) AS n,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY lag) AS p50,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY lag) AS p99,
       max(lag) AS worst
FROM (SELECT extract(epoch FROM persisted_at - confirmed_at) * 1000 AS lag
      FROM bookings
      WHERE confirmed_at >= to_timestamp($1 / 1000.0)
        AND confirmed_at < to_timestamp($2 / 1000.0)) AS s
"""


async def redis_time_ms(stage: Stage) -> int:
    """Redis's clock: the one the scripts stamp records with (`t`)."""
    seconds, micros = await stage.redis.time()
    return int(seconds) * 1000 + int(micros) // 1000


async def dead_letters(stage: Stage) -> int:
    pipe = stage.redis.pipeline(transaction=False)
    for shard in stage.keys.shards():
        pipe.llen(shard.dead)
    return int(sum(await pipe.execute()))


async def measure_drain(stage: Stage, batch: int = 1000) -> Measure:
    """Drain the whole backlog once with one in-process persister (burst mode)."""
    backlog = await stage.outbox_depth()
    before = await stage.pool.fetchval("SELECT count(*) FROM bookings")
    dead_before = await dead_letters(stage)
    persister = Persister(stage.redis, stage.pool, stage.keys, batch_size=batch)
    meter = CpuMeter({"postgres": postgres_pids()}, await redis_cpu(stage)).start()
    started = time.perf_counter()
    drained = await persister.drain_once()
    seconds = time.perf_counter() - started
    cpu = meter.stop(await redis_cpu(stage))
    written = await stage.pool.fetchval("SELECT count(*) FROM bookings") - before
    wrong: Counter[str] = Counter()
    if written != drained:
        wrong["rows written != records drained"] = drained - written
    if (dead := await dead_letters(stage) - dead_before) > 0:
        wrong["dead letters"] = dead
    return Measure(
        name="write-behind: drain, one persister",
        generator=f"Persister.drain_once, batch {batch}, backlog {backlog:,} records",
        ok=drained,
        seconds=seconds,
        not_ok=dict(wrong),
        cpu=cpu,
    )


def postgres_pids() -> list[int]:
    """Local Postgres processes, when this machine runs the server (else none: no figure)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as f:
                    if f.read().strip() in {"postgres", "postmaster"}:
                        pids.append(int(entry))
            except OSError:
                continue
    return pids


async def wait_drained(stage: Stage, within: float = 120) -> bool:
    """True once the outbox and in-flight lists are empty (a persister process drains them)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await stage.outbox_depth() == 0:
            return True
        await asyncio.sleep(0.05)
    return False


async def lag_ms(
    stage: Stage, since_ms: int, until_ms: int
) -> tuple[int, float, float, float] | None:
    """(bookings, p50, p99, max) of persisted_at - confirmed_at for bookings confirmed in the
    window. persisted_at is the writing transaction's now(), i.e. its start: the commit
    follows within one batch write."""
    row: Any = await stage.pool.fetchrow(LAG_SQL, since_ms, until_ms)
    if not row["n"]:
        return None
    return int(row["n"]), float(row["p50"] or 0), float(row["p99"] or 0), float(row["worst"] or 0)


@dataclass
class Memory:
    bookings: int
    live_bytes: float  # per booking, in Redis before the persister ran (outbox included)
    persisted_bytes: float  # per booking, once persisted and the change marks trimmed
    marks_bytes: float  # per booking: history's change marks, until trimmed (60 s)
    used_live: float  # INFO used_memory deltas, per booking (shared Redis: noisy)
    used_persisted: float


async def prefix_bytes(stage: Stage, prefix: str) -> int:
    """Exact bytes of every key under `prefix` (MEMORY USAGE ... SAMPLES 0)."""
    keys = [k async for k in stage.redis.scan_iter(match=f"{prefix}:*", count=1000)]
    pipe = stage.redis.pipeline(transaction=False)
    for key in keys:
        pipe.memory_usage(key, samples=0)
    return int(sum(v or 0 for v in await pipe.execute()))


async def used_memory(stage: Stage) -> int:
    return int((await stage.redis.info("memory"))["used_memory"])


async def measure_memory(stage: Stage, bookings: int, concurrency: int = 256) -> Memory:
    """`bookings` new users each book one seat of one of 16 new events (the flash-sale shape:
    every booking adds a per-user entry too), in a key space of their own so that only these
    bookings are counted. Its booking sequences start far above the stage's, so the ids it
    writes to Postgres cannot collide with theirs."""
    keys = KeySpace(f"{stage.prefix}m", SHARDS)
    engine = Engine(stage.redis, keys)
    for shard in keys.shards():
        await stage.redis.hset(shard.stats, "seq", SEQ_FLOOR)
    events = await stage.add_events(16, engine)
    users = await stage.add_users(bookings, "m")
    base_keys, base_used = await prefix_bytes(stage, keys.prefix), await used_memory(stage)
    cursor = iter(range(bookings))

    async def caller() -> None:
        for i in cursor:
            await engine.book(events[i % len(events)], users[i])

    await asyncio.gather(*(caller() for _ in range(concurrency)))
    live_keys, live_used = await prefix_bytes(stage, keys.prefix), await used_memory(stage)
    persister = Persister(stage.redis, stage.pool, keys)
    await persister.drain_once()
    drained_keys = await prefix_bytes(stage, keys.prefix)
    # What the change marks' keep (CHANGE_MARKS_KEEP_MS) leaves, without waiting it out.
    await persister.trim_change_marks(list(range(SHARDS)), keep_ms=0)
    kept_keys, kept_used = await prefix_bytes(stage, keys.prefix), await used_memory(stage)
    return Memory(
        bookings=bookings,
        live_bytes=(live_keys - base_keys) / bookings,
        persisted_bytes=(kept_keys - base_keys) / bookings,
        marks_bytes=(drained_keys - kept_keys) / bookings,
        used_live=(live_used - base_used) / bookings,
        used_persisted=(kept_used - base_used) / bookings,
    )
