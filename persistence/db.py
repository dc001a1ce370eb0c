"""The asyncpg pool and the migration runner."""

from __future__ import annotations

from importlib import resources
from typing import Any

import asyncpg

# Postgres cannot answer now (down, restarting, unreachable, too slow): the caller degrades
# or retries; it is not a bad request or a bug.
POSTGRES_DOWN: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
)

# Any constant will do; it only has to be the same in every process that migrates.
MIGRATION_LOCK_ID = 0x626F786F  # "boxo"


async def _keep_session(conn: Any) -> None:
    """Nothing to reset: no code of ours leaves session state on a pooled connection (every
    advisory lock is released in a `finally`, LISTEN has a connection of its own)."""


async def create_pool(dsn: str, max_size: int = 10, min_size: int = 1, **kwargs: Any) -> Any:
    """A pool whose connections time out commands rather than hang on a stuck server.
    min_size=0 opens nothing up front, so a process can start while Postgres is down.
    asyncpg's default reset on release (RESET ALL, UNLISTEN, unlock all, ...) is one more
    round trip after every query: measured here it was a third of a history request."""
    return await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        **{"command_timeout": 10, "timeout": 5, "reset": _keep_session, **kwargs},
    )


def migration_files() -> list[tuple[int, str, str]]:
    """(version, name, sql) for every migration shipped, in order."""
    found = []
    for entry in resources.files("persistence.migrations").iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append((version, entry.name, entry.read_text("utf-8")))
    return sorted(found)


async def migrate(conn: Any) -> list[str]:
    """Apply each migration not yet applied, once, under an advisory lock. Returns names applied."""
    applied: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_ID)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
            " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for version, name, sql in migration_files():
            if version in done:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", version, name
                )
            applied.append(name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_ID)
    return applied


async def migrate_dsn(dsn: str) -> list[str]:
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        return await migrate(conn)
    finally:
        await conn.close()


async def ensure_database(dsn: str) -> bool:
    """Create the DSN's database if it does not exist (first run on a fresh server).
    Returns True when it was created."""
    try:
        conn = await asyncpg.connect(dsn, timeout=5)
    except asyncpg.InvalidCatalogNameError:
        pass
    else:
        await conn.close()
        return False
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(dsn)
    name = parts.path.lstrip("/")
    admin = await asyncpg.connect(urlunsplit(parts._replace(path="/postgres")), timeout=5)
    try:
        quoted = await admin.fetchval("SELECT quote_ident($1)", name)
        try:
            await admin.execute(f"CREATE DATABASE {quoted}")
        except asyncpg.DuplicateDatabaseError:
            return False
    finally:
        await admin.close()
    return True
