"""Exactly once (DESIGN invariant 6): 40 identical requests for one state change, in parallel
over two real API processes, while a persister writes and acks, at every stage of the
record's life: only in Redis, in flight to Postgres, persisted (and, for a booking, evicted
from Redis). Exactly one succeeds, seats move once, per-user counts stay exact, and Postgres
ends with exactly the final version. `make soak` runs the same rounds many more times."""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from engine.keys import KeySpace
from persistence.persister import Persister
from persistence.reconcile import Reconciler
from tests.support import Proc, auth, drained, start_server, stop_and_drain

PARALLEL = 40
STAGES = ("redis", "inflight", "persisted")
OPS = ("cancel", "confirm", "release", "rebook")
SOAK_ROUNDS = int(os.environ.get("BOXOFFICE_SOAK_ROUNDS", "17"))  # x 12 combinations = 204


@dataclass
class Stage:
    """Two API processes, an in-test persister (so a test can put a record in flight), and
    an HTTP session."""

    servers: list[tuple[Proc, str]]
    session: aiohttp.ClientSession
    persister: Persister
    keys: KeySpace
    pool: Any
    engine: Any
    admin: str

    def url(self, index: int, path: str) -> str:
        return f"{self.servers[index % 2][1]}{path}"

    async def call(
        self,
        index: int,
        method: str,
        path: str,
        token: str,
        headers: dict[str, str] | None = None,
        **kw: Any,
    ) -> Any:
        async with self.session.request(
            method, self.url(index, path), headers={**auth(token), **(headers or {})}, **kw
        ) as response:
            body = await response.json()
            return response.status, body

    async def new_event(self, capacity: int = 3) -> int:
        body = {"name": "Race", "venue": "Hall", "time": "2030-01-01T00:00:00Z"}
        status, created = await self.call(
            0, "POST", "/api/events/create", self.admin, json={**body, "capacity": capacity}
        )
        assert status == 200, created
        return int(created["id"])

    async def counts(self, event_id: int) -> tuple[int, int, int]:
        """(available, sold, held) as Redis holds them."""
        inv = (await self.engine.inventories([event_id]))[event_id]
        return inv.available, inv.sold, inv.held

    async def user_seats(self, event_id: int, user_id: int) -> int:
        raw = await self.engine.redis.hget(self.keys.event(event_id).users, str(user_id))
        return int(raw or 0)


@pytest_asyncio.fixture(loop_scope="session")
async def stage(config, pool, accounts, services, engine, tmp) -> AsyncIterator[Stage]:
    _, admin = await accounts.admin()
    servers = [await start_server(config, tmp, "a"), await start_server(config, tmp, "b")]
    persister = Persister(services.redis, pool, services.keys, batch_size=500)
    try:
        async with aiohttp.ClientSession() as session:
            yield Stage(servers, session, persister, services.keys, pool, engine, admin)
    finally:
        await persister.leases.release_all()
        stop_and_drain(servers, config, tmp)


async def _put_at(stage: Stage, where: str, booking_id: int) -> None:
    """Bring the record's latest version to a stage of its life."""
    shard = stage.keys.shard_of_booking(booking_id)
    if where == "inflight":
        await stage.persister.leases.take_all()  # drain_once lets go of them at its end
        assert await stage.persister._claim(shard)  # claimed, not yet written or acked
    elif where == "persisted":
        await stage.persister.drain_once()
        assert await drained(stage.engine.redis, stage.keys)


async def _acking(stage: Stage, done: asyncio.Event) -> None:
    """The persister writes and acks while the storm runs (evicting what it persisted)."""
    while not done.is_set():
        await stage.persister.drain_once()
        await asyncio.sleep(0.002)


async def _storm(stage: Stage, method: str, path: str, token: str) -> Counter[tuple[int, Any]]:
    done = asyncio.Event()
    acking = asyncio.create_task(_acking(stage, done))
    try:
        results = await asyncio.gather(
            *(stage.call(i, method, path, token) for i in range(PARALLEL))
        )
    finally:
        done.set()
        await acking
    return Counter(
        (status, body.get("replayed") if status < 300 else body.get("code"))
        for status, body in results
    )


