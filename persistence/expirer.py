"""The hold expirer: returns lapsed holds to stock, for the shards this persister leases.

Each pass reads a shard's expiries sorted set up to the Redis time and runs release.lua in
EXPIRED mode on each lapsed hold, a batch per round trip. Exactly once comes from the script,
not from the lease: it changes only a HELD record whose expiry passed, so a second expirer (a
lease changing hands mid-pass, a restart after kill -9) or a confirm that won the race leaves
nothing to do. The lease only spreads the work."""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from engine.booking import Engine
from engine.holds import Holds
from engine.keys import KeySpace
from engine.redis_client import RedisClient
from persistence import metrics

log = structlog.get_logger("expirer")


class Expirer:
    def __init__(self, redis: RedisClient, keys: KeySpace, batch_size: int = 1000) -> None:
        self.holds = Holds(Engine(redis, keys))
        self.batch_size = batch_size
        self.expired = 0

    async def expire_shards(self, shards: Sequence[int]) -> int:
        """One batch of lapsed holds from each of these shards. Returns how many expired."""
        count = 0
        for shard, ids in (await self.holds.due(shards, self.batch_size)).items():
            expired = await self.holds.expire_ids(shard, ids)
            if expired:
                log.debug("holds_expired", shard=shard, count=expired)
            count += expired
        self.expired += count
        metrics.HOLDS_EXPIRED.inc(count)
        return count
