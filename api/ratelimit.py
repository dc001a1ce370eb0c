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
from api.localwindows import LocalWindows
from engine.booking import UNAVAILABLE_ERRORS, RateWindow
from engine.config import Config, ConfigError
from engine.errors import EngineUnavailable
from engine.keys import KeySpace
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
    a fixed window counted in Redis: on one server inside the booking script itself (book.lua,
    no round trip of its own), on a cluster by lua/ratelimit.lua before the body (the counter
    is in another slot than the booking's keys). With `limits` on the booking path, booking
    req/s fell from ~4.4-5.2k to ~3.0k (one process, wrk, this machine); a fixed window may
    let up to twice the limit through across a boundary.

    Before any body is read, this process's own count of the user's attempts decides
    (`before_booking_body`): it never lets more than the limit per window through to read
    their bodies, and it learns Redis's refusals, so a flood of slow bodies from one user is
    answered 429 at once rather than held open (issue 16)."""

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
        self.booking_in_script = not is_cluster_url(url)
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
        self.keys = KeySpace(config.key_prefix)
        self.scripts: Scripts | None = None  # the engine's, set when the app starts
        self.window_ms = self.book_user.get_expiry() * 1000
        self._local = LocalWindows(self.book_user.amount, self.window_ms / 1000)

    @staticmethod
    def parse_setting(env: str, value: str) -> RateLimitItem:
        return _parse(env, value)

    async def before_booking_body(self, user_id: int) -> None:
        """A booking attempt of `user_id`, before its body is read: 429 when this process
        has seen too many in the window; on a cluster, counted in Redis here too."""
        if not self.enabled:
            return
        wait_s = self._local.hit(user_id)
        if wait_s is not None:
            raise self.refused(math.ceil(wait_s * 1000))
        if not self.booking_in_script:
            await self.hit_booking(user_id)

    def booking_window(self, user_id: int) -> RateWindow | None:
        """The counter the booking script checks itself (one server), else None."""
        if not self.enabled or not self.booking_in_script:
            return None
        return RateWindow(self.keys.booking_rate(user_id), self.book_user.amount, self.window_ms)

    def booking_refused(self, user_id: int, reset_ms: int | None) -> ApiError:
        """Redis's count refused the attempt: remembered here until its window resets."""
        reset = reset_ms if reset_ms is not None and reset_ms > 0 else self.window_ms
        self._local.refused_until(user_id, reset / 1000)
        return self.refused(reset)

    def refused(self, reset_ms: int) -> ApiError:
        retry_after = max(1, math.ceil(reset_ms / 1000))
        return ApiError(
            429,
            "RATE_LIMITED",
            "Too many requests, retry later",
            {"retryAfter": retry_after, "limit": str(self.book_user)},
            headers={"Retry-After": str(retry_after)},
        )

    async def hit_booking(self, user_id: int) -> None:
        """Count one booking (or hold) attempt of `user_id` in Redis, in a round trip of its
        own; 429 when over BOXOFFICE_RATE_BOOK_USER."""
        if not self.enabled or self.scripts is None:
            return
        key = self.keys.booking_rate(user_id)
        with unavailable_as_503():
            allowed, _, reset_ms = await self.scripts.ratelimit(
                keys=[key], args=[self.book_user.amount, self.window_ms]
            )
        if not allowed:
            raise self.booking_refused(user_id, int(reset_ms))

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