async def one_round(stage: Stage, op: str, where: str, user: tuple[int, str]) -> None:
    user_id, token = user
    event_id = await stage.new_event(capacity=3)
    if op == "cancel" or op == "rebook":
        headers = {"Idempotency-Key": f"k-{event_id}"} if op == "rebook" else {}
        status, body = await stage.call(
            0, "POST", f"/api/bookings/{event_id}/book", token, headers=headers
        )
        assert status == 202, body
        booking_id = body["booking"]["id"]
    else:
        status, body = await stage.call(0, "POST", f"/api/bookings/{event_id}/hold", token)
        assert status == 201, body
        booking_id, hold_id = body["bookingId"], body["holdId"]
    await _put_at(stage, where, booking_id)

    if op == "cancel":
        outcomes = await _storm(stage, "DELETE", f"/api/bookings/{booking_id}/cancel", token)
        assert outcomes == {(200, None): 1, (409, "ALREADY_CANCELLED"): PARALLEL - 1}, outcomes
        expected, final = (3, 0, 0), ("CANCELLED", 2)
    elif op == "confirm":
        path = f"/api/bookings/holds/{hold_id}/confirm"
        outcomes = await _storm(stage, "POST", path, token)
        assert outcomes == {(202, False): 1, (202, True): PARALLEL - 1}, outcomes
        expected, final = (2, 1, 0), ("CONFIRMED", 2)
    elif op == "release":
        outcomes = await _storm(stage, "DELETE", f"/api/bookings/holds/{hold_id}", token)
        assert outcomes == {(200, None): 1, (409, "ALREADY_RELEASED"): PARALLEL - 1}, outcomes
        expected, final = (3, 0, 0), ("RELEASED", 2)
    else:  # the same booking request again, 40 times: each replays the first answer
        done = asyncio.Event()
        acking = asyncio.create_task(_acking(stage, done))
        try:
            results = await asyncio.gather(
                *(
                    stage.call(
                        i,
                        "POST",
                        f"/api/bookings/{event_id}/book",
                        token,
                        headers={"Idempotency-Key": f"k-{event_id}"},
                    )
                    for i in range(PARALLEL)
                )
            )
        finally:
            done.set()
            await acking
        assert {(s, b["booking"]["id"], b["replayed"]) for s, b in results} == {
            (202, booking_id, True)
        }
        expected, final = (2, 1, 0), ("CONFIRMED", 1)

    assert await stage.counts(event_id) == expected
    assert await stage.user_seats(event_id, user_id) == expected[1] + expected[2]
    await stage.persister.drain_once()
    row = await stage.pool.fetchrow(
        "SELECT status, version FROM bookings WHERE id = $1", booking_id
    )
    assert (row["status"], row["version"]) == final
    [drift] = await Reconciler(stage.pool, stage.engine).report([event_id])
    assert not drift.drifted, drift


async def _rounds(stage: Stage, accounts: Any, rounds: int) -> int:
    users = await accounts.make(rounds * len(OPS) * len(STAGES))
    done = 0
    for _ in range(rounds):
        for op in OPS:
            for where in STAGES:
                await one_round(stage, op, where, users[done])
                done += 1
    return done


async def test_every_state_change_happens_once_at_every_stage(stage, accounts):
    assert await _rounds(stage, accounts, 1) == len(OPS) * len(STAGES)


async def test_cancels_of_a_persisted_and_evicted_booking_restock_once(stage, accounts):
    """The case users hit first: the record left Redis, 40 cancels read it from Postgres
    while the persister evicts the cancelled version (once one in twenty rounds before the
    tombstones)."""
    for user in await accounts.make(10):
        await one_round(stage, "cancel", "persisted", user)


@pytest.mark.slow
@pytest.mark.timeout(1800)
async def test_soak_every_state_change_happens_once(stage, accounts):
    done = await _rounds(stage, accounts, SOAK_ROUNDS)
    print(f"race rounds: {done}")
    assert done >= 200
