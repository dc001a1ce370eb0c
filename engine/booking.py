"""The engine: one method per inventory operation, each one Lua call. Knows nothing of HTTP."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from redis import exceptions as redis_errors
from redis.asyncio import RedisCluster

from engine import randomness
from engine.errors import Code, EngineError, EngineUnavailable
from engine.fence import Fence
from engine.keys import SHARD_SPACE, KeySpace, ShardKeys
from engine.metrics import REDIS_SECONDS, UNDER_REPLICATED
from engine.records import Inventory, Record, decode_record, encode_record, is_record
from engine.redis_client import RedisClient
from engine.scripts import Scripts

T = TypeVar("T")

MAX_SEATS = 1000
# A caller's copy of an evicted record read again this often before answering 503: a copy
# is stale only when another change landed and was persisted between the read and the call.
STALE_RETRIES = 3
_INVENTORY_FIELDS = ("cap", "avail", "sold", "held", "mpu", "open")


@dataclass(frozen=True, slots=True)
class BookResult:
    record: Record
    replayed: bool


# How long a user's change mark (the shard's `changed` zset: the Redis ms of the last change to
# one of their records there, set by every script that changes one) is kept: far longer than
# any page of history an API process keeps (api/history_cache.py), so a kept page never
# outlives the mark that would tell it is stale.
CHANGE_MARKS_KEEP_MS = 60_000
# How many consecutive user ids share one change mark (MARK_USERS in the scripts): one mark
# per user cost ~96 bytes for those 60 s on top of a booking's 125 (the bench's memory run).
# Users of one neighbourhood book different events, so on different shards, each with its
# own marks: 64 wide, ~24 bytes per booking there (and ~1.5 when a sale is one hot event).
# A neighbour's change makes a kept page miss needlessly, never serves a stale one.
CHANGE_MARK_USERS = 64


@dataclass(frozen=True, slots=True)
class RateWindow:
    """A fixed-window attempt counter a booking script checks before anything else."""

    key: str
    limit: int
    window_ms: int


@dataclass(frozen=True, slots=True)
class EventSpec:
    """What inventory loading needs to know of an event."""

    event_id: int
    capacity: int
    max_per_user: int
    name: str
    venue: str
    time: str
    sold: int = 0
    held: int = 0
    open: bool = True
    user_seats: dict[int, int] | None = None


# Redis (or a cluster node, or its slot map) cannot answer now: 503, retry shortly.
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    OSError,
    redis_errors.ClusterError,  # CLUSTERDOWN, MASTERDOWN, a slot still moving after a retry
    redis_errors.RedisClusterException,  # no node covers a slot (yet)
    redis_errors.TryAgainError,  # a multi-key command during resharding
)


async def guarded(call: Callable[[], Awaitable[T]]) -> T:
    """The one place driver errors become engine errors."""
    started = time.perf_counter()
    try:
        return await call()
    except UNAVAILABLE_ERRORS as exc:
        raise EngineUnavailable(str(exc) or type(exc).__name__) from exc
    finally:
        REDIS_SECONDS.observe(time.perf_counter() - started)


def script_reply(reply: Sequence[Any]) -> Sequence[Any]:
    """Raise the script's {"err", CODE, detail} as an EngineError; return an ok reply."""
    if reply[0] == b"err":
        code = Code(reply[1].decode())
        if code is Code.INVENTORY_NOT_READY or code is Code.STALE_RECORD:
            raise EngineError(code)  # the detail is Redis's internals, not the client's
        detail = int(reply[2]) if len(reply) > 2 else None
        raise EngineError(code, detail)
    return reply


