"""Issue 16: a bot farm cannot corner an event with holds. Per-user and per-IP caps on seats
held at once and on hold requests, a cooldown after a release or a lapse, and an admin's
per-event longest hold. Source addresses are picked on the loopback net (127.0.0.x)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from api.app import init_app
from api.context import SERVICES
from engine.config import Config
from tests.support import auth
from tests.test_api_bookings import create_event


@pytest_asyncio.fixture(loop_scope="session")
async def guarded(config: Config) -> AsyncIterator[TestClient[Any, Any]]:
    """The defaults of the hold guard (rate limits on; registration is not under test)."""
    async with TestClient(TestServer(init_app(dataclasses.replace(config, rate_limits="on")))) as c:
        yield c


async def admin_of(client: Any, accounts: Any) -> str:
    admin_id = (await accounts.make(1, "ADMIN"))[0][0]
    return str(client.app[SERVICES].tokens.issue(admin_id, "a@x.io", "ADMIN"))


async def hold_from(
    client: Any, ip: str, token: str, event_id: int, **body: Any
) -> tuple[int, dict[str, Any]]:
    connector = aiohttp.TCPConnector(local_addr=(ip, 0))
    async with aiohttp.ClientSession(connector=connector) as session:
        url = str(client.make_url(f"/api/bookings/{event_id}/hold"))
        async with session.post(url, json=body, headers=auth(token)) as response:
            return response.status, await response.json()


async def test_a_bot_farm_of_100_accounts_on_10_ips_holds_at_most_its_share(guarded, accounts):
    config = guarded.app[SERVICES].config
    event_id = await create_event(guarded, await admin_of(guarded, accounts), 200, maxPerUser=4)
    bots = await accounts.make(100)
    ips = [f"127.0.0.{10 + i}" for i in range(10)]
    answers = await asyncio.gather(
        *(
            hold_from(guarded, ips[i % 10], token, event_id, seats=4, ttlSeconds=1800)
            for i, (_, token) in enumerate(bots)
        )
    )
    held = sum(body["seats"] for status, body in answers if status == 201)
    share = len(ips) * config.hold_max_seats_ip  # README: N addresses hold N x the IP cap
    assert 0 < held <= share < 200
    refused = {body["code"] for status, body in answers if status != 201}
    assert refused == {"HOLD_LIMIT"}
    inventory = (await guarded.app[SERVICES].engine.inventories([event_id]))[event_id]
    assert inventory.held == held and inventory.available == 200 - held
    _, fan = await accounts.user()
    status, _ = await hold_from(guarded, "127.0.0.99", fan, event_id, seats=2)
    assert status == 201  # a real user still gets seats


async def test_release_then_hold_again_waits_out_the_cooldown(guarded, accounts):
    admin = await admin_of(guarded, accounts)
    event_id = await create_event(guarded, admin, 10, maxPerUser=4)
    other_event = await create_event(guarded, admin, 10, maxPerUser=4)
    _, user = await accounts.user()
    status, held = await hold_from(guarded, "127.0.0.2", user, event_id, seats=2)
    assert status == 201
    released = await guarded.delete(f"/api/bookings/holds/{held['holdId']}", headers=auth(user))
    assert released.status == 200
    status, again = await hold_from(guarded, "127.0.0.2", user, event_id, seats=2)
    assert status == 409 and again["code"] == "HOLD_COOLDOWN"
    cooldown = guarded.app[SERVICES].config.hold_cooldown_seconds
    assert 1 <= again["details"]["retryAfter"] <= cooldown
    assert (await hold_from(guarded, "127.0.0.2", user, other_event, seats=2))[0] == 201


async def test_a_lapsed_hold_also_cools_down_and_a_confirmed_one_does_not(guarded, accounts):
    admin = await admin_of(guarded, accounts)
    lapsing = await create_event(guarded, admin, 10, maxPerUser=4)
    confirming = await create_event(guarded, admin, 10, maxPerUser=4)
    _, user = await accounts.user()
    status, held = await hold_from(guarded, "127.0.0.3", user, lapsing, seats=1, ttlSeconds=1)
    assert status == 201
    status, kept = await hold_from(guarded, "127.0.0.3", user, confirming, seats=1)
    confirmed = await guarded.post(
        f"/api/bookings/holds/{kept['holdId']}/confirm", headers=auth(user)
    )
    assert confirmed.status == 202
    await asyncio.sleep(1.5)  # let the 1 s hold lapse (nothing is asserted on time)
    status, again = await hold_from(guarded, "127.0.0.3", user, lapsing, seats=1)
    assert status == 409 and again["code"] == "HOLD_COOLDOWN"
    assert (await hold_from(guarded, "127.0.0.3", user, confirming, seats=1))[0] == 201


async def test_concurrent_holds_of_one_user_cannot_overshoot_the_cap(guarded, accounts):
    admin = await admin_of(guarded, accounts)
    events = [await create_event(guarded, admin, 10, maxPerUser=4) for _ in range(5)]
    _, user = await accounts.user()
    answers = await asyncio.gather(
        *(hold_from(guarded, "127.0.0.4", user, e, seats=2) for e in events)
    )
    cap = guarded.app[SERVICES].config.hold_max_seats_user
    held = [body for status, body in answers if status == 201]
    assert sum(b["seats"] for b in held) <= cap and len(held) == cap // 2
    release = await guarded.delete(f"/api/bookings/holds/{held[0]['holdId']}", headers=auth(user))
    assert release.status == 200
    free = [e for e in events if e not in {b["eventId"] for b in held}]
    assert (await hold_from(guarded, "127.0.0.4", user, free[0], seats=2))[0] == 201


async def test_hold_requests_are_rate_limited_per_user(guarded, accounts):
    _, user = await accounts.user()
    rate = guarded.app[SERVICES].holdguard.rate_user.amount
    statuses = [
        (await hold_from(guarded, "127.0.0.5", user, 424242, seats=1))[0] for _ in range(rate + 1)
    ]
    assert statuses == [404] * rate + [429]


async def test_an_admin_sets_the_longest_hold_of_one_event(guarded, accounts):
    admin = await admin_of(guarded, accounts)
    event_id = await create_event(guarded, admin, 10, maxPerUser=4)
    path = f"/api/admin/events/{event_id}/hold-policy"
    policy = await guarded.put(path, json={"maxHoldSeconds": 60}, headers=auth(admin))
    assert policy.status == 200
    assert (await policy.json())["effectiveMaxHoldSeconds"] == 60
    _, user = await accounts.user()
    status, body = await hold_from(guarded, "127.0.0.6", user, event_id, ttlSeconds=120)
    assert status == 400 and body["code"] == "INVALID_TTL" and body["details"]["max"] == 60
    status, held = await hold_from(guarded, "127.0.0.6", user, event_id)  # default 600 s
    assert status == 201
    expires = held["expiresAt"].replace("Z", "+00:00")
    from datetime import datetime

    assert datetime.fromisoformat(expires).timestamp() <= time.time() + 61
    cleared = await guarded.put(path, json={"maxHoldSeconds": None}, headers=auth(admin))
    assert (await cleared.json())["maxHoldSeconds"] is None
