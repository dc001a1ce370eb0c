"""engine.wire: the lean pipelined connection every engine script call goes through. Each
caller must get its own reply, in any interleaving; a stuck, flushed or restarted Redis must
end in an error (never a hang) and the next call must work again without a restart."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from redis import exceptions as redis_errors
from redis.asyncio import Redis

from engine.redis_client import connect
from engine.scripts import Scripts
from engine.wire import RedisRestarted, Wire
from tests.redisserver import RedisServer

ECHO = "return {ARGV[1], KEYS[1]}"


@pytest_asyncio.fixture(loop_scope="session")
async def private_redis(tmp_path: Path) -> AsyncIterator[RedisServer]:
    server = RedisServer(tmp_path / "redis", appendonly=False)
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_engines_on_one_client_share_one_wire(redis: Redis) -> None:
    assert Scripts(redis).wire is Scripts(redis).wire is Wire.for_client(redis)


async def test_every_caller_gets_its_own_reply_across_ticks_and_cancellations(
    redis_url: str,
) -> None:
    """Calls issued from a fresh client while its connection opens, then in bursts spread
    over many loop ticks, some cancelled by their callers: every other caller gets exactly
    its own reply, in any order of completion."""
    client = connect(redis_url)
    try:
        wire = Wire.for_client(client)
        echo = client.register_script(ECHO)
        rng = random.Random(7)
        calls: list[tuple[int, asyncio.Future[object]]] = []
        for n in range(3000):
            calls.append((n, wire.call(echo, [f"k{n % 17}"], [n])))
            if rng.random() < 0.05:
                calls[-1][1].cancel()
            if rng.random() < 0.2:
                await asyncio.sleep(0)
        for n, future in calls:
            if future.cancelled():
                continue
            assert await future == [str(n).encode(), f"k{n % 17}".encode()]
    finally:
        await client.aclose()


async def test_a_flushed_script_cache_is_reloaded_not_failed(private_redis: RedisServer) -> None:
    client = connect(private_redis.url)
    try:
        wire = Wire.for_client(client)
        echo = client.register_script(ECHO)
        await client.script_load(ECHO)
        assert await wire.call(echo, ["a"], [1]) == [b"1", b"a"]
        await client.script_flush()
        replies = await asyncio.gather(*(wire.call(echo, ["b"], [n]) for n in range(50)))
        assert replies == [[str(n).encode(), b"b"] for n in range(50)]
    finally:
        await client.aclose()


async def test_a_stalled_redis_fails_callers_with_a_timeout_then_serves_again(
    private_redis: RedisServer,
) -> None:
    """CLIENT PAUSE holds every write for 30 s; with a 0.3 s timeout the callers must hear
    TimeoutError (not wait the pause out), and after UNPAUSE the next call is answered."""
    client = connect(private_redis.url, timeout=0.3)
    admin = connect(private_redis.url)
    try:
        wire = Wire.for_client(client)
        echo = client.register_script(ECHO)
        assert await wire.call(echo, ["a"], [0]) == [b"0", b"a"]
        await admin.execute_command("CLIENT", "PAUSE", 30_000, "WRITE")
        stuck = [wire.call(echo, ["a"], [n]) for n in range(20)]
        outcomes = await asyncio.wait_for(
            asyncio.gather(*stuck, return_exceptions=True), timeout=10
        )
        assert all(isinstance(o, redis_errors.TimeoutError) for o in outcomes), outcomes
        await admin.execute_command("CLIENT", "UNPAUSE")
        assert await wire.call(echo, ["a"], [1]) == [b"1", b"a"]
    finally:
        await admin.execute_command("CLIENT", "UNPAUSE")
        await admin.aclose()
        await client.aclose()


async def test_a_restarted_redis_fails_the_calls_in_between_then_serves_again(
    private_redis: RedisServer,
) -> None:
    client = connect(private_redis.url, timeout=1.0)
    try:
        wire = Wire.for_client(client)
        echo = client.register_script(ECHO)
        assert await wire.call(echo, ["a"], [0]) == [b"0", b"a"]
        private_redis.stop()
        with pytest.raises((redis_errors.ConnectionError, redis_errors.TimeoutError)):
            await asyncio.wait_for(wire.call(echo, ["a"], [1]), timeout=10)
        heard: list[str] = []
        wire.restart_listeners.append(lambda: heard.append("restarted"))
        private_redis.start()
        # A new server run may hold older data: what was waiting for the new connection
        # fails, and the inventory watcher hears of it, before anything runs there.
        with pytest.raises(RedisRestarted):
            await wire.call(echo, ["a"], [2])
        assert heard == ["restarted"]
        # the restarted server has no scripts: the reply also proves NOSCRIPT is handled
        assert await wire.call(echo, ["a"], [3]) == [b"3", b"a"]
        assert heard == ["restarted"]
    finally:
        await client.aclose()


@pytest.mark.parametrize(
    ("reply", "kind"),
    [
        ("LOADING Redis is loading the dataset in memory", redis_errors.BusyLoadingError),
        ("TRYAGAIN Multiple keys request during rehashing of slot", redis_errors.TryAgainError),
        ("CLUSTERDOWN The cluster is down", redis_errors.ClusterDownError),
        ("MASTERDOWN Link with MASTER is down", redis_errors.MasterDownError),
    ],
)
async def test_transient_error_replies_become_503s_not_500s(redis: Redis, reply: str, kind):
    """The wire types error replies as redis-py does, so the ones that mean "not now" become
    EngineUnavailable (503) like a lost link, and a real error stays a ResponseError."""
    from engine.booking import guarded
    from engine.errors import EngineUnavailable

    wire = Wire.for_client(redis)
    script = redis.register_script(f"return redis.error_reply({reply!r})")
    with pytest.raises(kind):
        await wire.call(script, ["k"], [])
    with pytest.raises(EngineUnavailable):
        await guarded(lambda: wire.call(script, ["k"], []))
    wrong = redis.register_script("return redis.error_reply('WRONGTYPE not now either')")
    with pytest.raises(redis_errors.ResponseError) as plain:
        await wire.call(wrong, ["k"], [])
    assert type(plain.value) is redis_errors.ResponseError  # a real error stays one
