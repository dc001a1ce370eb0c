"""Postgres goes away under booking load and comes back: bookings keep being accepted (they touch
only Redis), the persister backs off and logs the outage once, and once the server is back every
accepted booking reaches Postgres exactly once. Real processes, a real (private) Postgres server
that the test stops and starts."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import asyncpg
from redis.asyncio import Redis

from api.tokens import Tokens
from engine.booking import Engine, EventSpec
from engine.config import Config
from engine.keys import KeySpace
from persistence.db import ensure_database, migrate_dsn
from tests.conftest import delete_keyspace
from tests.pgserver import PgServer
from tests.support import (
    TEST_SECRET,
    TEST_SETTINGS,
    Proc,
    drained,
    env_of,
    insert_users,
    outbox_counts,
    start_server,
)

OUTAGE_SECONDS = 15
WARMUP_SECONDS = 1.0
AFTER_RESTART_SECONDS = 1.0
RATE_PER_SECOND = 1000
CONCURRENCY = 20
USERS = 200
CAPACITY = 1_000_000
DRAIN_WITHIN = 60


@dataclass
class Load:
    """Bookings sent at a bounded rate by a few workers; every answer kept."""

    base: str
    event_id: int
    tokens: list[str]
    outage: list[float] = field(default_factory=lambda: [float("inf"), float("inf")])
    statuses: Counter[Any] = field(default_factory=Counter)
    accepted: list[int] = field(default_factory=list)
    accepted_in_outage: int = 0
    errors: list[str] = field(default_factory=list)
    _next_slot: float = 0.0
    _sent: int = 0

    async def run(self, stop: asyncio.Event) -> None:
        timeout = aiohttp.ClientTimeout(total=10)
        connector = aiohttp.TCPConnector(limit=CONCURRENCY)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            await asyncio.gather(*(self._worker(session, stop) for _ in range(CONCURRENCY)))

    async def _worker(self, session: aiohttp.ClientSession, stop: asyncio.Event) -> None:
        while not stop.is_set():
            now = time.monotonic()
            slot = max(now, self._next_slot)
            self._next_slot = slot + 1 / RATE_PER_SECOND
            if slot > now:
                await asyncio.sleep(slot - now)
            token = self.tokens[self._sent % len(self.tokens)]
            self._sent += 1
            await self._book(session, token)

    async def _book(self, session: aiohttp.ClientSession, token: str) -> None:
        started = time.monotonic()
        try:
            async with session.post(
                f"{self.base}/api/bookings/{self.event_id}/book",
                headers={"Authorization": f"Bearer {token}"},
            ) as response:
                payload = await response.json()
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.statuses["transport_error"] += 1
            self.errors.append(f"{type(exc).__name__}: {exc}")
            return
        finished = time.monotonic()
        self.statuses[response.status] += 1
        if response.status != 202:
            self.errors.append(f"{response.status}: {payload}")
            return
        self.accepted.append(int(payload["booking"]["id"]))
        if self.outage[0] <= started and finished <= self.outage[1]:
            self.accepted_in_outage += 1


def log_events(output: str) -> Counter[str]:
    """How many times each structlog event name appears in a process's JSON log lines."""
    events: Counter[str] = Counter()
    for line in output.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and "event" in entry:
            events[str(entry["event"])] += 1
    return events


async def _wait_for_log(proc: Proc, event: str, within: float = 20) -> None:
    deadline = time.monotonic() + within
    while not log_events(proc.output())[event]:
        if proc.popen.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"no {event} from the process:\n{proc.output()[-4000:]}")
        await asyncio.sleep(0.05)


async def _wait_persisted(dsn: str, event_id: int, persister: Proc, within: float = 20) -> None:
    """Until the persister has written at least one booking (the flush path works)."""
    deadline = time.monotonic() + within
    db = await asyncpg.connect(dsn)
    try:
        sql = "SELECT EXISTS (SELECT 1 FROM bookings WHERE event_id = $1)"
        while not await db.fetchval(sql, event_id):
            if time.monotonic() > deadline:
                raise AssertionError(f"nothing persisted:\n{persister.output()[-4000:]}")
            await asyncio.sleep(0.05)
    finally:
        await db.close()


