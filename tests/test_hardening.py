"""Issue 16: what every answer says about the server, and what answers with secrets say
about caching."""

from __future__ import annotations

import dataclasses

import aiohttp
from aiohttp.test_utils import TestClient, TestServer

from api.app import init_app
from api.embedded import free_port
from tests.support import METRICS_AUTH, auth


async def test_no_answer_names_python_or_aiohttp(client):
    for response in [
        await client.get("/healthz"),
        await client.get("/api/nope"),
        await client.get("/api/docs"),
        await client.post("/api/auth/login", data=b"{"),
    ]:
        server = response.headers.get("Server", "")
        assert "python" not in server.lower() and "aiohttp" not in server.lower(), server


async def test_every_answer_says_nosniff(client):
    for response in [
        await client.get("/healthz"),
        await client.get("/api/events/view"),
        await client.get("/api/nope"),
        await client.post("/api/auth/login", data=b"{"),
    ]:
        assert response.headers.get("X-Content-Type-Options") == "nosniff"


async def test_answers_carrying_a_token_or_a_user_are_never_stored(client):
    body = {"name": "C", "email": "cache@example.com", "password": "Password123!"}
    registered = await client.post("/api/auth/register", json=body)
    token = (await registered.json())["token"]
    logged_in = await client.post(
        "/api/auth/login", json={"email": body["email"], "password": body["password"]}
    )
    me = await client.get("/api/auth/me", headers=auth(token))
    for response in (registered, logged_in, me):
        assert response.status == 200
        assert "no-store" in response.headers.get("Cache-Control", "")


# -- /metrics is not public ----------------------------------------------------------------


async def test_metrics_need_the_metrics_token_on_the_api_port(client, accounts):
    _, admin = await accounts.admin()
    for headers in ({}, auth(admin), {"Authorization": "Bearer wrong"}):
        response = await client.get("/metrics", headers=headers)
        assert response.status == 401 and "boxoffice_" not in await response.text()
    scraped = await client.get("/metrics", headers=METRICS_AUTH)
    assert scraped.status == 200 and "boxoffice_http_requests_total" in await scraped.text()


async def test_metrics_without_a_token_configured_are_not_served_on_the_api_port(config):
    config = dataclasses.replace(config, metrics_token="")
    async with TestClient(TestServer(init_app(config))) as client:
        response = await client.get("/metrics")
        assert response.status == 404
        assert (await response.json())["code"] == "METRICS_NOT_PUBLIC"


async def test_metrics_on_their_own_port_need_no_token(config):
    port = free_port()
    config = dataclasses.replace(config, metrics_token="", metrics_port=port)
    async with TestClient(TestServer(init_app(config))) as client:
        assert (await client.get("/metrics")).status == 404  # not on the API port
        url = f"http://127.0.0.1:{port}/metrics"
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            assert response.status == 200
            assert "boxoffice_outbox_waiting" in await response.text()


# -- impressions and the event-list cache ----------------------------------------------


async def test_impressions_count_once_per_viewer_per_minute(client, accounts):
    from tests.test_api_bookings import create_event

    _, admin = await accounts.admin()
    (_, alice), (_, bob) = await accounts.make(2)
    event_id = await create_event(client, admin)
    path = f"/api/events/{event_id}/view"
    for _ in range(10):
        await client.get(path)  # one anonymous viewer, reloading
    for token in (alice, alice, alice, bob):
        await client.get(path, headers=auth(token))
    connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    url = str(client.make_url(path))
    async with aiohttp.ClientSession(connector=connector) as other, other.get(url) as response:
        assert response.status == 200
    last = await (await client.get(path)).json()
    assert last["impressions"] == 4  # the address, alice, bob, the other address


async def test_event_list_cache_keys_are_bounded_whatever_page_and_limit(client, services, redis):
    from tests.test_api_bookings import create_event

    _, admin = await accounts_admin(services)
    for _ in range(3):
        await create_event(client, admin)
    seen = []
    for page in range(1, 8):
        for limit in range(1, 16):
            body = await (await client.get(f"/api/events/view?page={page}&limit={limit}")).json()
            seen.append([e["id"] for e in body["data"]])
            assert body["total"] == 3
    assert seen[:3] == [[1], [1, 2], [1, 2, 3]]  # page 1, limits 1..3: the same order
    keys = [k async for k in redis.scan_iter(match=f"{services.keys.prefix}:cache:events:*")]
    assert len(keys) <= 2  # the generation counter and one chunk (3 events)


async def accounts_admin(services):
    from tests.support import insert_users

    admin_id = (await insert_users(services.pool, 1, "ADMIN", prefix="cache-admin"))[0]
    return admin_id, services.tokens.issue(admin_id, "a@x.io", "ADMIN")


async def test_create_admin_spells_the_email_as_the_api_does(config, pool):
    from api.cli import _create_admin
    from persistence import queries

    await _create_admin(config, "\uff21dmin@Example.com", "Password123!", "Admin")
    row = await queries.user_by_email(pool, "admin@example.com")
    assert row is not None and row["role"] == "ADMIN"
