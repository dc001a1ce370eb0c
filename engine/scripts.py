"""Loads each Lua script once and registers it with redis-py (EVALSHA; on NOSCRIPT the
script is loaded again by redis-py's Script)."""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from engine.autopipe import AutoPipeline, PipelinedScript

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
)


@cache
def script_source(name: str) -> str:
    """The text of lua/<name>.lua, from the installed package data or the source tree."""
    try:
        return resources.files("boxoffice_lua").joinpath(f"{name}.lua").read_text("utf-8")
    except (ModuleNotFoundError, FileNotFoundError):
        path = Path(__file__).resolve().parent.parent / "lua" / f"{name}.lua"
        return path.read_text("utf-8")


class Scripts:
    """The registered scripts, one attribute per file. Calls go through one auto-pipeline,
    so concurrent calls in one event-loop tick share a round trip."""

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

    def __init__(self, redis: Redis | Any) -> None:
        self.pipeline = AutoPipeline(redis)
        self._registered: dict[str, AsyncScript] = {}
        for name in SCRIPT_NAMES:
            script = redis.register_script(script_source(name))
            self._registered[name] = script
            setattr(self, name, PipelinedScript(script, self.pipeline))

    def all(self) -> list[AsyncScript]:
        return [self._registered[name] for name in SCRIPT_NAMES]
