"""Shard leases: which persister drains which outbox shard.

Each persister heartbeats into a registry so that all of them know how many are alive, and
takes free shards up to its fair share (ceil(shards / alive)). A shard seen free at two
rebalances in a row is an orphan (its owner died and the lease lapsed, or nobody has room):
it is taken even beyond the share, so no shard waits for the registry to notice a death."""

from __future__ import annotations

import math
import time
from typing import Any

from engine.keys import KeySpace
from engine.redis_client import RedisClient
from engine.scripts import Scripts


class LeaseManager:
    def __init__(
        self, redis: RedisClient, keys: KeySpace, scripts: Scripts, token: str, ttl_ms: int
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.scripts = scripts
        self.token = token
        self.ttl_ms = ttl_ms
        self.held: set[int] = set()
        self._free_before: set[int] = set()

    @property
    def registry(self) -> str:
        return f"{self.keys.prefix}:persisters"

    async def _call(self, shard: int, op: str) -> bool:
        lease_key = self.keys.shard(shard).lease
        result: Any = await self.scripts.lease(keys=[lease_key], args=[self.token, self.ttl_ms, op])
        return bool(result)

    async def alive(self) -> int:
        now_ms = int(time.time() * 1000)
        pipe = self.redis.pipeline(transaction=False)
        pipe.zadd(self.registry, {self.token: now_ms})
        pipe.zremrangebyscore(self.registry, 0, now_ms - self.ttl_ms)
        pipe.zcard(self.registry)
        replies = await pipe.execute()
        return max(1, int(replies[2]))

    async def free_shards(self) -> set[int]:
        pipe = self.redis.pipeline(transaction=False)
        for shard in range(self.keys.shard_count):
            pipe.exists(self.keys.shard(shard).lease)
        return {s for s, held in enumerate(await pipe.execute()) if not held}

    async def rebalance(self) -> set[int]:
        """Renew what we hold, give back any excess over our share, take free shards up to
        the share, and take orphans (free now and at the previous rebalance)."""
        share = math.ceil(self.keys.shard_count / await self.alive())
        for shard in sorted(self.held):
            if not await self._call(shard, "renew"):
                self.held.discard(shard)
        released: set[int] = set()
        while len(self.held) > share:
            shard = max(self.held)
            await self._call(shard, "release")
            self.held.discard(shard)
            released.add(shard)
        free = await self.free_shards() - released
        for shard in sorted(free):
            orphan = shard in self._free_before
            if (len(self.held) < share or orphan) and await self._call(shard, "take"):
                self.held.add(shard)
        self._free_before = free - self.held
        return set(self.held)

    async def renew_all(self) -> None:
        for shard in sorted(self.held):
            if not await self._call(shard, "renew"):
                self.held.discard(shard)

    async def take_all(self) -> set[int]:
        """Burst mode: take every free shard regardless of share."""
        for shard in range(self.keys.shard_count):
            if shard not in self.held and await self._call(shard, "take"):
                self.held.add(shard)
        return set(self.held)

    def lost(self, shard: int) -> None:
        self.held.discard(shard)

    async def release_all(self) -> None:
        for shard in sorted(self.held):
            await self._call(shard, "release")
        self.held.clear()
        await self.redis.zrem(self.registry, self.token)
