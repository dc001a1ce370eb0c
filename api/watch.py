"""Knowing Redis holds everything this service has confirmed, and recovering when it does not.

Trouble is any of: the epoch (written to Redis, recorded in Postgres) is gone (restart without
persistence, FLUSHALL, failover to an empty replica); the Redis server restarted (a new run
id: it may have come back from an older RDB/AOF or a lagging replica); a shard's booking tick
is below what this process has seen or what Postgres has persisted (it came back older); or
a shard is frozen (another process found trouble). Then this process closes the engine's gate
and freezes every shard (so no process sells, even one that never saw the old Redis), writes
the records it confirmed recently to Postgres, and after a grace (so every process has
flushed its journal) one process, under an advisory lock, recovers: booking ticks raised
above every persisted id, booking records brought up to Postgres's versions (tombstones, live
holds with their expiries, stale holds dropped), counters and per-user seats repaired, the
epoch restored, the shards thawed."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import structlog

from engine.booking import Engine
from engine.config import Config
from engine.errors import EngineUnavailable
from engine.recovery import Recovery
from persistence.db import POSTGRES_DOWN
from persistence.reconcile import EventDrift, Reconciler
from persistence.writer import flush_journal, refresh_floors

log = structlog.get_logger("inventory")

REBUILD_LOCK_ID = 0x626F7262  # "borb"


class InventoryWatcher:
    def __init__(self, config: Config, pool: Any, engine: Engine) -> None:
        self.pool = pool
        self.engine = engine
        self.fence = engine.fence
        self.recovery = Recovery(engine)
        self.reconciler = Reconciler(pool, engine)
        self.interval = config.epoch_check_ms / 1000
        self.grace = config.rebuild_grace_ms / 1000
        self.auto_rebuild = config.auto_rebuild
        self.fence.ready = False  # nothing sells before the first check has passed
        self.expected: str | None = None
        self._run_id: str | None = None
        self._trouble_since: float | None = None
        self._journal_flushed = False
        self.last_repaired: list[EventDrift] = []  # by this process's last recovery
        engine.on_redis_restart(self.suspect)
        self.fence.refusal_listeners.append(self.suspect)

    @property
    def ready(self) -> bool:
        return self.fence.ready

    def suspect(self) -> None:
        """The engine reconnected to a different Redis run, or a script found Redis behind or
        frozen: sell nothing until the next check has found out (and recovered)."""
        if self.fence.ready:
            log.warning("redis_trouble_suspected")
        self.fence.ready = False

    async def bootstrap(self) -> None:
        """At start-up: adopt or create the epoch; recover at once if anything is wrong (a
        process just started has no journal to wait for)."""
        await self.engine.ensure_scripts()
        self.expected = await self.reconciler.stored_epoch()
        current = await self.recovery.epoch()
        if self.expected is None:
            self.expected = await self.reconciler.store_epoch(current or Recovery.new_epoch())
        if await self.trouble() is not None and self.auto_rebuild:
            await self.recover()
        await self.check_once()

    async def trouble(self) -> str | None:
        """Why Redis cannot be trusted to sell now, or None."""
        current = await self.recovery.epoch()
        if current != self.expected:
            return "inventory_lost" if current is None else "epoch_mismatch"
        run_id = await self.recovery.run_id()
        if self._run_id is not None and run_id != self._run_id:
            # Another process (or `boxoffice reconcile --repair`) recovered this very run
            # after this one had noticed it and flushed its journal: adopt it.
            noticed = self._journal_flushed
            if not noticed or await self.recovery.recovered_run() != run_id:
                return "redis_restarted"
        behind = await self._behind()
        if behind is not None:
            return behind
        self._run_id = run_id
        return None

    async def _behind(self) -> str | None:
        """A shard frozen, or holding a booking tick below what this process knows of it."""
        await refresh_floors(self.pool, self.fence)
        floors = list(self.fence.floors)  # as they are before Redis is read
        found = await self.recovery.fence_trouble(floors)
        if found is None:
            return None
        why, shard, tick = found
        if why == "redis_behind":
            log.error("redis_behind", shard=shard, tick=tick, floor=floors[shard])
        return why

    async def check_once(self) -> bool:
        why = await self.trouble()
        if why is None:
            if not self.fence.ready:
                log.info("inventory_ready", epoch=self.expected)
            self.fence.ready = True
            self._trouble_since = None
            self._journal_flushed = False
            return True
        self.fence.ready = False
        if self._trouble_since is None:
            self._trouble_since = time.monotonic()
            log.error("inventory_trouble", why=why, epoch=self.expected)
            if why != "epoch_mismatch":  # another deployment's Redis: not ours to touch
                await self._freeze()
        if not self._journal_flushed:
            await self.flush_journal()
            self._journal_flushed = True
        waited = time.monotonic() - self._trouble_since
        if self.auto_rebuild and why != "epoch_mismatch" and waited >= self.grace:
            await self.recover()
        return False

    async def _freeze(self) -> None:
        """Freeze every shard, unless a recovery is under way (it froze them already, and a
        freeze landing after its thaw would stop every process for another grace). The
        advisory lock orders the two; with Postgres down, freeze anyway."""
        try:
            async with self.pool.acquire() as conn:
                if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", REBUILD_LOCK_ID):
                    return
                try:
                    if await self.trouble() is not None:
                        await self.recovery.freeze(True)
                finally:
                    await conn.execute("SELECT pg_advisory_unlock($1)", REBUILD_LOCK_ID)
        except POSTGRES_DOWN:
            await self.recovery.freeze(True)

    async def recover(self) -> bool:
        """Recover in one process at a time; True when this call did it."""
        async with self.pool.acquire() as conn:
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", REBUILD_LOCK_ID):
                return False
            try:
                return await self._recover_locked()
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", REBUILD_LOCK_ID)

    async def _whole(self) -> bool:
        """The epoch is there, no shard is frozen or behind this process's floors."""
        if await self.recovery.epoch() != self.expected:
            return False
        return await self._behind() is None

    async def _recover_locked(self) -> bool:
        assert self.expected is not None
        if await self.recovery.epoch() not in (None, self.expected):
            return False
        if await self._whole():  # another process recovered this Redis meanwhile
            self._run_id = await self.recovery.run_id()
            return False
        # Freeze first: a recovery that starts here (at start-up, or after a process died
        # mid-way) must not race sellers on other processes.
        await self.recovery.freeze(True)
        repaired, restored = await self.reconciler.recover()
        self.last_repaired = repaired
        await self.recovery.set_epoch(self.expected)
        self._run_id = await self.recovery.run_id()
        await self.recovery.mark_recovered(self._run_id)
        await self.recovery.freeze(False)
        log.warning(
            "inventory_recovered",
            repaired=[d.event_id for d in repaired],
            records_restored=restored,
            epoch=self.expected,
        )
        return True

    async def flush_journal(self) -> int:
        """Write what this process confirmed recently straight to Postgres (idempotent)."""
        written, poison = await flush_journal(self.pool, self.engine.journal)
        if written:
            log.warning("journal_flushed", records=written, poison=poison)
        return written

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.check_once()
            except EngineUnavailable:
                self.fence.ready = False
            except Exception:  # keep watching whatever happens; the next tick retries
                log.exception("inventory_check_failed")
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.interval)
            except TimeoutError:
                continue
