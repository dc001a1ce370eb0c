"""`boxoffice run`: the README's one command. API and persister in one process; with no
REDIS_URL / DATABASE_URL and nothing answering on the default ports, private servers are
started under the data folder (AOF on for Redis), so data persists across runs."""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from api.embedded import LocalStack, answers
from api.passwords import Passwords
from engine.booking import Engine, EventSpec
from engine.config import DEFAULT_DATABASE_URL, DEFAULT_REDIS_URL, Config
from engine.keys import KeySpace
from engine.redis_client import connect
from persistence import queries
from persistence.db import create_pool, ensure_database, migrate_dsn

ADMIN_EMAIL = "admin@boxoffice.local"


def _keep(path: Path, make: str) -> str:
    """A value generated once and kept in the data folder (0600)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(make)
        path.chmod(0o600)
    return path.read_text().strip()


def start_local_servers(
    stack: LocalStack, mode: str, environ: dict[str, str] | os._Environ[str]
) -> dict[str, str]:
    """URLs to use: the environment's, the default servers if they answer, else private ones
    (mode: auto | always | never)."""
    urls: dict[str, str] = {}
    if "REDIS_URL" in environ and mode != "always":
        urls["redis_url"] = environ["REDIS_URL"]
    elif mode == "never" or (mode == "auto" and answers("127.0.0.1", 6379)):
        urls["redis_url"] = DEFAULT_REDIS_URL
    else:
        urls["redis_url"] = stack.start_redis()
    if "DATABASE_URL" in environ and mode != "always":
        urls["database_url"] = environ["DATABASE_URL"]
    elif mode == "never" or (mode == "auto" and answers("127.0.0.1", 5432)):
        urls["database_url"] = DEFAULT_DATABASE_URL
    else:
        urls["database_url"] = stack.start_postgres()
    return urls


async def seed_demo(config: Config, data_dir: Path) -> tuple[str, str]:
    """Migrate; make an admin and a demo event the first time. Returns the admin login."""
    await ensure_database(config.database_url)
    await migrate_dsn(config.database_url)
    password = _keep(data_dir / "admin-password", secrets.token_urlsafe(12))
    pool = await create_pool(config.database_url, max_size=2)
    redis = connect(config.redis_url)
    try:
        if await queries.user_by_email(pool, ADMIN_EMAIL) is None:
            passwords = Passwords(
                config.argon2_memory_kib, config.argon2_time_cost, config.argon2_parallelism
            )
            await queries.create_user(
                pool, ADMIN_EMAIL, "Admin", await passwords.hash(password), "ADMIN"
            )
        if await queries.count_events(pool) == 0:
            engine = Engine(redis, KeySpace(config.key_prefix, config.shard_count))
            async with pool.acquire() as conn, conn.transaction():
                when = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
                row = await queries.create_event(conn, "Demo Night", "Main Hall", when, 100, 2)
                await engine.load_event(
                    EventSpec(row["id"], 100, 2, "Demo Night", "Main Hall", when.isoformat())
                )
    finally:
        await pool.close()
        await redis.aclose()
    return ADMIN_EMAIL, password


def announce(config: Config, login: tuple[str, str], stack: LocalStack) -> None:
    base = f"http://{config.host}:{config.port}"
    lines = [
        f"boxoffice is running on {base}",
        f"  docs:   {base}/api/docs   (OpenAPI: {base}/api/openapi.json)",
        f"  console: {base}/admin   (sign in as the admin below)",
        f"  admin:  {login[0]} / {login[1]}",
        f"  redis:  {config.redis_url}" + ("  (private, AOF on)" if stack.redis else ""),
        f"  postgres: {config.database_url}" + ("  (private)" if stack.pg else ""),
        "  Ctrl-C stops it" + (" and its private servers" if stack.redis or stack.pg else ""),
    ]
    print("\n".join(lines), file=sys.stderr, flush=True)


def prepare(config: Config, data_dir: Path) -> tuple[str, str]:
    return asyncio.run(seed_demo(config, data_dir))
