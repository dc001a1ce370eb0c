"""Loads each Lua script once and registers it with redis-py; calls go out through the
engine's wire (engine.wire: EVALSHA, auto-pipelined per loop tick; on NOSCRIPT the script is
loaded and the call sent again)."""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from redis.asyncio import RedisCluster
from redis.commands.core import AsyncScript

from engine.cluster_wire import ClusterWire
from engine.redis_client import RedisClient
from engine.wire import Wire

SCRIPT_NAMES = (
    "book",
    "cancel",
    "load_event",
    "update_event",
    "close_event",
    "claim",
    "ack",
    "lease",
    "redrive",
    "take_impressions",
    "repair_event",
    "raise_seq",
    "hold",
    "confirm",
    "release",
    "ratelimit",
    "restore",
    "pending",
    "view",
    "counts",
    "generation",
    "status",
    "trim_changed",
    "changes",
)


@cache
def script_source(name: str) -> str:
    """The text of lua/<name>.lua, from the installed package data or the source tree."""
    try:
        return resources.files("boxoffice_lua").joinpath(f"{name}.lua").read_text("utf-8")
    except (ModuleNotFoundError, FileNotFoundError):
        path = Path(__file__).resolve().parent.parent / "lua" / f"{name}.lua"
        return path.read_text("utf-8")


class PipelinedScript:
    """Called like redis-py's Script (keys=..., args=...), but sent through the wire: calls
    issued in one event-loop tick share a round trip. Measured on throwaway prototypes here,
    that doubled booking throughput and cut p99 from ~30 ms to ~5 ms at 64 connections."""

    def __init__(self, script: AsyncScript, wire: Wire | ClusterWire) -> None:
        self.script = script
        self.wire = wire

    @property
    def sha(self) -> str:
        return str(self.script.sha)

    def __call__(
        self, keys: Sequence[Any] | None = None, args: Sequence[Any] | None = None
    ) -> Awaitable[Any]:
        return self.wire.call(self.script, keys or (), args or ())


class Scripts:
    """The registered scripts, one attribute per file, all sent through one wire (engines on
    one client share it), so concurrent calls in one event-loop tick share a round trip."""

    book: PipelinedScript
    cancel: PipelinedScript
    load_event: PipelinedScript
    update_event: PipelinedScript
    close_event: PipelinedScript
    claim: PipelinedScript
    ack: PipelinedScript
    lease: PipelinedScript
    redrive: PipelinedScript
    take_impressions: PipelinedScript
    repair_event: PipelinedScript
    raise_seq: PipelinedScript
    hold: PipelinedScript
    confirm: PipelinedScript
    release: PipelinedScript
    ratelimit: PipelinedScript
    restore: PipelinedScript
    pending: PipelinedScript
    view: PipelinedScript
    counts: PipelinedScript
    generation: PipelinedScript
    status: PipelinedScript
    trim_changed: PipelinedScript
    changes: PipelinedScript

    def __init__(self, redis: RedisClient | Any) -> None:
        self.wire: Wire | ClusterWire = (
            ClusterWire.for_cluster(redis)
            if isinstance(redis, RedisCluster)
            else Wire.for_client(redis)
        )
        self._registered: dict[str, AsyncScript] = {}
        for name in SCRIPT_NAMES:
            script = redis.register_script(script_source(name))
            self._registered[name] = script
            setattr(self, name, PipelinedScript(script, self.wire))

    def all(self) -> list[AsyncScript]:
        return [self._registered[name] for name in SCRIPT_NAMES]
