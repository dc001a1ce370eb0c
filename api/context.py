"""Typed application keys: the resources a view may use, opened in app.cleanup_ctx."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from api.accounts import AccountStates
from api.catalog import Catalog
from api.history_cache import HistoryCache
from api.holdguard import HoldGuard
from api.loginguard import LoginGuard
from api.passwords import Passwords
from api.ratelimit import RateLimits
from api.tokens import Tokens
from api.watch import InventoryWatcher
from engine.booking import Engine
from engine.config import Config
from engine.keys import KeySpace
from engine.reads import Reads
from engine.redis_client import RedisClient


@dataclass
class Services:
    config: Config
    redis: RedisClient
    pool: Any  # asyncpg.Pool
    engine: Engine
    keys: KeySpace
    passwords: Passwords
    tokens: Tokens
    watcher: InventoryWatcher
    limits: RateLimits
    accounts: AccountStates
    logins: LoginGuard
    holdguard: HoldGuard
    reads: Reads
    catalog: Catalog
    history: HistoryCache


CONFIG = web.AppKey("config", Config)
SERVICES = web.AppKey("services", Services)


def services(request: web.Request) -> Services:
    return request.app[SERVICES]
