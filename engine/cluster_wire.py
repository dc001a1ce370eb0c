"""Script calls on Redis Cluster: each call goes to the pipelined wire (engine.wire) of the
primary that owns its keys' slot. Every script's keys share one hash tag (DESIGN §3), so the
first key names the node.

A MOVED answer (a slot moved, a failover) refreshes the slot map and sends the call once
more to the new owner. An ASK answer (the slot is being migrated and its owner no longer
holds these keys) sends it once to the importing node, behind ASKING. Redis refused the first
call without running it either way, so a script never runs twice. (A script naming a key
that exists on neither side, as a booking's idempotency key before its first use, gets
TRYAGAIN while its slot moves: Redis Cluster refuses such multi-key calls until the move
ends, a 503.) A node that stops answering fails the calls waiting on it (503 upstream) and
refreshes the map, so the next calls find its replacement. Each node's wire notices a
restarted server (its run_id) and tells the same listeners a single server's wire would; the
first connection to a primary the first map did not name (a promoted replica) counts as one."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from redis import exceptions as redis_errors
from redis.asyncio import RedisCluster
from redis.asyncio.cluster import ClusterNode
from redis.commands.core import AsyncScript

from engine.redis_client import node_client
from engine.wire import Wire

_CLUSTER_WIRES: weakref.WeakKeyDictionary[RedisCluster, ClusterWire] = weakref.WeakKeyDictionary()


class ClusterWire:
    def __init__(self, cluster: RedisCluster, timeout: float) -> None:
        self.cluster = cluster
        self.timeout = timeout
        self.restart_listeners: list[Callable[[], None]] = []
        self._wires: dict[str, Wire] = {}
        self._mapped = False
        self._first_primaries: set[str] = set()  # as the slot map first named them
        self._refreshing: asyncio.Task[None] | None = None

    @classmethod
    def for_cluster(cls, cluster: RedisCluster) -> ClusterWire:
        """One per cluster client, like Wire.for_client: engines sharing a client share it."""
        wire = _CLUSTER_WIRES.get(cluster)
        if wire is None:
            timeout = cluster.nodes_manager.connection_kwargs.get("socket_timeout") or 5.0
            wire = _CLUSTER_WIRES[cluster] = cls(cluster, float(timeout))
        return wire

    def call(self, script: AsyncScript, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        if not keys:
            raise ValueError("on Redis Cluster a script needs a key to be routed by")
        return self._routed(
            keys[0],
            lambda wire: wire.call(script, keys, args),
            asked=lambda wire: wire.call_asking(script, keys, args),
        )

    def wait(self, replicas: int, timeout_ms: int, key: Any = None) -> Any:
        """WAIT on the wire of `key`'s node: the one that ran the scripts it is to cover."""
        if key is None:
            raise ValueError("on Redis Cluster WAIT needs the key its scripts were routed by")
        return self._routed(key, lambda wire: wire.wait(replicas, timeout_ms))

    async def ping(self) -> bool:
        """Every primary answers (readiness: a cluster missing a node cannot sell all)."""
        await self._ensure_mapped()
        primaries = self.cluster.get_primaries()
        await asyncio.gather(*(self._node_wire(node).ping() for node in primaries))
        return True

    async def _routed(
        self,
        key: Any,
        send: Callable[[Wire], Any],
        asked: Callable[[Wire], Any] | None = None,
    ) -> Any:
        await self._ensure_mapped()
        try:
            return await send(self._wire_for(key))
        except redis_errors.MovedError:  # Redis ran nothing: the map is stale
            pass
        except redis_errors.AskError as exc:  # ran nothing: the slot is moving
            if asked is None:
                raise redis_errors.ClusterError(f"slot of {key!r} is moving: {exc}") from exc
            return await self._asked(exc, asked)
        except redis_errors.ConnectionError:
            self._refresh_soon()
            raise
        await self._refresh()
        try:
            return await send(self._wire_for(key))
        except redis_errors.AskError as exc:  # MOVED again, or ASK: once only, retry later
            raise redis_errors.ClusterError(f"slot of {key!r} is moving: {exc}") from exc

    async def _asked(self, ask: redis_errors.AskError, asked: Callable[[Wire], Any]) -> Any:
        """Once, to the node the ASK named. A MOVED from it means the move ended in between:
        the next call finds the new owner in a refreshed map."""
        host, port = ask.node_addr
        try:
            return await asked(self._wire_at(str(host), int(port)))
        except redis_errors.AskError as exc:
            self._refresh_soon()
            raise redis_errors.ClusterError(f"slot {ask.slot_id} is moving: {exc}") from exc

    def _wire_for(self, key: Any) -> Wire:
        node = self.cluster.get_node_from_key(key)
        if node is None:
            raise redis_errors.ClusterDownError(f"no node serves the slot of {key!r}")
        return self._node_wire(node)

    def _node_wire(self, node: ClusterNode) -> Wire:
        return self._wire_at(node.host, int(node.port))

    def _wire_at(self, host: str, port: int) -> Wire:
        name = f"{host}:{port}"  # ClusterNode.name
        wire = self._wires.get(name)
        if wire is None:
            wire = Wire(node_client(self.cluster, host, port), self.timeout)
            wire.restart_listeners = self.restart_listeners  # shared: one list to append to
            # A primary the first map did not name took slots over (a failover to a replica
            # at its own address, or a new master): until the watcher has reconciled, what
            # it holds may be older than what was sold. Its first connection says so.
            wire.first_run_is_change = self._mapped and name not in self._first_primaries
            self._wires[name] = wire
        return wire

    async def _ensure_mapped(self) -> None:
        if not self._mapped:
            await self.cluster.initialize()  # the client's own start-up (a no-op once done)
            self._first_primaries = {node.name for node in self.cluster.get_primaries()}
            self._mapped = True

    async def _refresh(self) -> None:
        """Read the slot map again (one refresh at a time; callers share it)."""
        await self._ensure_mapped()
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.ensure_future(self.cluster.nodes_manager.initialize())
        await asyncio.shield(self._refreshing)

    def _refresh_soon(self) -> None:
        task = asyncio.ensure_future(self._refresh())
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
