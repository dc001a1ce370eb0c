"""Redis-side primitives of reconciliation: consistent snapshots of an event, repairs applied
as deltas, the booking sequence floor, restoring booking records, and the inventory epoch."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
from redis.asyncio import RedisCluster

from engine.booking import Engine, guarded, parse_inventory, script_reply
from engine.records import Inventory, Record, decode_record


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One event's counters and per-user seats, with every record of its shard not yet in
    Postgres (outbox + in flight), all read in one MULTI so they agree with each other, and
    the Redis time of that MULTI."""

    event_id: int
    inventory: Inventory | None
    user_seats: dict[int, int]
    pending: list[Record] = field(default_factory=list)
    now_ms: int = 0


# Redis Cluster refuses a keyless TIME inside a MULTI; a script given one of the snapshot's
# keys runs on the same node, in the same transaction.
SERVER_TIME = "return redis.call('TIME')"


class Recovery:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.redis = engine.redis
        self.keys = engine.keys
        self.scripts = engine.scripts

    @property
    def epoch_key(self) -> str:
        return f"{self.keys.prefix}:epoch"

    @property
    def recovered_key(self) -> str:
        return f"{self.keys.prefix}:recovered"

    async def recovered_run(self) -> str | None:
        """The run id of the Redis server the last recovery was made on."""
        value = await guarded(lambda: self.redis.get(self.recovered_key))
        if value is None:
            return None
        return value.decode() if isinstance(value, bytes) else str(value)

    async def mark_recovered(self, run_id: str) -> None:
        await guarded(lambda: self.redis.set(self.recovered_key, run_id))

    async def epoch(self) -> str | None:
        value = await guarded(lambda: self.redis.get(self.epoch_key))
        if value is None:
            return None
        return value.decode() if isinstance(value, bytes) else str(value)

    async def run_id(self) -> str:
        """Changes whenever the Redis server restarts (on a cluster: any primary restarts,
        or another node takes over a primary's slots)."""
        if isinstance(self.redis, RedisCluster):
            cluster = self.redis
            nodes: Any = await guarded(
                lambda: cluster.info("server", target_nodes=RedisCluster.PRIMARIES)
            )  # {node name: INFO}
            return ",".join(
                sorted(f"{name}={info.get('run_id', '')}" for name, info in nodes.items())
            )
        info: Any = await guarded(lambda: self.redis.info("server"))
        return str(info.get("run_id", ""))

    async def set_epoch(self, epoch: str) -> None:
        await guarded(lambda: self.redis.set(self.epoch_key, epoch))

    @staticmethod
    def new_epoch() -> str:
        return secrets.token_hex(8)

    async def snapshot(self, event_id: int) -> Snapshot:
        ek = self.engine.keys.event(event_id)
        sk = ek.shard_keys

        async def read() -> list[Any]:
            pipe = self.redis.pipeline(transaction=True)  # one slot: a MULTI is atomic
            pipe.hmget(ek.inventory, ["cap", "avail", "sold", "held", "mpu", "open"])
            pipe.hgetall(ek.users)
            pipe.lrange(sk.inflight, 0, -1)
            pipe.lrange(sk.outbox, 0, -1)
            pipe.eval(SERVER_TIME, 1, ek.inventory)  # TIME, routed by a key (cluster-safe)
            return await pipe.execute()

        inventory_row, users, inflight, outbox, (seconds, micros) = await guarded(read)
        pending = [r for r in _decode_many([*inflight, *outbox]) if r.event_id == event_id]
        return Snapshot(
            event_id,
            parse_inventory(inventory_row),
            {int(u): int(s) for u, s in users.items()},
            pending,
            int(seconds) * 1000 + int(micros) // 1000,
        )

    async def snapshot_pending(self, shard: int) -> list[Record]:
        """Every record of a shard not yet in Postgres (in flight, then waiting)."""
        sk = self.keys.shard(shard)

        async def read() -> list[Any]:
            pipe = self.redis.pipeline(transaction=True)
            pipe.lrange(sk.inflight, 0, -1)
            pipe.lrange(sk.outbox, 0, -1)
            return await pipe.execute()

        inflight, outbox = await guarded(read)
        return _decode_many([*inflight, *outbox])

    async def repair(
        self,
        event_id: int,
        sold_drift: int,
        capacity: int,
        user_drift: dict[int, int],
        held_drift: int = 0,
    ) -> int:
        """Correct a loaded event by the drift found against a snapshot; returns available."""
        ek = self.keys.event(event_id)
        pairs = [x for user, d in user_drift.items() if d for x in (user, d)]
        reply = await guarded(
            lambda: self.scripts.repair_event(
                keys=[ek.inventory, ek.users], args=[sold_drift, capacity, held_drift, *pairs]
            )
        )
        return int(script_reply(reply)[1])

    async def raise_sequence(self, shard: int, floor: int) -> int:
        sk = self.keys.shard(shard)
        return int(await guarded(lambda: self.scripts.raise_seq(keys=[sk.stats], args=[floor])))

    async def restore_records(self, records: Iterable[Record]) -> int:
        """Bring Redis's booking records up to these versions (Postgres's), where Redis lacks
        them or holds an older one: live holds as full records back in the expiries, the
        rest as tombstones (lua/restore.lua). A newer version in Redis is kept. Returns how
        many records changed."""
        by_shard: dict[int, list[Record]] = {}
        for record in records:
            by_shard.setdefault(self.keys.shard_of_booking(record.id), []).append(record)
        changed = 0
        for shard, shard_records in by_shard.items():
            if shard >= self.keys.shard_count:
                continue
            sk = self.keys.shard(shard)
            keys = [sk.bookings, sk.holds, sk.pending, sk.changed]
            for i in range(0, len(shard_records), 500):
                args: list[Any] = []
                for r in shard_records[i : i + 500]:
                    held = r.status == "HELD"
                    full = msgspec.json.encode(r) if held else ""
                    args += [r.id, r.version, full, r.expires_ms if held else 0]
                reply = await guarded(
                    lambda k=keys, a=args: self.scripts.restore(keys=k, args=a)  # type: ignore[misc]
                )
                changed += int(script_reply(reply)[1])
        return changed

    async def loaded(self, event_ids: list[int]) -> set[int]:
        """Which of these events have inventory in Redis (one pipelined round trip)."""
        if not event_ids:
            return set()

        async def read() -> list[Any]:
            pipe = self.redis.pipeline(transaction=False)
            for event_id in event_ids:
                pipe.exists(self.keys.event(event_id).inventory)
            return await pipe.execute()

        found = await guarded(read)
        return {e for e, n in zip(event_ids, found, strict=True) if n}

    async def close(self, event_id: int) -> None:
        """Stop selling an event whatever its counters say (a recovery, while frozen)."""
        inventory = self.keys.event(event_id).inventory
        await guarded(lambda: self.redis.hset(inventory, "open", "0"))

    async def fences(self) -> list[tuple[int, bool]]:
        """(booking tick, frozen) of every shard, in one round trip."""

        async def read() -> list[Any]:
            pipe = self.redis.pipeline(transaction=False)
            for sk in self.keys.shards():
                pipe.hmget(sk.stats, ["seq", "frozen"])
            return await pipe.execute()

        rows = await guarded(read)
        return [(int(seq or 0), frozen is not None) for seq, frozen in rows]

    async def fence_trouble(self, floors: Sequence[int]) -> tuple[str, int, int] | None:
        """(why, shard, tick) for the first shard that is frozen ("recovery_pending") or holds
        a booking tick below its floor ("redis_behind"); None when every shard is whole.
        Pass the floors as they were before this read: ids answered meanwhile raise them."""
        for shard, (tick, frozen) in enumerate(await self.fences()):
            if frozen:
                return "recovery_pending", shard, tick
            if tick < floors[shard]:
                return "redis_behind", shard, tick
        return None

    async def freeze(self, frozen: bool) -> None:
        """Stop (or let go again) every seat-changing script of every shard, whichever process
        sends it: set while a recovery is due, cleared when it is done."""

        async def write() -> None:
            pipe = self.redis.pipeline(transaction=False)
            for sk in self.keys.shards():
                if frozen:
                    pipe.hset(sk.stats, "frozen", "1")
                else:
                    pipe.hdel(sk.stats, "frozen")
            await pipe.execute()

        await guarded(write)

    async def set_live_count(self, shard: int, count: int, held: int = 0) -> None:
        """The live-bookings and held-seats counters of a shard, recounted by a recovery
        (while the shard is frozen, so nothing moves them meanwhile)."""
        stats = self.keys.shard(shard).stats
        await guarded(lambda: self.redis.hset(stats, mapping={"bookings": count, "held": held}))


def _decode_many(raws: Iterable[bytes]) -> list[Record]:
    found = []
    for raw in raws:
        try:
            found.append(decode_record(raw))
        except ValueError:
            continue  # poison: the persister will send it to dead letters
    return found
