"""Rate limits in Redis with the `limits` library (Lua-backed moving windows, one key per
limit and identity, so they work on Redis Cluster). 429 in the error shape, with Retry-After."""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import ConfigurationError, StorageError

from api.errors import ApiError
from engine.config import Config, ConfigError
from engine.errors import EngineUnavailable


def _parse(env: str, value: str) -> RateLimitItem:
    try:
        return parse(value)
    except (ValueError, ConfigurationError):
        raise ConfigError(f"{env} must look like '20/minute', got {value!r}") from None


class RateLimits:
    def __init__(self, config: Config) -> None:
        self.enabled = config.rate_limits == "on"
        self.login_ip = _parse("BOXOFFICE_RATE_LOGIN_IP", config.rate_login_ip)
        self.login_email = _parse("BOXOFFICE_RATE_LOGIN_EMAIL", config.rate_login_email)
        self.register_ip = _parse("BOXOFFICE_RATE_REGISTER_IP", config.rate_register_ip)
        self.book_user = _parse("BOXOFFICE_RATE_BOOK_USER", config.rate_book_user)
        url = config.redis_url
        url = "redis+" + url if url.startswith("unix://") else url
        self.storage = RedisStorage(
            f"async+{url}",
            implementation="redispy",
            wrap_exceptions=True,
            key_prefix=f"{config.key_prefix}:rl",
            socket_timeout=config.redis_timeout_ms / 1000,
            socket_connect_timeout=config.redis_timeout_ms / 1000,
        )
        self.limiter = MovingWindowRateLimiter(self.storage)

    async def hit(self, item: RateLimitItem, scope: str, identity: str) -> None:
        """Count one attempt; raise 429 when over the limit."""
        await self._check(item, scope, identity, count=True, message="Too many requests")

    async def blocked(self, item: RateLimitItem, scope: str, identity: str) -> None:
        """Refuse (429) without counting when `identity` is already over the limit."""
        message = "Too many failed logins for this account"
        await self._check(item, scope, identity, count=False, message=message)

    async def _check(
        self, item: RateLimitItem, scope: str, identity: str, count: bool, message: str
    ) -> None:
        if not self.enabled:
            return
        probe = self.limiter.hit if count else self.limiter.test
        try:
            if await probe(item, scope, identity):
                return
            stats = await self.limiter.get_window_stats(item, scope, identity)
        except StorageError as exc:
            raise EngineUnavailable(str(exc)) from exc
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        raise ApiError(
            429,
            "RATE_LIMITED",
            f"{message}, retry later",
            {"retryAfter": retry_after, "limit": str(item)},
            headers={"Retry-After": str(retry_after)},
        )
