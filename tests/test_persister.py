"""The write-behind persister against real Redis and Postgres."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import msgspec

from engine.booking import Engine, EventSpec
from engine.keys import KeySpace
from persistence.persister import Persister
from tests.support import insert_users


async def make_event(pool: Any, engine: Engine, capacity: int = 100, max_per_user: int = 1) -> int:
    event_id = int(
        await pool.fetchval(
            "INSERT INTO events (name, venue, time, capacity, max_per_user)"
            " VALUES ('S', 'H', now(), $1, $2) RETURNING id",
            capacity,
            max_per_user,
        )
    )
    await engine.load_event(EventSpec(event_id, capacity, max_per_user, "S", "H", "t"))
    return event_id


async def rows(pool: Any, event_id: int) -> list[Any]:
    return list(
        await pool.fetch(
            "SELECT id, status, version FROM bookings WHERE event_id = $1 ORDER BY id", event_id
        )
    )


async def test_drain_writes_every_record_once(pool, engine, persister, keys):
    event_id = await make_event(pool, engine)
    users = await insert_users(pool, 50)
    booked = [(await engine.book(event_id, u)).record.id for u in users]
    assert await persister.drain_once() == 50
    assert [r["id"] for r in await rows(pool, event_id)] == sorted(booked)
    assert await persister.drain_once() == 0
    sk = keys.event(event_id).shard_keys
    assert int(await engine.redis.hget(sk.stats, "flushed")) == 50


async def test_a_batch_replayed_after_a_crash_is_a_no_op(pool, engine, persister, keys):
    """A batch left in flight (crash before ack) is written again first; nothing doubles."""
    event_id = await make_event(pool, engine)
    users = await insert_users(pool, 10)
    sk = keys.event(event_id).shard_keys
    for u in users:
        await engine.book(event_id, u)
    batch = await engine.redis.lrange(sk.outbox, 0, -1)
    # Simulate a persister that committed then died before its ack: keep a copy in flight.
    await persister.drain_once()
    committed = await rows(pool, event_id)
    await engine.redis.rpush(sk.inflight, *batch)
    assert await persister.drain_once() == 10
    assert await rows(pool, event_id) == committed
    assert await engine.redis.llen(sk.inflight) == 0


async def test_cancel_wins_in_any_arrival_order(pool, engine, persister, keys):
    event_id = await make_event(pool, engine, capacity=10)
    users = await insert_users(pool, 3)
    sk = keys.event(event_id).shard_keys
    # Same batch: book then cancel.
    first = (await engine.book(event_id, users[0])).record
    await engine.cancel(first.id, users[0])
    # Later batch: book, flush, cancel, flush.
    second = (await engine.book(event_id, users[1])).record
    await persister.drain_once()
    await engine.cancel(second.id, users[1])
    await persister.drain_once()
    # Reversed order: the cancel record arrives before the booking record.
    third = (await engine.book(event_id, users[2])).record
    await engine.cancel(third.id, users[2])
    book_raw, cancel_raw = await engine.redis.lrange(sk.outbox, 0, -1)
    await engine.redis.delete(sk.outbox)
    await engine.redis.rpush(sk.outbox, cancel_raw)
    await persister.drain_once()
    await engine.redis.rpush(sk.outbox, book_raw)
    await persister.drain_once()
    assert [(r["status"], r["version"]) for r in await rows(pool, event_id)] == [
        ("CANCELLED", 2)
    ] * 3


async def test_poison_records_go_to_dead_letters_and_the_rest_commits(
    pool, engine, persister, keys
):
    event_id = await make_event(pool, engine, capacity=10)
    users = await insert_users(pool, 2)
    sk = keys.event(event_id).shard_keys
    await engine.book(event_id, users[0])
    await engine.redis.rpush(sk.outbox, b"{not json")
    await engine.book(event_id, 999_999)  # no such user: a foreign key violation
    await engine.book(event_id, users[1])
    assert await persister.drain_once() == 4
    assert len(await rows(pool, event_id)) == 2
    dead = [json.loads(d) for d in await engine.redis.lrange(sk.dead, 0, -1)]
    reasons = sorted(d["reason"].split(":")[0] for d in dead)
    assert reasons == ["ForeignKeyViolationError", "undecodable"]
    assert all(d["at"] > 0 for d in dead)
    assert await engine.redis.llen(sk.outbox) == 0


async def test_paused_persister_claims_nothing(pool, engine, redis, keys):
    persister = Persister(redis, pool, keys)
    event_id = await make_event(pool, engine)
    [user] = await insert_users(pool, 1)
    await engine.book(event_id, user)
    await redis.set(keys.persister_paused, "1")
    assert await persister.paused()
    await redis.delete(keys.persister_paused)
    assert await persister.drain_once() == 1


async def test_two_persisters_split_the_shards(pool, redis, keys: KeySpace):
    a = Persister(redis, pool, keys, lease_ttl_ms=3000)
    b = Persister(redis, pool, keys, lease_ttl_ms=3000)
    await a.leases.alive()
    await b.leases.alive()
    held_a = await a.leases.rebalance()
    held_b = await b.leases.rebalance()
    held_a = await a.leases.rebalance()
    assert held_a.isdisjoint(held_b)
    assert len(held_a) == len(held_b) == keys.shard_count // 2
    await a.leases.release_all()
    await b.leases.release_all()


async def test_drain_once_outlives_its_lease_ttl(pool, redis, keys, engine):
    """A burst drain longer than one lease TTL keeps its leases (it renews them)."""
    persister = Persister(redis, pool, keys, batch_size=10, lease_ttl_ms=200, parallel=1)
    event_id = await make_event(pool, engine, capacity=3000)
    users = await insert_users(pool, 3000)
    await asyncio.gather(*(engine.book(event_id, u) for u in users))
    assert await persister.drain_once() == 3000
    assert await pool.fetchval("SELECT count(*) FROM bookings") == 3000


async def test_a_round_writes_many_shards_in_one_transaction_and_poison_stays_with_its_shard(
    pool, engine, persister, keys
):
    """flush_shards: the batches of several shards go to Postgres together; a record that can
    never be written goes to the dead letters of ITS shard, and every other record of every
    shard commits and is acked."""
    events = [await make_event(pool, engine, capacity=10) for _ in range(6)]
    by_shard: dict[int, list[int]] = {}
    for event_id in events:
        by_shard.setdefault(keys.event(event_id).shard, []).append(event_id)
    assert len(by_shard) >= 2, "the events should land on several shards"
    users = await insert_users(pool, 2)
    poisoned_event = events[0]
    for event_id in events:
        for user in users:
            await engine.book(event_id, user)
    await engine.book(poisoned_event, 999_999)  # no such user: a foreign key violation
    shards = sorted(by_shard)
    await persister.leases.take_all()
    try:
        handled = await persister.flush_shards(shards)
    finally:
        await persister.leases.release_all()
    expected = [2 * len(by_shard[s]) + (s == keys.event(poisoned_event).shard) for s in shards]
    assert handled == expected
    written = await pool.fetchval("SELECT count(*) FROM bookings")
    assert written == 2 * len(events)
    for shard in shards:
        dead = await engine.redis.lrange(keys.shard(shard).dead, 0, -1)
        poisoned_here = shard == keys.event(poisoned_event).shard
        assert len(dead) == (1 if poisoned_here else 0), (shard, dead)
        assert await engine.redis.llen(keys.shard(shard).outbox) == 0
        assert await engine.redis.llen(keys.shard(shard).inflight) == 0


async def test_a_round_of_many_shards_commits_once(pool, engine, persister, keys):
    """Every row a round writes carries the same inserting transaction id (xmin): one
    commit for all the shards, not one per shard."""
    events = [await make_event(pool, engine, capacity=10) for _ in range(6)]
    users = await insert_users(pool, 3)
    for event_id in events:
        for user in users:
            await engine.book(event_id, user)
    shards = sorted({keys.event(e).shard for e in events})
    assert len(shards) >= 2
    await persister.leases.take_all()
    try:
        assert sum(await persister.flush_shards(shards)) == 3 * len(events)
    finally:
        await persister.leases.release_all()
    assert await pool.fetchval("SELECT count(DISTINCT xmin::text) FROM bookings") == 1


async def test_lanes_open_only_while_a_backlog_fills_whole_batches(pool, engine, redis, keys):
    """With a backlog, a round writes in `parallel` transactions; once no shard fills a
    batch, a round is one transaction (one Postgres backend busy at a time)."""
    persister = Persister(redis, pool, keys, batch_size=2, parallel=4)
    events = [await make_event(pool, engine, capacity=10) for _ in range(8)]
    assert len({keys.event(e).shard for e in events}) == 8
    users = await insert_users(pool, 4)
    for event_id in events:
        for user in users[:3]:
            await engine.book(event_id, user)
    stop = asyncio.Event()
    await persister.leases.take_all()
    try:

        def busy(counts: list[int]) -> list[int]:
            return [c for c in counts if c]

        assert busy(await persister._flush_owned(stop)) == [2] * 8  # full batches: backlog
        first = await pool.fetchval("SELECT count(DISTINCT xmin::text) FROM bookings")
        assert first == 4
        assert busy(await persister._flush_owned(stop)) == [1] * 8  # the rest
        for event_id in events:
            await engine.book(event_id, users[3])
        assert busy(await persister._flush_owned(stop)) == [1] * 8
        last = await pool.fetchval(
            "SELECT count(DISTINCT xmin::text) FROM bookings WHERE user_id = $1", users[3]
        )
        assert last == 1
    finally:
        await persister.leases.release_all()


async def test_an_id_handed_out_twice_is_a_dead_letter_never_a_clobber(pool, engine):
    """Two bookings under one id (a Redis that went back in time): the second is refused as
    poison with the primary key as its reason, and the first keeps its row and can still move
    on to newer versions."""
    from persistence.writer import write_batch

    event_id = await make_event(pool, engine, capacity=10)
    first_user, second_user = await insert_users(pool, 2)
    first = (await engine.book(event_id, first_user)).record
    twin = msgspec.structs.replace(first, u=second_user, j=f"{first.id}-{'0' * 24}")
    assert await write_batch(pool, [first]) == []
    poison = await write_batch(pool, [twin])
    assert [(r.job_id, "bookings_pkey" in why) for r, why in poison] == [(twin.job_id, True)]
    cancelled = msgspec.structs.replace(first, st="CANCELLED", v=2)
    assert await write_batch(pool, [cancelled]) == []
    row = await pool.fetchrow(
        "SELECT user_id, job_id, status FROM bookings WHERE id = $1", first.id
    )
    assert (row["user_id"], row["job_id"], row["status"]) == (first_user, first.job_id, "CANCELLED")
