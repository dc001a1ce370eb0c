"""Login throttling that an attacker cannot turn against the account's owner.

The old rule, 50 failed logins per email from anywhere then 429 for everyone, let anyone
lock anyone out (52 wrong passwords from 4 addresses, and the owner's right password from a
fresh address got 429 for 15 minutes). Failures are now counted per (account, network): the
client's /24 (IPv4) or /64 (IPv6), so one host cannot dodge by hopping addresses in its own
network, and a network's failures never touch another network's attempts:

- the first `free` failures from a network cost nothing;
- after that each attempt from that network waits 2^(n - free) s (at most 60 s) after the
  last failure: a slow-down, answered 429 with Retry-After, before any block;
- after `block` failures the network is refused for this account until `window` has passed
  since its last failure;
- when the account as a whole has seen `attack` failures in `window` (a distributed
  guess), every network that has failed for it at all is refused, which leaves a botnet one
  guess per network; a network with no failures for this account is never refused.

So a correct password from a clean network always gets in (the per-IP limit on all login
attempts still applies to that IP itself). A success clears its own network's failures.
Keys are per account hash (never the email itself) and share one hash tag, so one MULTI
reads or writes them on Redis Cluster too."""

from __future__ import annotations

import hashlib
import ipaddress
import math
import time

from api.errors import ApiError
from api.ratelimit import unavailable_as_503
from engine.redis_client import RedisClient

MAX_DELAY_SECONDS = 60


def network_of(ip: str) -> str:
    """The /24 of an IPv4 address (IPv4-mapped IPv6 included), the /64 of an IPv6 one."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip[:64]
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    prefix = 24 if address.version == 4 else 64
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


def delay_after(failures: int, free: int) -> int:
    """Seconds an attempt must wait after the last failure of its network."""
    if failures <= free:
        return 0
    return int(min(MAX_DELAY_SECONDS, 2 ** (failures - free)))


class LoginGuard:
    def __init__(
        self,
        redis: RedisClient,
        prefix: str,
        *,
        free: int,
        block: int,
        attack: int,
        window_seconds: int,
        enabled: bool = True,
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self.free, self.block, self.attack = free, block, attack
        self.window = window_seconds
        self.enabled = enabled

    def _keys(self, email: str, ip: str) -> tuple[str, str]:
        account = hashlib.sha256(email.encode()).hexdigest()[:32]
        tag = f"{self._prefix}:{{login:{account}}}"
        return f"{tag}:all", f"{tag}:net:{network_of(ip)}"

    async def check(self, email: str, ip: str) -> None:
        """429 (with Retry-After) when this network must wait or is refused for `email`."""
        if not self.enabled:
            return
        everywhere, network = self._keys(email, ip)
        with unavailable_as_503():
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.get(everywhere)
                pipe.hmget(network, ["n", "last"])
                pipe.pttl(network)
                total, (count, last), ttl_ms = await pipe.execute()
        failures = int(count or 0)
        if failures == 0:
            return  # a clean network is never refused
        if failures >= self.block or int(total or 0) >= self.attack:
            _refuse(max(1, math.ceil(int(ttl_ms) / 1000)), "Too many failed logins")
        waited = time.time() - float(last or 0)
        wait = delay_after(failures, self.free) - waited
        if wait > 0:
            _refuse(math.ceil(wait), "Too many failed logins, slow down")

    async def failed(self, email: str, ip: str) -> None:
        if not self.enabled:
            return
        everywhere, network = self._keys(email, ip)
        with unavailable_as_503():
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.incr(everywhere)
                pipe.expire(everywhere, self.window, nx=True)
                pipe.hincrby(network, "n", 1)
                pipe.hset(network, "last", repr(time.time()))
                pipe.expire(network, self.window)
                await pipe.execute()

    async def succeeded(self, email: str, ip: str) -> None:
        """The right password from this network: forget its failures (not the others')."""
        if not self.enabled:
            return
        with unavailable_as_503():
            await self._redis.delete(self._keys(email, ip)[1])


def _refuse(retry_after: int, message: str) -> None:
    raise ApiError(
        429,
        "RATE_LIMITED",
        f"{message}, retry later",
        {"retryAfter": retry_after},
        headers={"Retry-After": str(retry_after)},
    )
