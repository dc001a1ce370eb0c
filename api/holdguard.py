"""Seat hoarding: limits on holds that a bot farm cannot talk its way around.

A hold takes seats from everyone else for its TTL, so a farm of fresh accounts could hold a
whole event and renew forever (issue 16: 100 accounts from 10 IPs, 50 holds of 4 seats for
1800 s, every seat gone; release and hold again gave a fresh 30 minutes). Per hold request:

- rate: at most BOXOFFICE_HOLD_RATE_USER holds per user and BOXOFFICE_HOLD_RATE_IP per
  client IP (`limits` moving windows; 429);
- concurrent held seats: at most BOXOFFICE_HOLD_MAX_SEATS_USER seats held at once per user
  and BOXOFFICE_HOLD_MAX_SEATS_IP per client IP, over all events (409 HOLD_LIMIT). So a
  farm behind N addresses holds at most N x the per-IP cap, however many accounts it makes;
- cooldown: after a hold of an event is released or lapses, its user may not hold that
  event again for BOXOFFICE_HOLD_COOLDOWN_SECONDS (409 HOLD_COOLDOWN, retryAfter); a
  confirmed hold leaves no cooldown;
- longest hold: min(BOXOFFICE_HOLD_TTL_MAX_SECONDS, the event's own maxHoldSeconds set by
  an admin; api.views.holdpolicy).

How it is kept, without touching the engine: each user and each IP has a sorted set of the
holds it has taken (member `holdId|seats[|ip]`, score = the hold's expiry in Redis ms), so a
lapsed hold stops counting at its expiry with no help from the expirer; confirm and release
remove their member. The user's cooldowns are a second sorted set (member `event|holdId`,
score = when the cooldown ends): written when the hold is taken (expiry + cooldown, which
covers a lapse), moved to now + cooldown by a release, removed by a confirm; an entry counts
only while its hold is no longer live. A request reserves its seats atomically (one script
per key's slot: user, then IP) before the engine is asked, and gives them back if the engine
refuses, so concurrent holds cannot overshoot a cap. Like the other rate limits, everything
here is off with BOXOFFICE_RATE_LIMITS=off."""

from __future__ import annotations

import math
import secrets
import time
from dataclasses import dataclass
from typing import Any

from redis.commands.core import AsyncScript

from api.errors import ApiError
from api.ratelimit import RateLimits, unavailable_as_503
from engine.config import Config
from engine.records import Record
from engine.redis_client import RedisClient

