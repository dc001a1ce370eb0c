"""Creating the Redis client and checking the server is safe to hold inventory.

One server (`redis://`, `rediss://`, `unix://`) or a Redis Cluster (`redis+cluster://host:port`,
any node of it; `rediss+cluster://` with TLS): every key of one event shares a hash tag, so
each script touches one slot and runs unchanged on a cluster (DESIGN §3, §8)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeAlias
from urllib.parse import unquote, urlsplit

from redis.asyncio import BlockingConnectionPool, Redis, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError

from engine.errors import RedisMisconfigured

REQUIRED_POLICY = "noeviction"
CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}

# What the engine, the API and the persister hold: either client speaks the same commands.
RedisClient: TypeAlias = Redis | RedisCluster


def is_cluster_url(url: str) -> bool:
    return urlsplit(url).scheme in CLUSTER_SCHEMES


def _pool_settings(timeout: float, max_connections: int) -> dict[str, Any]:
    """What every pool of ours shares (the single server's and each cluster node's).

    A command that finds its pooled connection closed (Redis restarted since it was last
    used) is sent once more on a fresh one. Only on ConnectionError, never on a timeout: a
    timed-out command may have run. The engine's scripts do not come this way (engine.wire
    fails them instead: a script write is never sent twice)."""
    return {
        "retry": Retry(NoBackoff(), 1, supported_errors=(ConnectionError,)),
        "retry_on_error": [ConnectionError],
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "max_connections": max_connections,
        "timeout": timeout,
        "health_check_interval": 0,
    }


def connect(url: str, *, timeout: float = 2.0, max_connections: int = 256) -> RedisClient:
    """A pooled client; every command times out so a stuck Redis answers fast, not never.
    A burst beyond `max_connections` concurrent commands waits (up to `timeout`) for a free
    connection instead of failing at once as if Redis were down."""
    if is_cluster_url(url):
        return _connect_cluster(url, timeout, max_connections)
    pool = BlockingConnectionPool.from_url(url, **_pool_settings(timeout, max_connections))
    return Redis.from_pool(pool)


def _connect_cluster(url: str, timeout: float, max_connections: int) -> RedisCluster:
    parts = urlsplit(url)
    if parts.path not in ("", "/", "/0"):
        raise RedisMisconfigured("Redis Cluster has one database: leave the URL's path empty")
    return RedisCluster(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 6379,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        ssl=CLUSTER_SCHEMES[parts.scheme] == "rediss",
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        max_connections=max_connections,
        require_full_coverage=True,
    )


def node_client(cluster: RedisCluster, host: str, port: int) -> Redis:
    """A pooled client to one node of `cluster`, with the cluster's credentials and timeouts:
    the engine keeps one pipelined connection per primary (engine.cluster_wire.ClusterWire)."""
    kwargs: dict[str, Any] = dict(cluster.nodes_manager.connection_kwargs)
    timeout = kwargs.get("socket_timeout") or 2.0
    wanted = {"username", "password", "credential_provider", "protocol", "connection_class"}
    wanted |= {"socket_connect_timeout"} | {k for k in kwargs if k.startswith("ssl_")}
    # TLS travels as connection_class=SSLConnection plus the ssl_* settings, not as `ssl`.
    pool_kwargs = {k: kwargs[k] for k in wanted if kwargs.get(k) is not None}
    settings = {**_pool_settings(timeout, max_connections=8), **pool_kwargs}
    pool = BlockingConnectionPool(host=host, port=port, **settings)
    return Redis.from_pool(pool)


async def check_eviction_policy(redis: RedisClient) -> None:
    """Inventory keys must never be evicted: refuse to serve on any other policy (on a
    cluster, every primary must say so)."""
    if isinstance(redis, RedisCluster):
        replies: Any = await redis.config_get(
            "maxmemory-policy", target_nodes=RedisCluster.PRIMARIES
        )  # {node name: {parameter: value}}
        policies = {_first_value(reply) for reply in replies.values()}
    else:
        policies = {_first_value(await redis.config_get("maxmemory-policy"))}
    wrong = sorted(p for p in policies if p != REQUIRED_POLICY)
    if wrong:
        raise RedisMisconfigured(
            f"Redis maxmemory-policy is {wrong[0]!r}; boxoffice requires {REQUIRED_POLICY!r}"
        )


def _first_value(reply: Mapping[Any, Any]) -> str:
    for value in reply.values():
        return value.decode() if isinstance(value, bytes) else str(value)
    return ""
