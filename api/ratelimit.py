"""Rate limits in Redis with the `limits` library (Lua-backed moving windows, one key per
limit and identity, so they work on Redis Cluster). 429 in the error shape, with Retry-After."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

from limits import RateLimitItem, parse
from limits.aio.storage import RedisClusterStorage, RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import ConfigurationError, StorageError

from api.errors import ApiError
from engine.booking import UNAVAILABLE_ERRORS
from engine.config import Config, ConfigError
from engine.errors import EngineUnavailable
from engine.redis_client import is_cluster_url
from engine.scripts import Scripts


def _parse(env: str, value: str) -> RateLimitItem:
    try:
        return parse(value)
    except (ValueError, ConfigurationError):
        raise ConfigError(f"{env} must look like '20/minute', got {value!r}") from None


@contextlib.contextmanager
def unavailable_as_503() -> Iterator[None]:
    """A Redis call of a limit that cannot reach Redis answers 503, like the engine's."""
    try:
        yield
    except UNAVAILABLE_ERRORS as exc:
        raise EngineUnavailable(str(exc)) from exc


class RateLimits:
    """Login and register limits use `limits` (moving windows). The booking-per-user limit is
    a fixed window in one small script on the engine's auto-pipeline: with `limits` on the
    booking path, booking req/s fell from ~4.4-5.2k to ~3.0k (one process, wrk, this
    machine); a fixed window may let up to twice the limit through across a boundary."""

    def __init__(self, config: Config) -> None:
        self.enabled = config.rate_limits == "on"
        self.login_ip = _parse("BOXOFFICE_RATE_LOGIN_IP", config.rate_login_ip)
        self.login_email = _parse("BOXOFFICE_RATE_LOGIN_EMAIL", config.rate_login_email)
        self.register_ip = _parse("BOXOFFICE_RATE_REGISTER_IP", config.rate_register_ip)
        self.book_user = _parse("BOXOFFICE_RATE_BOOK_USER", config.rate_book_user)
        self.login_network = _parse("BOXOFFICE_RATE_LOGIN_NETWORK", config.rate_login_network)
        url = config.redis_url
        timeouts = {
            "socket_timeout": config.redis_timeout_ms / 1000,
            "socket_connect_timeout": config.redis_timeout_ms / 1000,
        }
        common = {"implementation": "redispy", "wrap_exceptions": True, **timeouts}
        self.storage: RedisStorage | RedisClusterStorage
        if is_cluster_url(url):  # limits' own cluster storage: its keys are one slot each
            parts = urlsplit(url)
            self.storage = RedisClusterStorage(
                f"async+redis+cluster://{parts.netloc}",
                key_prefix=f"{config.key_prefix}:rl",
                ssl=parts.scheme.startswith("rediss"),
                **common,  # type: ignore[arg-type]
            )
        else:
            url = "redis+" + url if url.startswith("unix://") else url
            self.storage = RedisStorage(
                f"async+{url}",
                key_prefix=f"{config.key_prefix}:rl",
                **common,  # type: ignore[arg-type]
            )
        self.limiter = MovingWindowRateLimiter(self.storage)
        self.prefix = config.key_prefix
        self.scripts: Scripts | None = None  # the engine's, set when the app starts

    @staticmethod
    def parse_setting(env: str, value: str) -> RateLimitItem:
        return _parse(env, value)

    async def hit_booking(self, user_id: int) -> None:
        """Count one booking attempt of `user_id`; 429 when over BOXOFFICE_RATE_BOOK_USER."""
        if not self.enabled or self.scripts is None:
            return
        item = self.book_user
        key = f"{self.prefix}:rl:{{book:{user_id}}}"
        window_ms = item.get_expiry() * 1000
        with unavailable_as_503():
            allowed, _, reset_ms = await self.scripts.ratelimit(
                keys=[key], args=[item.amount, window_ms]
            )
        if allowed:
            return
        retry_after = max(1, math.ceil(int(reset_ms) / 1000))
        raise ApiError(
            429,
            "RATE_LIMITED",
            "Too many requests, retry later",
            {"retryAfter": retry_after, "limit": str(item)},
            headers={"Retry-After": str(retry_after)},
        )

    async def hit(self, item: RateLimitItem, scope: str, identity: str) -> None:
        """Count one attempt; raise 429 when over the limit. (Failed logins per account are
        api.loginguard's: counted per network, so they cannot lock the owner out.)"""
        if not self.enabled:
            return
        try:
            if await self.limiter.hit(item, scope, identity):
                return
            stats = await self.limiter.get_window_stats(item, scope, identity)
        except StorageError as exc:
            raise EngineUnavailable(str(exc)) from exc
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        raise ApiError(
            429,
            "RATE_LIMITED",
            "Too many requests, retry later",
            {"retryAfter": retry_after, "limit": str(item)},
            headers={"Retry-After": str(retry_after)},
        )
