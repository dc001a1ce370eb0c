"""Write-behind benchmark: how fast the persister drains the outbox, against how fast the
engine fills it, measured in one run on one machine.

    python -m loadtest.drain [--records 100000] [--concurrency 256] [--batch 1000]

Uses REDIS_URL / DATABASE_URL's server (default: the local ones), a throwaway database and
key prefix, and removes both afterwards."""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from engine.booking import Engine, EventSpec
from engine.keys import KeySpace
from engine.redis_client import connect
from persistence.db import create_pool, migrate
from persistence.persister import Persister
from persistence.writer import prepare_connection

EVENTS = 16


def _dsn(base: str, name: str) -> str:
    return urlunsplit(urlsplit(base)._replace(path=f"/{name}"))


async def _book_all(engine: Engine, users: list[int], concurrency: int) -> float:
    """Every user books one seat of every event; returns bookings per second."""
    work = [(e, u) for u in users for e in range(1, EVENTS + 1)]
    cursor = iter(work)

    async def worker() -> None:
        for event_id, user_id in cursor:
            await engine.book(event_id, user_id)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return len(work) / (time.perf_counter() - started)


async def run(records: int, concurrency: int, batch: int, parallel: int) -> dict[str, float]:
    base = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"bo_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(_dsn(base, "postgres"))
    await admin.execute(f'CREATE DATABASE "{name}"')
    redis = connect(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    keys = KeySpace(f"bench{secrets.token_hex(3)}", 16)
    pool: Any = None
    try:
        pool = await create_pool(_dsn(base, name), max_size=parallel, init=prepare_connection)
        async with pool.acquire() as conn:
            await migrate(conn)
        users_needed = max(1, records // EVENTS)
        await pool.execute(
            "INSERT INTO users (email, name, password_hash)"
            " SELECT 'b' || g || '@x.io', 'b', 'x' FROM generate_series(1, $1) g",
            users_needed,
        )
        engine = Engine(redis, keys)
        for event_id in range(1, EVENTS + 1):
            await pool.execute(
                "INSERT INTO events (name, venue, time, capacity) VALUES ('B', 'B', now(), $1)",
                users_needed,
            )
            await engine.load_event(EventSpec(event_id, users_needed, 1, "B", "B", "t"))
        booking_rate = await _book_all(engine, list(range(1, users_needed + 1)), concurrency)
        total = users_needed * EVENTS
        persister = Persister(redis, pool, keys, batch_size=batch, parallel=parallel)
        started = time.perf_counter()
        drained = await persister.drain_once()
        drain_rate = drained / (time.perf_counter() - started)
        persisted = await pool.fetchval("SELECT count(*) FROM bookings")
        assert drained == total == persisted, (drained, total, persisted)
        return {"records": total, "booking_rate": booking_rate, "drain_rate": drain_rate}
    finally:
        if pool is not None:
            await pool.close()
        async for key in redis.scan_iter(match=f"{keys.prefix}:*", count=1000):
            await redis.unlink(key)
        await redis.aclose()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--parallel", type=int, default=2, help="shards written at once")
    args = parser.parse_args()
    result = asyncio.run(run(args.records, args.concurrency, args.batch, args.parallel))
    ratio = result["drain_rate"] / result["booking_rate"]
    print(f"records                  {result['records']:>12,.0f}")
    print(f"engine bookings/s        {result['booking_rate']:>12,.0f}  (one process, no HTTP)")
    print(f"persister drain records/s{result['drain_rate']:>12,.0f}  (one persister, COPY+upsert)")
    print(f"drain / booking          {ratio:>12.2f}  (goal >= 3)")


if __name__ == "__main__":
    main()
