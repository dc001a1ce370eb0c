"""Bookings/s through engine/ alone, one process, many concurrent callers: what the API could
reach if HTTP cost nothing. Compared with redis-benchmark's EVALSHA of the same script, it
shows what the Python client side (redis-py, the event loop, record decoding) costs."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

from engine.errors import EngineError
from loadtest.measure import CpuMeter, Measure
from loadtest.stage import Stage


async def measure_engine(stage: Stage, duration: float, concurrency: int = 256) -> Measure:
    users, events = stage.users, stage.events
    refused: Counter[str] = Counter()
    done = 0
    sold_before = await stage.sold(events)
    meter = CpuMeter({}, await redis_cpu(stage)).start()
    deadline = time.monotonic() + duration

    async def caller(first: int) -> None:
        nonlocal done
        i = first
        while time.monotonic() < deadline:
            try:
                await stage.engine.book(events[i % len(events)], users[i % len(users)])
                done += 1
            except EngineError as exc:
                refused[exc.code.value] += 1
            i += concurrency

    started = time.monotonic()
    await asyncio.gather(*(caller(c) for c in range(concurrency)))
    seconds = time.monotonic() - started
    cpu = meter.stop(await redis_cpu(stage))
    sold = await stage.sold(events) - sold_before
    if sold != done:
        refused["count mismatch (Redis sold - answered ok)"] = sold - done
    return Measure(
        name="engine: Engine.book, one process",
        generator=f"in-process asyncio, {concurrency} concurrent callers",
        ok=done,
        seconds=seconds,
        not_ok=dict(refused),
        cpu=cpu,
    )


async def redis_cpu(stage: Stage) -> float:
    """redis-server's CPU seconds so far (INFO cpu; includes whoever else uses this Redis)."""
    info = await stage.redis.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
