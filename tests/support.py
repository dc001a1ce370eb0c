"""Helpers shared by the tests: free ports, subprocess servers, users and tokens."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from api.embedded import PgServer, free_port
from engine.config import Config
from engine.keys import KeySpace
from engine.queue import Queue
from loadtest.procs import wait_http as loadtest_wait_http

ROOT = Path(__file__).resolve().parent.parent
BOXOFFICE = [sys.executable, "-m", "api.cli"]
TEST_SECRET = "test-secret-that-is-at-least-32-bytes-long!"
# Cheap argon2 parameters keep the suite fast; production defaults are tested in unit tests.
FAST_ARGON2 = {"argon2_memory_kib": 1024, "argon2_time_cost": 1}
# Rate limits are off except in the tests about them: load-shaped tests would trip them.
# /metrics behind a bearer token, as a production deployment would have it.
TEST_METRICS_TOKEN = "test-metrics-token"
TEST_SETTINGS: dict[str, Any] = {
    **FAST_ARGON2,
    "rate_limits": "off",
    "metrics_token": TEST_METRICS_TOKEN,
}
METRICS_AUTH = {"Authorization": f"Bearer {TEST_METRICS_TOKEN}"}


def env_of(config: Config, **extra: str) -> dict[str, str]:
    """The environment a subprocess needs to see the same stores and key space as `config`."""
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": config.database_url,
            "REDIS_URL": config.redis_url,
            "JWT_SECRET": config.jwt_secret,
            "BOXOFFICE_KEY_PREFIX": config.key_prefix,
            "BOXOFFICE_SHARDS": str(config.shard_count),
            "BOXOFFICE_ARGON2_MEMORY_KIB": str(config.argon2_memory_kib),
            "BOXOFFICE_ARGON2_TIME_COST": str(config.argon2_time_cost),
            "BOXOFFICE_LOG_LEVEL": "warning",
            "BOXOFFICE_RATE_LIMITS": config.rate_limits,
            "BOXOFFICE_EVICT_PERSISTED": "true" if config.evict_persisted else "false",
        }
    )
    env.update(extra)
    return env


class Proc:
    """A boxoffice subprocess (serve or persist) that the test owns and always ends."""

    def __init__(self, args: list[str], env: Mapping[str, str], log: Path) -> None:
        self.log_path = log
        self._log = log.open("wb")
        self.popen = subprocess.Popen(
            [*BOXOFFICE, *args], env=dict(env), cwd=ROOT, stdout=self._log, stderr=self._log
        )

    def kill9(self) -> None:
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(10)

    def terminate(self, timeout: float = 15) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        self._log.close()
        return int(self.popen.returncode)

    def wait(self, timeout: float) -> int:
        """Wait for a process that ends by itself (e.g. `persist --once`)."""
        try:
            self.popen.wait(timeout)
        finally:
            self.terminate()
        return int(self.popen.returncode)

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")


async def wait_http(url: str, proc: Proc, within: float = 20) -> None:
    await loadtest_wait_http(url, proc, within)


async def start_server(config: Config, tmp: Path, name: str = "serve") -> tuple[Proc, str]:
    port = free_port()
    proc = Proc(["serve", "--port", str(port)], env_of(config), tmp / f"{name}-{port}.log")
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_http(f"{base}/healthz", proc)
    except BaseException:
        proc.terminate()
        raise
    return proc, base


def stop_and_drain(servers: list[tuple[Proc, str]], config: Config, tmp: Path) -> None:
    """Stop the API processes, then `boxoffice persist --once` drains every outbox."""
    for proc, _ in servers:
        proc.terminate()
    drainer = Proc(["persist", "--once"], env_of(config), tmp / "drain.log")
    assert drainer.wait(60) == 0, drainer.output()


async def insert_users(pool: Any, count: int, role: str = "USER", prefix: str = "u") -> list[int]:
    """Many users at once (no argon2: their tokens are issued directly)."""
    rows = await pool.fetch(
        "INSERT INTO users (email, name, password_hash, role)"
        " SELECT $1 || g || '@example.com', 'User ' || g, 'x', $2"
        " FROM generate_series(1, $3) g RETURNING id",
        prefix,
        role,
        count,
    )
    return [int(r["id"]) for r in rows]


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def outbox_counts(redis: Any, keys: KeySpace) -> tuple[int, int, int]:
    """(waiting, in flight, dead letters) over every shard, from the admin queue stats."""
    stats = await Queue(redis, keys).stats()
    return stats.total("waiting"), stats.total("active"), stats.total("failed")


async def drained(redis: Any, keys: KeySpace) -> bool:
    """No record waits in an outbox or sits claimed in flight."""
    waiting, in_flight, _ = await outbox_counts(redis, keys)
    return waiting + in_flight == 0


@asynccontextmanager
async def app_on_private_postgres(
    config: Config, server: PgServer
) -> AsyncIterator[tuple[TestClient[Any, Any], str, str]]:
    """The real app on a migrated database of a private Postgres server (which the test may
    stop), with an admin's token and a user's."""
    from api.app import init_app
    from api.context import SERVICES
    from persistence.db import ensure_database, migrate_dsn

    dsn = server.dsn_for("boxoffice")
    await ensure_database(dsn)
    await migrate_dsn(dsn)
    config = dataclasses.replace(config, database_url=dsn)
    async with TestClient(TestServer(init_app(config))) as client:
        svc = client.app[SERVICES]
        [admin_id] = await insert_users(svc.pool, 1, "ADMIN", prefix="admin")
        [user_id] = await insert_users(svc.pool, 1)
        admin = svc.tokens.issue(admin_id, "a@example.com", "ADMIN")
        user = svc.tokens.issue(user_id, "u@example.com", "USER")
        yield client, admin, user
