"""Loads each Lua script once and registers it with redis-py (EVALSHA; redis-py reloads a
script on NOSCRIPT by itself)."""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

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
    """The registered scripts, one attribute per file."""

    def __init__(self, redis: Redis | Any) -> None:
        self.book: AsyncScript = redis.register_script(script_source("book"))
        self.cancel: AsyncScript = redis.register_script(script_source("cancel"))
        self.load_event: AsyncScript = redis.register_script(script_source("load_event"))
        self.update_event: AsyncScript = redis.register_script(script_source("update_event"))
        self.close_event: AsyncScript = redis.register_script(script_source("close_event"))
        self.claim: AsyncScript = redis.register_script(script_source("claim"))
        self.ack: AsyncScript = redis.register_script(script_source("ack"))
        self.lease: AsyncScript = redis.register_script(script_source("lease"))
        self.redrive: AsyncScript = redis.register_script(script_source("redrive"))
        self.take_impressions: AsyncScript = redis.register_script(
            script_source("take_impressions")
        )
        self.repair_event: AsyncScript = redis.register_script(script_source("repair_event"))
        self.raise_seq: AsyncScript = redis.register_script(script_source("raise_seq"))
        self.hold: AsyncScript = redis.register_script(script_source("hold"))
        self.confirm: AsyncScript = redis.register_script(script_source("confirm"))
        self.release: AsyncScript = redis.register_script(script_source("release"))

    def all(self) -> list[AsyncScript]:
        return [getattr(self, name) for name in SCRIPT_NAMES]
