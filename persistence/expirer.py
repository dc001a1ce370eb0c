"""The hold expirer: returns lapsed holds to stock, for the shards this persister leases.

Each pass reads a shard's expiries sorted set up to the Redis time and runs release.lua in
EXPIRED mode on each lapsed hold, a batch per round trip. Exactly once comes from the script,
not from the lease: it changes only a HELD record whose expiry passed, so a second expirer (a
lease changing hands mid-pass, a restart after kill -9) or a confirm that won the race leaves
nothing to do. The lease only spreads the work.

It changes seats, so it is fenced like the API: its connection finding a new Redis run (a
restart, maybe onto older data) stops it until a recovery has been made on that run (the
`recovered` marker), and its scripts carry Postgres's floors (a Redis behind what Postgres
holds, or frozen, refuses). It journals what it expired and writes that journal to Postgres
as soon as it finds trouble, so an expiry the Redis lost is not made twice."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import structlog

from engine.booking import Engine
from engine.holds import Holds
from engine.keys import KeySpace
from engine.recovery import Recovery
from engine.redis_client import RedisClient
from persistence import metrics
from persistence.writer import flush_journal, refresh_floors

log = structlog.get_logger("expirer")

CHECK_EVERY_S = 0.5


class Expirer:
    def __init__(
        self, redis: RedisClient, keys: KeySpace, batch_size: int = 1000, pool: Any = None
    ) -> None:
        self.engine = Engine(redis, keys)
        self.holds = Holds(self.engine)
        self.recovery = Recovery(self.engine)
        self.pool = pool
        self.batch_size = batch_size
        self.expired = 0
        self._known_run: str | None = None
        self._checked_at = 0.0
        self.engine.on_redis_restart(self._restarted)

    def _restarted(self) -> None:
        """The connection found a new Redis run: expire nothing until it is recovered."""
        self.engine.fence.ready = False

    async def expire_shards(self, shards: Sequence[int]) -> int:
        """One batch of lapsed holds from each of these shards. Returns how many expired."""
        if not shards or not await self._safe():
            return 0
        count = 0
        for shard, ids in (await self.holds.due(shards, self.batch_size)).items():
            expired = await self.holds.expire_ids(shard, ids)
            if expired:
                log.debug("holds_expired", shard=shard, count=expired)
            count += expired
        self.expired += count
        metrics.HOLDS_EXPIRED.inc(count)
        return count

    async def _safe(self) -> bool:
        """May this process change seats on this Redis now? Checked every CHECK_EVERY_S, and
        at once after the connection found a new run."""
        fence = self.engine.fence
        now = time.monotonic()
        if fence.ready and now - self._checked_at < CHECK_EVERY_S:
            return True
        self._checked_at = now
        run_id = await self.recovery.run_id()
        if self._known_run is None:
            self._known_run = run_id
        if run_id != self._known_run and await self.recovery.recovered_run() != run_id:
            return await self._stop("redis_restarted")
        self._known_run = run_id
        if self.pool is not None:
            await refresh_floors(self.pool, fence)
        found = await self.recovery.fence_trouble(list(fence.floors))
        if found is not None:
            return await self._stop(found[0])
        fence.ready = True
        return True

    async def _stop(self, why: str) -> bool:
        if self.engine.fence.ready or self.engine.journal:
            log.warning("expirer_paused", why=why)
        self.engine.fence.ready = False
        await self.flush_journal()
        return False

    async def flush_journal(self) -> int:
        """What this expirer expired recently, straight to Postgres (idempotent)."""
        if self.pool is None:
            return 0
        written, _ = await flush_journal(self.pool, self.engine.journal)
        if written:
            log.warning("expirer_journal_flushed", records=written)
        return written
