"""The crowd's routes read Redis and this process's memory, not Postgres: they keep answering
while Postgres is down, and every change to an event shows on every API process in its next
request (the generation in Redis)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from api.app import init_app
from api.catalog import COUNTS_MAX_AGE
from tests.support import app_on_private_postgres, auth
from tests.test_api_bookings import create_event


async def test_list_page_booking_and_status_answer_from_redis_while_postgres_is_down(
    config, private_pg
):
    async with app_on_private_postgres(config, private_pg) as (client, admin, user):
        event_id = await create_event(client, admin, capacity=5, maxPerUser=2)
        assert (await client.get("/api/events/view")).status == 200  # as the crowd does
        assert (await client.get(f"/api/events/{event_id}/view")).status == 200
        first = await client.post(f"/api/bookings/{event_id}/book", headers=auth(user))
        assert first.status == 202
        await asyncio.to_thread(private_pg.stop, "fast")
        try:
            await asyncio.sleep(COUNTS_MAX_AGE)  # the list re-reads its live counts
            listed = await client.get("/api/events/view")
            assert listed.status == 200, await listed.text()
            [event] = (await listed.json())["data"]
            assert (event["id"], event["available"]) == (event_id, 4)
            page = await client.get(f"/api/events/{event_id}/view")
            assert page.status == 200, await page.text()
            assert (await page.json())["available"] == 4
            second = await client.post(f"/api/bookings/{event_id}/book", headers=auth(user))
            assert second.status == 202, await second.text()
            body = await second.json()
            status = await client.get(body["statusEndpoint"])
            assert status.status == 200, await status.text()
            status_body = await status.json()
            assert status_body["persisted"] is False
            assert status_body["result"]["eventName"] == "Show"
            assert status_body["result"]["bookingStatus"] == "CONFIRMED"
        finally:
            await asyncio.to_thread(private_pg.start)


async def _names(client: Any) -> dict[int, str]:
    body = await (await client.get("/api/events/view")).json()
    return {e["id"]: e["name"] for e in body["data"]}


async def test_a_change_on_one_process_shows_on_another_in_its_next_request(config, accounts):
    _, admin = await accounts.admin()
    async with (
        TestClient(TestServer(init_app(config))) as a,
        TestClient(TestServer(init_app(config))) as b,
    ):
        assert await _names(b) == {}  # b caches the empty list
        event_id = await create_event(a, admin)
        assert await _names(b) == {event_id: "Show"}
        renamed = await a.put(
            f"/api/events/{event_id}/update", json={"name": "Encore"}, headers=auth(admin)
        )
        assert renamed.status == 200
        assert await _names(b) == {event_id: "Encore"}
        page = await (await b.get(f"/api/events/{event_id}/view")).json()
        assert page["name"] == "Encore"
        deleted = await a.delete(f"/api/events/{event_id}/delete", headers=auth(admin))
        assert deleted.status == 200
        assert await _names(b) == {}
        gone = await b.get(f"/api/events/{event_id}/view")
        assert gone.status == 404
