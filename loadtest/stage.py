"""The stage every figure is measured on: a throwaway database and Redis key prefix, users
inserted by SQL with tokens made directly (no argon2, no register round trips), and events
so large that no booking is refused (a benchmark that measures 409s is lying). Both stores
are removed afterwards, whatever happened."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from redis.asyncio import Redis

from api.tokens import Tokens
from engine.booking import Engine, EventSpec
from engine.keys import KeySpace
from engine.redis_client import connect
from persistence.db import create_pool, migrate
from persistence.writer import prepare_connection

CAPACITY = 1_000_000_000
MAX_PER_USER = 1_000_000
SHARDS = 16


def with_database(dsn: str, name: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{name}"))


@dataclass
class Stage:
    dsn: str
    redis_url: str
    prefix: str
    secret: str
    pool: Any
    redis: Redis
    engine: Engine
    users: list[int] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    events: list[int] = field(default_factory=list)
    hot_event: int = 0

    @property
    def keys(self) -> KeySpace:
        return self.engine.keys

    def env(self, **extra: str) -> dict[str, str]:
        """What a `boxoffice` child needs to see this stage."""
        env = dict(os.environ)
        env.update(
            DATABASE_URL=self.dsn,
            REDIS_URL=self.redis_url,
            JWT_SECRET=self.secret,
            BOXOFFICE_KEY_PREFIX=self.prefix,
            BOXOFFICE_SHARDS=str(SHARDS),
            BOXOFFICE_LOG_LEVEL="warning",
            BOXOFFICE_RATE_LIMITS="off",
        )
        env.update(extra)
        return env

    async def add_users(self, count: int, tag: str) -> list[int]:
        rows = await self.pool.fetch(
            "INSERT INTO users (email, name, password_hash)"
            " SELECT $1 || g || '@bench.example', 'Bench ' || g, 'x'"
            " FROM generate_series(1, $2) g RETURNING id",
            tag,
            count,
        )
        return [int(r["id"]) for r in rows]

    async def add_events(self, count: int, engine: Engine | None = None) -> list[int]:
        """Events in Postgres and their inventory in Redis (through `engine`, default the
        stage's), never sold out, no real limit."""
        rows = await self.pool.fetch(
            "INSERT INTO events (name, venue, time, capacity, max_per_user)"
            " SELECT 'Bench ' || g, 'Hall', now() + interval '30 days', $1, $2"
            " FROM generate_series(1, $3) g RETURNING id",
            CAPACITY,
            MAX_PER_USER,
            count,
        )
        ids = [int(r["id"]) for r in rows]
        for event_id in ids:
            spec = EventSpec(event_id, CAPACITY, MAX_PER_USER, f"Bench {event_id}", "Hall", "t")
            await (engine or self.engine).load_event(spec)
        return ids

    async def sold(self, event_ids: list[int]) -> int:
        """Seats sold in Redis across `event_ids`: the ground truth a run's count must match."""
        inventories = await self.engine.inventories(event_ids)
        return sum(inv.sold for inv in inventories.values() if inv is not None)

    async def outbox_depth(self) -> int:
        pipe = self.redis.pipeline(transaction=False)
        for shard in self.keys.shards():
            pipe.llen(shard.outbox)
            pipe.llen(shard.inflight)
        return int(sum(await pipe.execute()))


@asynccontextmanager
async def open_stage(users: int, events: int) -> AsyncIterator[Stage]:
    base = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    name = f"bo_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(with_database(base, "postgres"))
    await admin.execute(f'CREATE DATABASE "{name}"')
    redis = connect(redis_url)
    prefix = f"bench{secrets.token_hex(4)}"
    pool: Any = None
    try:
        dsn = with_database(base, name)
        pool = await create_pool(dsn, max_size=8, init=prepare_connection)
        async with pool.acquire() as conn:
            await migrate(conn)
        stage = Stage(
            dsn=dsn,
            redis_url=redis_url,
            prefix=prefix,
            secret=secrets.token_urlsafe(48),
            pool=pool,
            redis=redis,
            engine=Engine(redis, KeySpace(prefix, SHARDS)),
        )
        stage.users = await stage.add_users(users, "u")
        issuer = Tokens(stage.secret, 86400)
        stage.tokens = [issuer.issue(u, f"u{u}@bench.example", "USER") for u in stage.users]
        stage.events = await stage.add_events(events)
        stage.hot_event = (await stage.add_events(1))[0]
        yield stage
    finally:
        if pool is not None:
            await pool.close()
        await delete_prefix(redis, prefix)
        await redis.aclose()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def delete_prefix(redis: Redis, prefix: str) -> None:
    """Every key starting with `prefix` (the bench's own sub-prefixes included), freed by Redis
    in the background (UNLINK): a key of 100,000s of records blocks a DEL past the timeout."""
    batch: list[Any] = []
    async for key in redis.scan_iter(match=f"{prefix}*", count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            await redis.unlink(*batch)
            batch.clear()
    if batch:
        await redis.unlink(*batch)