# KEYS: held zset, cooldown zset (the same key when there are no cooldowns to check)
# ARGV: member, expiry ms (score), seats, cap, cooldown prefix "event|" or "", linger ms
# Replies {1, held} reserved; {0, "LIMIT", held}; {0, "COOLDOWN", ends_ms}.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local held = redis.call('ZRANGE', KEYS[1], 0, -1)
local prefix = ARGV[5]
if prefix ~= '' then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  local cools = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
  for i = 1, #cools, 2 do
    local m = cools[i]
    if string.sub(m, 1, #prefix) == prefix then
      local hold = string.sub(m, #prefix + 1) .. '|'
      local live = false
      for _, h in ipairs(held) do
        if string.sub(h, 1, #hold) == hold then live = true end
      end
      if not live then return {0, 'COOLDOWN', cools[i + 1]} end
    end
  end
end
local total = 0
for _, h in ipairs(held) do
  total = total + tonumber(string.match(h, '^[^|]*|(%d+)'))
end
if total + tonumber(ARGV[3]) > tonumber(ARGV[4]) then return {0, 'LIMIT', total} end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
local linger = tonumber(ARGV[2]) - now + tonumber(ARGV[6])
if redis.call('PTTL', KEYS[1]) < linger then redis.call('PEXPIRE', KEYS[1], linger) end
return {1, total}
"""


@dataclass
class Reservation:
    """Seats reserved for one hold request, before the engine decides."""

    guard: HoldGuard
    user_id: int
    ip: str
    event_id: int
    seats: int
    member: str
    ip_reserved: bool

    async def cancel(self) -> None:
        """The engine refused: give the seats back."""
        g = self.guard
        with unavailable_as_503():
            await g.redis.zrem(g.user_held(self.user_id), self.member)
            if self.ip_reserved:
                await g.redis.zrem(g.ip_held(self.ip), self.member.rsplit("|", 1)[0])

    async def commit(self, record: Record) -> None:
        """The engine held (or replayed) `record`: the reservation becomes that hold."""
        g = self.guard
        real = f"{record.job_id}|{record.seats}"
        cooldown_ends = record.expires_ms + g.cooldown_ms
        with unavailable_as_503():
            async with g.redis.pipeline(transaction=False) as pipe:
                # The hold in before the reservation out: never a moment under-counted.
                pipe.zadd(g.user_held(self.user_id), {f"{real}|{self.ip}": record.expires_ms})
                pipe.zrem(g.user_held(self.user_id), self.member)
                pipe.zadd(
                    g.user_cool(self.user_id), {f"{record.event_id}|{record.job_id}": cooldown_ends}
                )
                pipe.pexpire(g.user_cool(self.user_id), cooldown_ends - g.now_ms(), gt=True)
                await pipe.execute()
            if self.ip_reserved:
                ip_key = g.ip_held(self.ip)
                await g.redis.zadd(ip_key, {real: record.expires_ms})
                await g.redis.zrem(ip_key, self.member.rsplit("|", 1)[0])


class HoldGuard:
    def __init__(self, redis: RedisClient, config: Config, limits: RateLimits) -> None:
        self.redis = redis
        self.enabled = limits.enabled
        self.limits = limits
        self.prefix = config.key_prefix
        self.user_cap = config.hold_max_seats_user
        self.ip_cap = config.hold_max_seats_ip
        self.cooldown_ms = config.hold_cooldown_seconds * 1000
        self.rate_user = limits.parse_setting("BOXOFFICE_HOLD_RATE_USER", config.hold_rate_user)
        self.rate_ip = limits.parse_setting("BOXOFFICE_HOLD_RATE_IP", config.hold_rate_ip)
        self._reserve: AsyncScript = redis.register_script(_RESERVE)

    # Keys: one slot per user and per IP (hash tags), so each script touches one slot.
    def user_held(self, user_id: int) -> str:
        return f"{self.prefix}:{{hold:u{user_id}}}:held"

    def user_cool(self, user_id: int) -> str:
        return f"{self.prefix}:{{hold:u{user_id}}}:cool"

    def ip_held(self, ip: str) -> str:
        return f"{self.prefix}:{{hold:ip:{ip}}}:held"

    @staticmethod
    def now_ms() -> int:
        return int(time.time() * 1000)

    async def reserve(
        self, user_id: int, ip: str, event_id: int, seats: int, ttl_seconds: int
    ) -> Reservation | None:
        """Count the request against the rates and reserve its seats, or refuse (429/409).
        None when the guard is off."""
        if not self.enabled:
            return None
        await self.limits.hit(self.rate_user, "hold-user", str(user_id))
        await self.limits.hit(self.rate_ip, "hold-ip", ip)
        token = f"pending-{secrets.token_hex(6)}|{seats}"
        member = f"{token}|{ip}"
        score = self.now_ms() + ttl_seconds * 1000 + 60_000  # a crash mid-request: lapses
        user_keys = [self.user_held(user_id), self.user_cool(user_id)]
        args: list[str | int] = [
            member,
            score,
            seats,
            self.user_cap,
            f"{event_id}|",
            self.cooldown_ms,
        ]
        with unavailable_as_503():
            reply = await self._reserve(keys=user_keys, args=args)
        _refuse_unless_ok(reply, self.user_cap, "you")
        reservation = Reservation(self, user_id, ip, event_id, seats, member, False)
        ip_keys = [self.ip_held(ip), self.ip_held(ip)]
        with unavailable_as_503():
            ip_reply = await self._reserve(
                keys=ip_keys, args=[token, score, seats, self.ip_cap, "", 0]
            )
        if not int(ip_reply[0]):
            await reservation.cancel()
            _refuse_unless_ok(ip_reply, self.ip_cap, "your network address")
        reservation.ip_reserved = True
        return reservation

    async def ended(self, user_id: int, record: Record, released: bool) -> None:
        """A hold was confirmed (no cooldown) or released (cooldown from now)."""
        if not self.enabled:
            return
        held = self.user_held(user_id)
        with unavailable_as_503():
            members: list[bytes] = await self.redis.zrange(held, 0, -1)  # type: ignore[assignment]
            texts = [bytes(m).decode() for m in members]
            mine = [m for m in texts if m.startswith(f"{record.job_id}|")]
            cooling = f"{record.event_id}|{record.job_id}"
            async with self.redis.pipeline(transaction=False) as pipe:
                for member in mine:
                    pipe.zrem(held, member)
                if released:
                    pipe.zadd(self.user_cool(user_id), {cooling: self.now_ms() + self.cooldown_ms})
                else:
                    pipe.zrem(self.user_cool(user_id), cooling)
                await pipe.execute()
            for member in mine:
                _, seats, ip = member.split("|", 2)
                await self.redis.zrem(self.ip_held(ip), f"{record.job_id}|{seats}")


def _refuse_unless_ok(reply: Any, cap: int, who: str) -> None:
    if int(reply[0]):
        return
    kind = reply[1].decode() if isinstance(reply[1], bytes) else str(reply[1])
    if kind == "COOLDOWN":
        retry_after = max(1, math.ceil((int(reply[2]) - HoldGuard.now_ms()) / 1000))
        raise ApiError(
            409,
            "HOLD_COOLDOWN",
            "You released or let lapse a hold of this event; wait before holding it again",
            {"retryAfter": retry_after},
            headers={"Retry-After": str(retry_after)},
        )
    raise ApiError(
        409,
        "HOLD_LIMIT",
        f"Too many seats held at once by {who}; confirm or release a hold first",
        {"limit": cap, "held": int(reply[2])},
    )
