"""Every Redis key name lives here. Keys of one shard share a hash tag, so one script
touches one Redis Cluster slot.

    {p}:{sN}:ev:<event>          hash  inventory and display fields of one event
    {p}:{sN}:ev:<event>:users    hash  user id -> seats held or confirmed
    {p}:{sN}:bookings            hash  booking id -> record JSON (the live record), or a
                                       tombstone (its version) once persisted and evicted
    {p}:{sN}:pending             zset  booking id -> user id, versions not yet in Postgres
    {p}:{sN}:changed             zset  user id // 64 -> Redis ms of the last change to one of their
                                       records here (history's kept pages check it; trimmed)
    {p}:{sN}:outbox              list  confirmed records waiting for Postgres
    {p}:{sN}:inflight            list  records claimed by a persister, not yet acked
    {p}:{sN}:dead                list  poison records with their reason
    {p}:{sN}:lease               str   persister lease token for the shard
    {p}:{sN}:stats               hash  flushed counter and friends; "seq" (the last booking
                                       tick) and "frozen" (set while recovering) fence scripts
    {p}:{sN}:holds               zset  hold (booking) id -> expiry, Redis ms
    {p}:{sN}:imp                 hash  event id -> impressions not yet flushed
    {p}:{sN}:imp:inflight        hash  impressions being flushed, with their batch id
    {p}:{sN}:idem:<user>:<key>   str   first answer to an Idempotency-Key
"""

from __future__ import annotations

from dataclasses import dataclass

_EVENT_KEYS_KEPT = 100_000

# Booking ids are tick * SHARD_SPACE + shard, so a booking id names its shard without a lookup
# (the tick: lua/book.lua).
SHARD_SPACE = 1024


@dataclass(frozen=True, slots=True)
class ShardKeys:
    """The per-shard keys of one shard."""

    tag: str
    bookings: str
    pending: str
    changed: str
    outbox: str
    inflight: str
    dead: str
    lease: str
    stats: str
    holds: str
    impressions: str
    impressions_inflight: str


@dataclass(frozen=True, slots=True)
class EventKeys:
    """The keys one event's scripts touch, all in the event's shard."""

    event_id: int
    shard: int
    inventory: str
    users: str
    shard_keys: ShardKeys


class KeySpace:
    """Builds key names from one configurable prefix and a fixed shard count."""

    def __init__(self, prefix: str = "bo", shard_count: int = 16) -> None:
        if not 1 <= shard_count <= SHARD_SPACE:
            raise ValueError(f"shard_count must be 1..{SHARD_SPACE}")
        self.prefix = prefix
        self.shard_count = shard_count
        self._shards = [self._build_shard(s) for s in range(shard_count)]
        self._events: dict[int, EventKeys] = {}

    def _build_shard(self, shard: int) -> ShardKeys:
        tag = f"{self.prefix}:{{s{shard}}}"
        return ShardKeys(
            tag=tag,
            bookings=f"{tag}:bookings",
            pending=f"{tag}:pending",
            changed=f"{tag}:changed",
            outbox=f"{tag}:outbox",
            inflight=f"{tag}:inflight",
            dead=f"{tag}:dead",
            lease=f"{tag}:lease",
            stats=f"{tag}:stats",
            holds=f"{tag}:holds",
            impressions=f"{tag}:imp",
            impressions_inflight=f"{tag}:imp:inflight",
        )

    def shard_of_event(self, event_id: int) -> int:
        """Stable: depends only on the id and the shard count."""
        return event_id % self.shard_count

    @staticmethod
    def shard_of_booking(booking_id: int) -> int:
        return booking_id % SHARD_SPACE

    @staticmethod
    def tick_of_booking(booking_id: int) -> int:
        """The shard's booking tick that made this id (the "seq" a Redis holding it has)."""
        return booking_id // SHARD_SPACE

    def shard(self, shard: int) -> ShardKeys:
        return self._shards[shard]

    def shards(self) -> list[ShardKeys]:
        return list(self._shards)

    def event(self, event_id: int) -> EventKeys:
        """Built once per event and remembered (every booking asks; the names never change)."""
        keys = self._events.get(event_id)
        if keys is None:
            if len(self._events) >= _EVENT_KEYS_KEPT:
                self._events.clear()
            shard = self.shard_of_event(event_id)
            sk = self._shards[shard]
            inventory = f"{sk.tag}:ev:{event_id}"
            keys = EventKeys(event_id, shard, inventory, f"{inventory}:users", sk)
            self._events[event_id] = keys
        return keys

    def booking_rate(self, user_id: int) -> str:
        """The per-user booking limit's counter (its own slot: one key per user)."""
        return f"{self.prefix}:rl:{{book:{user_id}}}"

    def idempotency(self, shard: int, user_id: int, key: str) -> str:
        """The key's name; without a key, the shard's placeholder (scripts leave it alone,
        but KEYS must still name a key of the shard's slot)."""
        tag = self._shards[shard].tag
        return f"{tag}:idem:{user_id}:{key}" if key else f"{tag}:idem:-"

    def events_cache(self, generation: int, page: int, limit: int) -> str:
        """The cached event list (metadata only; live counts are overlaid per request)."""
        return f"{self.prefix}:cache:events:{generation}:{page}:{limit}"

    def impression_seen(self, event_id: int, viewer: str) -> str:
        """Set for a minute when `viewer` (a user id or an address) has been counted. In the
        event's shard, so view.lua counts and reads in one call (one Cluster slot)."""
        return f"{self.event(event_id).shard_keys.tag}:seen:{event_id}:{viewer}"

    @property
    def events_cache_generation(self) -> str:
        return f"{self.prefix}:cache:events:gen"

    @property
    def persister_paused(self) -> str:
        return f"{self.prefix}:persister:paused"

    def pattern(self) -> str:
        """SCAN pattern matching every key of this key space (tests and admin tools only)."""
        return f"{self.prefix}:*"
