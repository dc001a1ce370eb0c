"""`boxoffice seed`: demo and load-test events, created as the API creates them (row in
Postgres and inventory in Redis in one step each), with a progress bar."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta

from tqdm import tqdm

from engine.booking import Engine, EventSpec
from engine.config import Config
from engine.keys import KeySpace
from engine.redis_client import connect
from persistence import queries
from persistence.db import create_pool, ensure_database, migrate_dsn


async def seed_events(config: Config, events: int, capacity: int, max_per_user: int) -> list[int]:
    await ensure_database(config.database_url)
    await migrate_dsn(config.database_url)
    pool = await create_pool(config.database_url, max_size=2)
    redis = connect(config.redis_url)
    created: list[int] = []
    try:
        engine = Engine(redis, KeySpace(config.key_prefix, config.shard_count))
        start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=7)
        with tqdm(total=events, unit="event", desc="seed", file=sys.stderr) as bar:
            for n in range(events):
                when = start + timedelta(hours=n)
                name = f"Seeded event {n + 1}"
                async with pool.acquire() as conn, conn.transaction():
                    row = await queries.create_event(
                        conn, name, "Seed Hall", when, capacity, max_per_user
                    )
                    spec = EventSpec(
                        row["id"], capacity, max_per_user, name, "Seed Hall", when.isoformat()
                    )
                    await engine.load_event(spec)
                created.append(int(row["id"]))
                bar.update(1)
        await redis.incr(KeySpace(config.key_prefix, config.shard_count).events_cache_generation)
    finally:
        await pool.close()
        await redis.aclose()
    return created
