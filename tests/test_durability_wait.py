"""Durability mode wait:N against a real replica: WAIT must cover the booking's own write.
WAIT only waits for the writes of the connection it is sent on, so it has to follow the
script on the engine's wire; on any other connection it answers at once, whatever the
replica has."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

from engine.booking import Engine
from engine.keys import KeySpace
from engine.redis_client import connect
from tests.redisserver import RedisServer
from tests.test_engine import inventory, spec

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def _replicating(replica_url: str, within: float = 10) -> None:
    client = connect(replica_url)
    try:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            info = await client.info("replication")
            if info.get("master_link_status") == "up":
                return
            await asyncio.sleep(0.05)
        raise TimeoutError("the replica never caught up with its primary")
    finally:
        await client.aclose()


async def test_wait_counts_a_booking_a_stalled_replica_never_acknowledged(tmp_path: Path):
    primary = RedisServer(tmp_path / "primary", appendonly=False)
    replica = RedisServer(tmp_path / "replica", appendonly=False)
    primary.start()
    replica.start()
    redis = connect(primary.url)
    try:
        replica_client = connect(replica.url)
        await replica_client.execute_command("REPLICAOF", "127.0.0.1", str(primary.port))
        await replica_client.aclose()
        await _replicating(replica.url)
        engine = Engine(redis, KeySpace("waittest", 4), wait_replicas=(1, 300))
        await engine.load_event(spec(capacity=5, max_per_user=5))
        await engine.load_event(spec(event_id=2, capacity=50))

        await engine.book(1, 1)  # the replica is live: WAIT 1 is answered by its ack
        assert engine.under_replicated == 0

        assert replica.proc is not None
        os.kill(replica.proc.pid, signal.SIGSTOP)  # connected, but acknowledges nothing
        try:
            result = await engine.book(1, 2)
            # Many at once behind the stalled replica: they share WAITs (one per loop tick)
            # rather than queue one 300 ms WAIT each past the engine's 2 s Redis timeout,
            # and every booking that stands is answered as standing.
            burst = await asyncio.gather(*(engine.book(2, u) for u in range(1, 41)))
        finally:
            os.kill(replica.proc.pid, signal.SIGCONT)
        assert result.record.status == "CONFIRMED"  # it stands: it is in the primary
        assert [r.record.status for r in burst] == ["CONFIRMED"] * 40
        assert engine.under_replicated == 41  # and every shortfall is counted, not hidden
        assert (await inventory(engine)).sold == 2
        assert (await inventory(engine, 2)).sold == 40
    finally:
        await redis.aclose()
        replica.stop()
        primary.stop()