class Engine:
    """Reservation operations over one Redis (or Redis Cluster) client."""

    def __init__(
        self,
        redis: RedisClient,
        keys: KeySpace,
        idempotency_ttl: int = 86400,
        journal_size: int = 100_000,
        wait_replicas: tuple[int, int] | None = None,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.scripts = Scripts(redis)
        self.idempotency_ttl = idempotency_ttl
        # The records this process confirmed most recently. If Redis loses its data before
        # the persister flushed them, they are written to Postgres from here (the upsert is
        # idempotent), so a 202 answered just before the loss is not forgotten.
        self.journal: deque[Record] = deque(maxlen=journal_size)
        self.wait_replicas = wait_replicas
        # Where a booking evicted from Redis after persisting is read from (Postgres).
        self.record_source: Callable[[int], Awaitable[Record | None]] | None = None
        self.under_replicated = 0
        self.fence = Fence(keys.shard_count)

    def gate(self) -> None:
        """Every seat-changing operation passes here first: nothing changes seats while the
        watcher cannot prove Redis holds everything this process has seen confirmed."""
        if not self.fence.ready:
            raise EngineError(Code.INVENTORY_NOT_READY)

    def checked(self, reply: Sequence[Any]) -> Sequence[Any]:
        """script_reply, telling the fence's listeners when a script found Redis behind."""
        try:
            return script_reply(reply)
        except EngineError as exc:
            if exc.code is Code.INVENTORY_NOT_READY:
                self.fence.refused()
            raise

    def on_redis_restart(self, listener: Callable[[], None]) -> None:
        """`listener` runs when the engine's connection finds a restarted Redis server (its
        scripts' calls waiting on that connection then fail rather than run there)."""
        self.scripts.wire.restart_listeners.append(listener)

    async def ping(self) -> bool:
        """Redis answers on the path bookings take."""
        return bool(await guarded(self.scripts.wire.ping))

    async def ensure_scripts(self) -> bool:
        """Load any script Redis does not hold (after a restart); True when all are there."""
        scripts = self.scripts.all()

        async def load() -> bool:
            present = await self.redis.script_exists(*[s.sha for s in scripts])
            for script, exists in zip(scripts, present, strict=True):
                if not exists:
                    await self.redis.script_load(script.script)
            return True

        return await guarded(load)

    async def book(
        self,
        event_id: int,
        user_id: int,
        seats: int = 1,
        idempotency_key: str | None = None,
        rate: RateWindow | None = None,
    ) -> BookResult:
        """Book seats. `rate`: a per-user limit counted in the same script (one server
        only); over it, EngineError(RATE_LIMITED, ms until the window resets)."""
        self.gate()
        keys, args = self.take_call(event_id, user_id, seats, idempotency_key)
        if rate is not None:
            keys.append(rate.key)
            args += [rate.limit, rate.window_ms]
        reply = await guarded(lambda: self.scripts.book(keys=keys, args=args))
        ok = self.checked(reply)
        record = decode_record(ok[1])
        if record.event_id != event_id or record.status != "CONFIRMED":  # or a hold's key
            raise EngineError(Code.IDEMPOTENCY_KEY_REUSED)
        if not ok[2]:
            await self.settle(record)
        return BookResult(record, bool(ok[2]))

    def take_call(
        self, event_id: int, user_id: int, seats: int, idempotency_key: str | None
    ) -> tuple[list[Any], list[Any]]:
        """KEYS and ARGV that book.lua and hold.lua share (hold.lua appends its own)."""
        ek = self.keys.event(event_id)
        sk = ek.shard_keys
        idem_key = self.keys.idempotency(ek.shard, user_id, idempotency_key or "")
        keys: list[Any] = [
            ek.inventory, ek.users, sk.bookings, sk.outbox, sk.pending, idem_key, sk.stats,
            sk.changed,
        ]  # fmt: skip
        args: list[Any] = [
            event_id,
            user_id,
            seats,
            ek.shard,
            randomness.token_hex(12),
            idempotency_key or "",
            self.idempotency_ttl,
            SHARD_SPACE,
            self.fence.floors[ek.shard],
        ]
        return keys, args

    async def settle(self, record: Record) -> None:
        """After a script confirmed a change: journal it, raise the fence to its id, and wait
        for replicas if asked."""
        self.journal.append(record)
        self.fence.saw(record.id)
        if self.wait_replicas is not None:
            await self._wait_for_replicas(record, *self.wait_replicas)

    async def _wait_for_replicas(self, record: Record, replicas: int, timeout_ms: int) -> None:
        """Durability mode wait:N: the booking stands either way (it is in the primary and
        its outbox); a shortfall is counted and logged, not hidden. WAIT is routed by the
        record's shard, to the node that ran its script."""
        key = self.keys.shard(KeySpace.shard_of_booking(record.id)).outbox
        try:
            acked = await guarded(lambda: self.scripts.wire.wait(replicas, timeout_ms, key))
        except EngineUnavailable:
            # The change is confirmed in the primary: answering 503 now would invite a
            # retry of a booking that stands. Unknown replication counts as a shortfall.
            acked = 0
        if int(acked) < replicas:
            self.under_replicated += 1
            UNDER_REPLICATED.inc()

    async def get_booking(self, booking_id: int) -> Record | None:
        """The booking's latest version: Redis's record, or Postgres's once it was persisted
        and evicted (Redis then keeps a tombstone naming that version)."""
        shard = KeySpace.shard_of_booking(booking_id)
        if shard >= self.keys.shard_count:
            return None
        sk = self.keys.shard(shard)
        raw = await guarded(lambda: self.redis.hget(sk.bookings, str(booking_id)))
        if raw is not None and is_record(raw):
            return decode_record(raw)
        # Persisted records leave Redis (ack.lua); the system of record still has them.
        return None if self.record_source is None else await self.record_source(booking_id)

    async def with_latest(
        self, booking_id: int, missing: Code, change: Callable[[Record], Awaitable[T]]
    ) -> T:
        """Run a state change on the booking's latest version. Against a tombstone a script
        acts only on a copy of exactly the version it names; a copy read just before another
        change was persisted is refused (STALE_RECORD) and read again."""
        self.gate()
        for _ in range(STALE_RETRIES):
            record = await self.get_booking(booking_id)
            if record is None:
                raise EngineError(missing)
            try:
                return await change(record)
            except EngineError as exc:
                if exc.code is not Code.STALE_RECORD:
                    raise
        raise EngineError(Code.STALE_RECORD)

    async def cancel(self, booking_id: int, actor_id: int, is_admin: bool = False) -> Record:
        async def run(record: Record) -> Record:
            ek = self.keys.event(record.event_id)
            sk = ek.shard_keys
            reply = await guarded(
                lambda: self.scripts.cancel(
                    keys=[
                        ek.inventory,
                        ek.users,
                        sk.bookings,
                        sk.outbox,
                        sk.stats,
                        sk.pending,
                        sk.changed,
                    ],
                    args=[
                        booking_id,
                        record.event_id,
                        actor_id,
                        "1" if is_admin else "0",
                        encode_record(record),
                        self.fence.floors[ek.shard],
                    ],
                )
            )
            return decode_record(self.checked(reply)[1])

        cancelled = await self.with_latest(booking_id, Code.BOOKING_NOT_FOUND, run)
        await self.settle(cancelled)
        return cancelled

    @property
    def cluster(self) -> bool:
        return isinstance(self.redis, RedisCluster)

    def every_shard(self, keys_of: Callable[[ShardKeys], list[str]]) -> list[list[str]]:
        """The KEYS of the calls of a script that reads every shard: on one server one call
        with every shard's keys (keys of several slots are fine there), on a cluster one call
        per shard (a call stays in one slot)."""
        groups = [keys_of(sk) for sk in self.keys.shards()]
        return groups if self.cluster else [[key for group in groups for key in group]]

    async def pending_of_user(self, user_id: int) -> list[Record]:
        """The user's booking records Redis holds and Postgres does not yet (latest versions,
        newest first), by lua/pending.lua. On one server, one call reads every shard (keys of
        several slots are fine there); on a cluster, one call per shard, all in one pipelined
        round trip."""
        calls = self.every_shard(lambda sk: [sk.pending, sk.bookings])

        async def read() -> list[Any]:
            return await asyncio.gather(
                *(self.scripts.pending(keys=keys, args=[user_id]) for keys in calls)
            )

        found = [decode_record(raw) for raws in await guarded(read) for raw in raws]
        return sorted(found, key=lambda r: r.id, reverse=True)

    async def load_event(self, spec: EventSpec) -> int:
        """Load inventory for an event; refuses (ALREADY_LOADED) to overwrite live inventory."""
        ek = self.keys.event(spec.event_id)
        available = max(0, spec.capacity - spec.sold - spec.held)
        pairs = [x for user, seats in (spec.user_seats or {}).items() for x in (user, seats)]
        reply = await guarded(
            lambda: self.scripts.load_event(
                keys=[ek.inventory, ek.users],
                args=[
                    spec.capacity,
                    available,
                    spec.sold,
                    spec.held,
                    spec.max_per_user,
                    "1" if spec.open else "0",
                    spec.name,
                    spec.venue,
                    spec.time,
                    *pairs,
                ],
            )
        )
        return int(script_reply(reply)[1])

    async def update_event(self, spec: EventSpec) -> int:
        """Set a new capacity (refused below sold + held) and display fields; returns available."""
        self.gate()
        ek = self.keys.event(spec.event_id)
        reply = await guarded(
            lambda: self.scripts.update_event(
                keys=[ek.inventory, ek.shard_keys.stats],
                args=[
                    spec.capacity,
                    spec.max_per_user,
                    spec.name,
                    spec.venue,
                    spec.time,
                    self.fence.floors[ek.shard],
                ],
            )
        )
        return int(self.checked(reply)[1])

    async def close_event(self, event_id: int, force: bool = False) -> int:
        """Stop selling; returns seats still taken (which a forced close must then cancel)."""
        self.gate()
        ek = self.keys.event(event_id)
        reply = await guarded(
            lambda: self.scripts.close_event(
                keys=[ek.inventory, ek.shard_keys.stats],
                args=["1" if force else "0", self.fence.floors[ek.shard]],
            )
        )
        return int(self.checked(reply)[1])

    async def live_bookings(self, event_id: int, status: str = "CONFIRMED") -> list[Record]:
        """Confirmed bookings (or live holds: status "HELD") of one event (scans its shard's
        bookings; admin paths only)."""
        sk = self.keys.event(event_id).shard_keys
        found: list[Record] = []
        cursor = 0
        while True:
            reply: Any = await guarded(
                lambda c=cursor: self.redis.hscan(sk.bookings, c, count=1000)  # type: ignore[misc]
            )
            cursor, chunk = reply
            for raw in chunk.values():
                if not is_record(raw):
                    continue  # a tombstone: persisted and final
                record = decode_record(raw)
                if record.event_id == event_id and record.status == status:
                    found.append(record)
            if cursor == 0:
                return found

    async def inventories(self, event_ids: Sequence[int]) -> dict[int, Inventory | None]:
        """Live counts of many events in one round trip; None where not loaded."""
        if not event_ids:
            return {}

        async def fetch() -> list[Any]:
            pipe = self.redis.pipeline(transaction=False)
            for event_id in event_ids:
                pipe.hmget(self.keys.event(event_id).inventory, _INVENTORY_FIELDS)
            return await pipe.execute()

        rows = await guarded(fetch)
        return {eid: parse_inventory(row) for eid, row in zip(event_ids, rows, strict=True)}

    async def count_impression(self, event_id: int) -> int:
        """Count one view in Redis; returns the views not yet flushed to Postgres."""
        ek = self.keys.event(event_id)
        return int(
            await guarded(lambda: self.redis.hincrby(ek.shard_keys.impressions, str(event_id), 1))
        )


def parse_inventory(row: Sequence[bytes | None]) -> Inventory | None:
    if row[0] is None:
        return None
    cap, avail, sold, held, mpu, is_open = row
    return Inventory(
        capacity=int(cap or 0),
        available=int(avail or 0),
        sold=int(sold or 0),
        held=int(held or 0),
        max_per_user=int(mpu or 1),
        open=is_open == b"1",
    )
