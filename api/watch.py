"""Knowing Redis is whole: an epoch written to Redis and recorded in Postgres. A Redis that
answers without it has lost its data (restart without persistence, FLUSHALL, failover to an
empty replica): the process turns not-ready, writes the records it confirmed recently to
Postgres, and (if configured) rebuilds the missing inventory from Postgres."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import structlog

from engine.booking import Engine
from engine.config import Config
from engine.errors import EngineUnavailable
from engine.recovery import Recovery
from persistence.reconcile import Reconciler
from persistence.writer import write_batch

log = structlog.get_logger("inventory")

REBUILD_LOCK_ID = 0x626F7262  # "borb"


class InventoryWatcher:
    def __init__(self, config: Config, pool: Any, engine: Engine) -> None:
        self.pool = pool
        self.engine = engine
        self.recovery = Recovery(engine)
        self.reconciler = Reconciler(pool, engine)
        self.interval = config.epoch_check_ms / 1000
        self.grace = config.rebuild_grace_ms / 1000
        self.auto_rebuild = config.auto_rebuild
        self.ready = False
        self.expected: str | None = None
        self._lost_since: float | None = None
        self._run_id: str | None = None
        self._restarted_since: float | None = None
        engine.on_redis_restart(self.suspect)

    def suspect(self) -> None:
        """The engine reconnected to a different Redis run: sell nothing until the next
        check has compared run ids (and reconciled, if it did restart)."""
        if self.ready:
            log.warning("redis_restart_suspected")
        self.ready = False

    async def bootstrap(self) -> None:
        """At start-up: adopt or create the epoch; rebuild at once if Redis is empty."""
        await self.engine.ensure_scripts()
        self.expected = await self.reconciler.stored_epoch()
        current = await self.recovery.epoch()
        if self.expected is None:
            self.expected = await self.reconciler.store_epoch(current or Recovery.new_epoch())
        if current is None and self.auto_rebuild:
            await self.rebuild()
        await self.check_once()

    async def rebuild(self) -> bool:
        """Rebuild missing inventory and restore the epoch, in one process at a time."""
        async with self.pool.acquire() as conn:
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", REBUILD_LOCK_ID):
                return False
            try:
                epoch = await self.reconciler.stored_epoch()
                if epoch is None:
                    epoch = await self.reconciler.store_epoch(Recovery.new_epoch())
                if await self.recovery.epoch() == epoch:
                    return False
                rebuilt = await self.reconciler.rebuild()
                await self.recovery.set_epoch(epoch)
                log.warning("inventory_rebuilt", events=len(rebuilt), epoch=epoch)
                return True
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", REBUILD_LOCK_ID)

    async def check_once(self) -> bool:
        current = await self.recovery.epoch()
        if current is not None and current == self.expected:
            if not await self._same_redis():
                return False
            if not self.ready:
                log.info("inventory_ready", epoch=current)
            self.ready = True
            self._lost_since = None
            return True
        if self._lost_since is None:
            self._lost_since = time.monotonic()
            self.ready = False
            log.error("inventory_lost", expected=self.expected, found=current)
            await self.flush_journal()
        if (
            self.auto_rebuild
            and current is None
            and time.monotonic() - self._lost_since >= self.grace
        ):
            await self.rebuild()
        return False

    async def _same_redis(self) -> bool:
        """Redis restarted with its epoch (an AOF or RDB file, a promoted replica) may have come
        back older than it was: sequences could repeat ids and counters miss the lost tail.
        Until one process has raised the sequences and repaired drift (after the grace, so
        every process flushed its journal first), this process sells nothing."""
        run_id = await self.recovery.run_id()
        if self._run_id is None or run_id == self._run_id:
            self._run_id = run_id
            return True
        if self._restarted_since is None:
            self._restarted_since = time.monotonic()
            self.ready = False
            log.error("redis_restarted", previous=self._run_id, now=run_id)
            await self.flush_journal()
        if time.monotonic() - self._restarted_since < self.grace:
            return False
        async with self.pool.acquire() as conn:
            await conn.execute("SELECT pg_advisory_lock($1)", REBUILD_LOCK_ID)
            try:
                await self.reconciler.raise_sequences()
                _, repaired = await self.reconciler.repair_all()
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", REBUILD_LOCK_ID)
        log.warning("redis_restart_reconciled", repaired=[d.event_id for d in repaired])
        self._run_id = run_id
        self._restarted_since = None
        return True

    async def flush_journal(self) -> int:
        """Write what this process confirmed recently straight to Postgres (idempotent)."""
        records = list(self.engine.journal)
        if not records:
            return 0
        poison = await write_batch(self.pool, records)
        self.engine.journal.clear()
        log.warning("journal_flushed", records=len(records), poison=len(poison))
        return len(records)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.check_once()
            except EngineUnavailable:
                self.ready = False
            except Exception:  # keep watching whatever happens; the next tick retries
                log.exception("inventory_check_failed")
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.interval)
            except TimeoutError:
                continue
