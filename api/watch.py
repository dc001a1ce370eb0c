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
