"""Issue 16: failed logins are counted per (account, network), slow down before they block,
and never keep the owner out of their account from a clean network. Source addresses are
picked on the loopback net (127.0.x.y: each x is its own /24)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from api.app import init_app
from api.context import SERVICES
from api.loginguard import delay_after, network_of
from engine.config import Config

EMAIL, PASSWORD = "bob@example.com", "Password123!"


@pytest_asyncio.fixture(loop_scope="session")
async def guarded(config: Config) -> AsyncIterator[TestClient[Any, Any]]:
    """Rate limits on, with a per-IP login limit the storms below stay under."""
    config = dataclasses.replace(config, rate_limits="on", rate_login_ip="1000/minute")
    async with TestClient(TestServer(init_app(config))) as client:
        body = {"name": "Bob", "email": EMAIL, "password": PASSWORD}
        assert (await client.post("/api/auth/register", json=body)).status == 200
        yield client


async def login_from(client: Any, ip: str, password: str) -> aiohttp.ClientResponse:
    connector = aiohttp.TCPConnector(local_addr=(ip, 0))
    async with aiohttp.ClientSession(connector=connector) as session:
        url = str(client.make_url("/api/auth/login"))
        async with session.post(url, json={"email": EMAIL, "password": password}) as response:
            await response.read()
            return response


async def test_a_storm_from_other_networks_cannot_lock_the_owner_out(guarded):
    attackers = ["127.0.1.1", "127.0.2.1", "127.0.3.1", "127.0.4.1"]
    statuses = [
        (await login_from(guarded, attackers[i % 4], "Wrong-pass-1")).status for i in range(52)
    ]
    assert 429 in statuses  # the attackers' own networks are throttled
    owner = await login_from(guarded, "127.0.9.9", PASSWORD)
    assert owner.status == 200


async def test_failures_slow_down_before_they_block(guarded, config):
    ip = "127.0.5.1"
    first = [(await login_from(guarded, ip, "Wrong-pass-1")).status for _ in range(4)]
    assert first == [400, 400, 400, 400]  # free failures, then the 4th is still heard
    slowed = await login_from(guarded, ip, PASSWORD)  # even the right password waits now
    assert slowed.status == 429
    assert 1 <= int(slowed.headers["Retry-After"]) <= delay_after(4, 3)
    guard = guarded.app[SERVICES].logins
    network_key = guard._keys(EMAIL, ip)[1]
    redis = guarded.app[SERVICES].redis
    for n in range(5, 11):  # let each delay pass by moving the last failure back in time
        await redis.hset(network_key, "last", repr(time.time() - 61))
        assert (await login_from(guarded, ip, "Wrong-pass-1")).status == 400, n
    await redis.hset(network_key, "last", repr(time.time() - 61))
    blocked = await login_from(guarded, ip, PASSWORD)
    assert blocked.status == 429 and int(blocked.headers["Retry-After"]) > 60
    assert (await login_from(guarded, "127.0.6.1", PASSWORD)).status == 200


async def test_a_success_clears_only_its_own_network(guarded):
    for _ in range(4):
        await login_from(guarded, "127.0.7.1", "Wrong-pass-1")
        await login_from(guarded, "127.0.8.1", "Wrong-pass-1")
    redis = guarded.app[SERVICES].redis
    guard = guarded.app[SERVICES].logins
    await redis.hset(guard._keys(EMAIL, "127.0.7.1")[1], "last", repr(time.time() - 61))
    assert (await login_from(guarded, "127.0.7.1", PASSWORD)).status == 200
    assert (await login_from(guarded, "127.0.7.2", "Wrong-pass-1")).status == 400
    assert (await login_from(guarded, "127.0.8.1", PASSWORD)).status == 429


async def test_under_a_distributed_attack_failing_networks_are_refused_clean_ones_not(config):
    config = dataclasses.replace(
        config, rate_limits="on", rate_login_ip="1000/minute", rate_login_email="5/15 minutes"
    )
    async with TestClient(TestServer(init_app(config))) as client:
        body = {"name": "Bob", "email": EMAIL, "password": PASSWORD}
        assert (await client.post("/api/auth/register", json=body)).status == 200
        for x in range(1, 6):
            assert (await login_from(client, f"127.0.{x}.1", "Wrong-pass-1")).status == 400
        assert (await login_from(client, "127.0.1.1", "Wrong-pass-1")).status == 429
        assert (await login_from(client, "127.0.1.1", PASSWORD)).status == 429
        assert (await login_from(client, "127.0.20.1", PASSWORD)).status == 200


def test_networks_are_slash_24_and_slash_64():
    assert network_of("203.0.113.77") == "203.0.113.0/24"
    assert network_of("::ffff:203.0.113.77") == "203.0.113.0/24"
    assert network_of("2001:db8:1:2:3:4:5:6") == "2001:db8:1:2::/64"
    assert network_of("unknown") == "unknown"
    assert [delay_after(n, 3) for n in (0, 3, 4, 5, 9, 12)] == [0, 0, 2, 4, 60, 60]
