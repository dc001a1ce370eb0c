"""Fixtures: a private Postgres database per session (fresh tables per test) and a private
Redis key space per test, on the real servers (REDIS_URL / DATABASE_URL or the defaults)."""

from __future__ import annotations

import functools
import os
import secrets
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from api.app import init_app
from api.context import SERVICES, Services
from api.embedded import PgServer, RedisServer, answers
from engine.booking import Engine
from engine.config import Config
from engine.keys import KeySpace
from engine.redis_client import connect
from loadtest.stage import delete_prefix
from persistence import queries
from persistence.db import create_pool, migrate
from persistence.persister import Persister
from persistence.writer import prepare_connection
from tests.pgserver import FAST_SETTINGS, pg_server_or_skip
from tests.support import TEST_SECRET, TEST_SETTINGS

DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(scope="session")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(redis url, admin dsn): REDIS_URL / DATABASE_URL when set, else the default servers
    when they answer, else private servers started for the session (a bare machine)."""
    started: list[Any] = []
    try:
        redis_url = os.environ.get("REDIS_URL")
        if redis_url is None:
            redis_url = DEFAULT_REDIS
            if not answers("127.0.0.1", 6379):
                server = RedisServer(tmp_path_factory.mktemp("redis"), appendonly=False)
                server.start()
                started.append(server)
                redis_url = server.url
        admin_dsn = os.environ.get("DATABASE_URL")
        if admin_dsn is None:
            admin_dsn = DEFAULT_PG
            if not answers("127.0.0.1", 5432):
                # Not under pytest's 0700 tmp tree: the postgres OS user must reach it.
                pg = PgServer.create(Path(tempfile.mkdtemp(prefix="bo-pg-")), FAST_SETTINGS)
                pg.start()
                started.append(pg)
                admin_dsn = pg.dsn
        yield redis_url, admin_dsn
    finally:
        for server in reversed(started):
            server.cleanup() if isinstance(server, PgServer) else server.stop()


@pytest.fixture(scope="session")
def redis_url(stores: tuple[str, str]) -> str:
    return stores[0]


def _with_database(dsn: str, name: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{name}"))


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def pg_dsn(stores: tuple[str, str]) -> AsyncIterator[str]:
    """A database of our own for the session, dropped at the end."""
    name = f"bo_test_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(_with_database(stores[1], "postgres"))
    await admin.execute(f'CREATE DATABASE "{name}"')
    dsn = _with_database(stores[1], name)
    conn = await asyncpg.connect(dsn)
    await migrate(conn)
    await conn.close()
    try:
        yield dsn
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def pool(pg_dsn: str) -> AsyncIterator[Any]:
    p = await create_pool(pg_dsn, max_size=10, init=prepare_connection)
    yield p
    await p.close()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = connect(redis_url)
    yield client
    await client.aclose()


@pytest_asyncio.fixture(loop_scope="session")
async def config(pg_dsn: str, pool: Any, redis: Redis, redis_url: str) -> AsyncIterator[Config]:
    """A fresh key space and empty tables for each test; both cleaned after it."""
    await pool.execute("TRUNCATE bookings, events, users, shard_marks RESTART IDENTITY CASCADE")
    cfg = Config.from_env(
        {},
        database_url=pg_dsn,
        redis_url=redis_url,
        jwt_secret=TEST_SECRET,
        key_prefix=f"bot{secrets.token_hex(4)}",
        **TEST_SETTINGS,
    )
    yield cfg
    await delete_keyspace(redis, cfg.key_prefix)


async def delete_keyspace(redis: Redis, prefix: str) -> None:
    await delete_prefix(redis, f"{prefix}:")


@pytest.fixture
def keys(config: Config) -> KeySpace:
    return KeySpace(config.key_prefix, config.shard_count)


@pytest.fixture
def engine(redis: Redis, keys: KeySpace, pool: Any) -> Engine:
    """Wired as the app wires it: records evicted from Redis are read from Postgres."""
    engine = Engine(redis, keys)
    engine.record_source = functools.partial(queries.booking_record, pool)
    return engine


@pytest.fixture
def persister(redis: Redis, pool: Any, keys: KeySpace) -> Persister:
    return Persister(redis, pool, keys, batch_size=500)


@pytest_asyncio.fixture(loop_scope="session")
async def client(config: Config) -> AsyncIterator[TestClient[Any, Any]]:
    """The real app, in-process, on a real socket."""
    async with TestClient(TestServer(init_app(config))) as c:
        yield c


@pytest.fixture
def services(client: TestClient[Any, Any]) -> Services:
    return client.app[SERVICES]


@pytest.fixture
def private_pg() -> Iterator[PgServer]:
    """A private PostgreSQL server the test may stop and start (see tests/pgserver.py)."""
    with pg_server_or_skip() as server:
        yield server


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    return tmp_path


class Accounts:
    """Makes users in Postgres and tokens for them, without paying for argon2 each time."""

    def __init__(self, services: Services) -> None:
        self.services = services

    async def make(self, count: int = 1, role: str = "USER") -> list[tuple[int, str]]:
        from tests.support import insert_users

        ids = await insert_users(
            self.services.pool, count, role, prefix=f"{role.lower()}{secrets.token_hex(3)}-"
        )
        return [(i, self.services.tokens.issue(i, f"{i}@example.com", role)) for i in ids]

    async def user(self) -> tuple[int, str]:
        return (await self.make(1))[0]

    async def admin(self) -> tuple[int, str]:
        return (await self.make(1, "ADMIN"))[0]


@pytest.fixture
def accounts(services: Services) -> Accounts:
    return Accounts(services)