async def _wait_drained(redis: Redis, keys: KeySpace, persister: Proc) -> float:
    started = time.monotonic()
    while not await drained(redis, keys):
        if time.monotonic() - started > DRAIN_WITHIN:
            raise AssertionError(
                f"outbox not drained within {DRAIN_WITHIN}s:\n{persister.output()[-4000:]}"
            )
        await asyncio.sleep(0.1)
    return time.monotonic() - started


async def test_bookings_accepted_during_a_postgres_outage_all_reach_postgres(
    private_pg: PgServer, redis: Redis, redis_url: str, tmp: Any
) -> None:
    dsn = private_pg.dsn_for("boxoffice")
    await ensure_database(dsn)
    await migrate_dsn(dsn)
    config = Config.from_env(
        {},
        database_url=dsn,
        redis_url=redis_url,
        jwt_secret=TEST_SECRET,
        key_prefix=f"bot{secrets.token_hex(4)}",
        **TEST_SETTINGS,
    )
    keys = KeySpace(config.key_prefix, config.shard_count)
    processes: list[Proc] = []
    try:
        db = await asyncpg.connect(dsn)
        try:
            event_id = int(
                await db.fetchval(
                    "INSERT INTO events (name, venue, time, capacity, max_per_user)"
                    " VALUES ('Outage', 'Hall', now(), $1, $1) RETURNING id",
                    CAPACITY,
                )
            )
            user_ids = await insert_users(db, USERS, prefix=f"out{secrets.token_hex(3)}-")
        finally:
            await db.close()
        await Engine(redis, keys).load_event(
            EventSpec(event_id, CAPACITY, CAPACITY, "Outage", "Hall", "2030-01-01T00:00:00Z")
        )
        issuer = Tokens(TEST_SECRET, 3600)
        tokens = [issuer.issue(u, f"{u}@example.com", "USER") for u in user_ids]

        server, base = await start_server(config, tmp)
        processes.append(server)
        persister = Proc(
            ["persist"], env_of(config, BOXOFFICE_LOG_LEVEL="info"), tmp / "persist.log"
        )
        processes.append(persister)

        # `persist` needs Postgres to start: be sure it is up before taking Postgres away.
        await _wait_for_log(persister, "persister_started")

        load = Load(base, event_id, tokens)
        stop_load = asyncio.Event()
        load_task = asyncio.create_task(load.run(stop_load))
        try:
            await asyncio.sleep(WARMUP_SECONDS)
            await _wait_persisted(dsn, event_id, persister)
            await asyncio.to_thread(private_pg.stop, "fast")
            load.outage[0] = time.monotonic()
            await asyncio.sleep(OUTAGE_SECONDS)
            load.outage[1] = time.monotonic()
            await asyncio.to_thread(private_pg.start)
            await asyncio.sleep(AFTER_RESTART_SECONDS)
        finally:
            stop_load.set()
            await load_task

        drain_seconds = await _wait_drained(redis, keys, persister)
        db = await asyncpg.connect(dsn)
        try:
            rows = await db.fetch("SELECT id FROM bookings WHERE event_id = $1", event_id)
        finally:
            await db.close()
        persisted = [int(r["id"]) for r in rows]
        print(
            f"bookings: {len(load.accepted)} accepted, {load.accepted_in_outage} during the"
            f" {OUTAGE_SECONDS}s outage, statuses {dict(load.statuses)};"
            f" {len(persisted)} in Postgres; drained {drain_seconds:.1f}s after the load"
        )

        assert load.accepted_in_outage > 0, "no booking was accepted while Postgres was down"
        assert not load.errors, f"{len(load.errors)} bookings not accepted: {load.errors[:5]}"
        assert len(set(load.accepted)) == len(load.accepted), "a booking id was answered twice"
        assert len(persisted) == len(set(persisted))
        assert set(persisted) == set(load.accepted)
        assert (await outbox_counts(redis, keys))[2] == 0

        for proc in processes:
            assert proc.popen.poll() is None, f"a process died:\n{proc.output()[-4000:]}"
        assert persister.terminate() == 0, persister.log_path.read_text()[-4000:]
        # Read the file: Proc.output() flushes a log handle that terminate() has closed.
        log = persister.log_path.read_text(errors="replace")
        events = log_events(log)
        assert events["store_unavailable"] == 1, log[-4000:]
        assert events["store_recovered"] == 1, log[-4000:]
    finally:
        for proc in processes:
            proc.terminate()
        await delete_keyspace(redis, config.key_prefix)
