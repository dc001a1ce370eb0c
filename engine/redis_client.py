"""Creating the Redis client and checking the server is safe to hold inventory."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError

from engine.errors import RedisMisconfigured

REQUIRED_POLICY = "noeviction"


def connect(url: str, *, timeout: float = 2.0, max_connections: int = 256) -> Redis:
    """A pooled client; every command times out so a stuck Redis answers fast, not never.
    A burst beyond `max_connections` concurrent commands waits (up to `timeout`) for a free
    connection instead of failing at once as if Redis were down.

    A command that finds its pooled connection closed (Redis restarted since it was last
    used) is sent once more on a fresh one. Only on ConnectionError, never on a timeout: a
    timed-out command may have run. The engine's scripts do not come this way (engine.wire
    fails them instead: a script write is never sent twice)."""
    pool = BlockingConnectionPool.from_url(
        url,
        retry=Retry(NoBackoff(), 1, supported_errors=(ConnectionError,)),
        retry_on_error=[ConnectionError],
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        max_connections=max_connections,
        timeout=timeout,
        health_check_interval=0,
    )
    return Redis.from_pool(pool)


async def check_eviction_policy(redis: Redis) -> None:
    """Inventory keys must never be evicted: refuse to serve on any other policy."""
    reply = await redis.config_get("maxmemory-policy")
    policy = _first_value(reply)
    if policy != REQUIRED_POLICY:
        raise RedisMisconfigured(
            f"Redis maxmemory-policy is {policy!r}; boxoffice requires {REQUIRED_POLICY!r}"
        )


def _first_value(reply: Mapping[Any, Any]) -> str:
    for value in reply.values():
        return value.decode() if isinstance(value, bytes) else value
    return ""
