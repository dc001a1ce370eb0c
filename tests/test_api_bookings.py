"""Bookings over HTTP, in-process on a real socket: the original's shapes and our rules."""

from __future__ import annotations

import asyncio
from typing import Any

from api.catalog import COUNTS_MAX_AGE
from persistence.persister import Persister
from tests.support import auth


async def create_event(client: Any, admin_token: str, capacity: int = 10, **extra: Any) -> int:
    body = {"name": "Show", "venue": "Hall", "time": "2030-01-01T20:00:00Z", "capacity": capacity}
    body.update(extra)
    response = await client.post("/api/events/create", json=body, headers=auth(admin_token))
    assert response.status == 200, await response.text()
    return int((await response.json())["id"])


async def available(client: Any, event_id: int) -> int:
    response = await client.get(f"/api/events/{event_id}/view")
    return int((await response.json())["available"])


async def test_book_answers_202_with_the_original_fields_and_the_booking(client, accounts):
    _, admin = await accounts.admin()
    _, user = await accounts.user()
    event_id = await create_event(client, admin)
    response = await client.post(f"/api/bookings/{event_id}/book", headers=auth(user))
    assert response.status == 202
    body = await response.json()
    for field in ("message", "jobId", "queuePosition", "estimatedWaitTime", "statusEndpoint"):
        assert field in body
    assert body["status"] == "completed"
    assert body["statusEndpoint"] == f"/api/bookings/status/{body['jobId']}"
    assert body["booking"]["eventId"] == event_id and body["booking"]["seats"] == 1
    assert await available(client, event_id) == 9


async def test_status_by_job_id_is_public_and_reports_persistence(client, accounts, persister):
    _, admin = await accounts.admin()
    _, user = await accounts.user()
    event_id = await create_event(client, admin)
    booked = await (await client.post(f"/api/bookings/{event_id}/book", headers=auth(user))).json()
    status = await (await client.get(booked["statusEndpoint"])).json()
    assert status["status"] == "completed" and status["persisted"] is False
    assert status["result"]["bookingId"] == booked["booking"]["id"]
    assert status["result"]["eventName"] == "Show" and status["result"]["venue"] == "Hall"
    await persister.drain_once()
    status = await (await client.get(booked["statusEndpoint"])).json()
    assert status["persisted"] is True
    guessed = booked["jobId"][:-1] + ("0" if booked["jobId"][-1] != "0" else "1")
    response = await client.get(f"/api/bookings/status/{guessed}")
    assert response.status == 404 and (await response.json())["code"] == "JOB_NOT_FOUND"


async def test_idempotency_key_sent_20_times_at_once_books_once(client, accounts, services):
    _, admin = await accounts.admin()
    _, user = await accounts.user()
    event_id = await create_event(client, admin)
    headers = {**auth(user), "Idempotency-Key": "order-42"}
    responses = await asyncio.gather(
        *(client.post(f"/api/bookings/{event_id}/book", headers=headers) for _ in range(20))
    )
    bodies = [await r.json() for r in responses]
    assert [r.status for r in responses] == [202] * 20
    assert len({b["jobId"] for b in bodies}) == 1
    assert await available(client, event_id) == 9
    outbox = services.keys.event(event_id).shard_keys.outbox
    assert await services.redis.llen(outbox) == 1


async def test_second_booking_by_the_same_user_is_409_and_changes_nothing(client, accounts):
    _, admin = await accounts.admin()
    _, user = await accounts.user()
    event_id = await create_event(client, admin)
    assert (await client.post(f"/api/bookings/{event_id}/book", headers=auth(user))).status == 202
    again = await client.post(f"/api/bookings/{event_id}/book", headers=auth(user))
    assert again.status == 409
    assert (await again.json())["code"] == "LIMIT_EXCEEDED"
    assert await available(client, event_id) == 9


async def test_max_per_user_allows_several_seats(client, accounts):
    _, admin = await accounts.admin()
    _, user = await accounts.user()
    event_id = await create_event(client, admin, maxPerUser=4)
    response = await client.post(
        f"/api/bookings/{event_id}/book", json={"seats": 3}, headers=auth(user)
    )
    assert response.status == 202
    over = await client.post(
        f"/api/bookings/{event_id}/book", json={"seats": 2}, headers=auth(user)
    )
    assert over.status == 409 and (await over.json())["code"] == "LIMIT_EXCEEDED"
    assert await available(client, event_id) == 7


async def test_sold_out_answers_409_sold_out(client, accounts):
    _, admin = await accounts.admin()
    (_, first), (_, second) = await accounts.make(2)
    event_id = await create_event(client, admin, capacity=1)
    assert (await client.post(f"/api/bookings/{event_id}/book", headers=auth(first))).status == 202
    response = await client.post(f"/api/bookings/{event_id}/book", headers=auth(second))
    assert response.status == 409
    assert await response.json() == {
        "error": "Event is fully booked",
        "code": "SOLD_OUT",
        "details": {"value": 0},
    }


async def test_cancel_restocks_once_and_only_for_the_owner(client, accounts, persister, pool):
    _, admin = await accounts.admin()
    (_, owner), (_, other) = await accounts.make(2)
    event_id = await create_event(client, admin, capacity=2)
    booked = await (await client.post(f"/api/bookings/{event_id}/book", headers=auth(owner))).json()
    booking_id = booked["booking"]["id"]
    forbidden = await client.delete(f"/api/bookings/{booking_id}/cancel", headers=auth(other))
    assert forbidden.status == 403 and (await forbidden.json())["error"] == "Not allowed"
    assert await available(client, event_id) == 1
    ok = await client.delete(f"/api/bookings/{booking_id}/cancel", headers=auth(owner))
    assert ok.status == 200 and await ok.json() == {"message": "Booking cancelled"}
    assert await available(client, event_id) == 2
    again = await client.delete(f"/api/bookings/{booking_id}/cancel", headers=auth(owner))
    assert again.status == 409 and (await again.json())["code"] == "ALREADY_CANCELLED"
    assert await available(client, event_id) == 2
    await persister.drain_once()
    row = await pool.fetchrow("SELECT status, version FROM bookings WHERE id = $1", booking_id)
    assert (row["status"], row["version"]) == ("CANCELLED", 2)


async def test_history_lists_only_the_callers_bookings_with_their_event(
    client, accounts, persister
):
    _, admin = await accounts.admin()
    (_, alice), (_, bob) = await accounts.make(2)
    first = await create_event(client, admin)
    second = await create_event(client, admin)
    for event_id in (first, second):
        await client.post(f"/api/bookings/{event_id}/book", headers=auth(alice))
    await client.post(f"/api/bookings/{first}/book", headers=auth(bob))
    await persister.drain_once()
    history = await (await client.get("/api/bookings/history", headers=auth(alice))).json()
    assert sorted(h["eventId"] for h in history) == [first, second]
    assert all(h["event"]["name"] == "Show" for h in history)
    page = await client.get("/api/bookings/history?limit=1&page=2", headers=auth(alice))
    assert len(await page.json()) == 1


async def test_events_list_has_live_available_and_one_shape(client, accounts):
    _, admin = await accounts.admin()
    _, user = await accounts.user()
    event_id = await create_event(client, admin, capacity=3)
    first = await (await client.get("/api/events/view")).json()
    assert first["source"] == "database" and first["data"][0]["available"] == 3
    await client.post(f"/api/bookings/{event_id}/book", headers=auth(user))
    await asyncio.sleep(COUNTS_MAX_AGE)  # the list's live counts are at most this old
    second = await (await client.get("/api/events/view")).json()
    assert second["source"] == "cache" and second["data"][0]["available"] == 2


async def test_event_view_counts_impressions(client, accounts):
    _, admin = await accounts.admin()
    event_id = await create_event(client, admin)
    viewers = await accounts.make(3)  # one impression per viewer per minute (issue 16)
    for expected, (_, token) in zip((1, 2, 3), viewers, strict=True):
        response = await client.get(f"/api/events/{event_id}/view", headers=auth(token))
        assert (await response.json())["impressions"] == expected


async def test_update_changes_capacity_by_the_difference(client, accounts):
    _, admin = await accounts.admin()
    (_, a), (_, b) = await accounts.make(2)
    event_id = await create_event(client, admin, capacity=3)
    for token in (a, b):
        await client.post(f"/api/bookings/{event_id}/book", headers=auth(token))
    body = {"name": "Show 2", "venue": "Hall", "time": "2030-01-01T20:00:00Z", "capacity": 5}
    response = await client.put(f"/api/events/{event_id}/update", json=body, headers=auth(admin))
    assert response.status == 200
    updated = await response.json()
    assert (updated["capacity"], updated["available"], updated["name"]) == (5, 3, "Show 2")
    body["capacity"] = 1
    refused = await client.put(f"/api/events/{event_id}/update", json=body, headers=auth(admin))
    assert refused.status == 409 and (await refused.json())["code"] == "CAPACITY_BELOW_SOLD"
    assert await available(client, event_id) == 3


async def test_delete_is_refused_with_live_bookings_unless_forced(
    client, accounts, persister, pool
):
    _, admin = await accounts.admin()
    _, user = await accounts.user()
    event_id = await create_event(client, admin)
    await client.post(f"/api/bookings/{event_id}/book", headers=auth(user))
    refused = await client.delete(f"/api/events/{event_id}/delete", headers=auth(admin))
    assert refused.status == 409 and (await refused.json())["code"] == "HAS_BOOKINGS"
    forced = await client.delete(f"/api/events/{event_id}/delete?force=true", headers=auth(admin))
    assert forced.status == 200 and "message" in await forced.json()
    assert (await client.get(f"/api/events/{event_id}/view")).status == 404
    booking = await client.post(f"/api/bookings/{event_id}/book", headers=auth(user))
    assert booking.status == 404
    await persister.drain_once()
    statuses = await pool.fetch("SELECT status FROM bookings WHERE event_id = $1", event_id)
    assert [r["status"] for r in statuses] == ["CANCELLED"]


async def test_register_login_me_never_return_the_hash(client):
    body = {"name": "Alice", "email": "Alice@Example.com", "password": "Password123!"}
    registered = await client.post("/api/auth/register", json=body)
    assert registered.status == 200
    payload = await registered.json()
    assert set(payload) == {"user", "token", "refreshToken", "expiresIn"}
    assert "password" not in str(payload).lower()
    assert payload["user"]["email"] == "alice@example.com" and payload["user"]["role"] == "USER"
    again = await client.post("/api/auth/register", json=body)
    assert again.status == 400 and (await again.json())["error"] == "Email already in use"
    login = await client.post(
        "/api/auth/login", json={"email": "alice@example.com", "password": "Password123!"}
    )
    assert login.status == 200
    me = await client.get("/api/auth/me", headers=auth((await login.json())["token"]))
    assert (await me.json())["email"] == "alice@example.com"
    wrong = await client.post(
        "/api/auth/login", json={"email": "alice@example.com", "password": "Password123?"}
    )
    assert wrong.status == 400 and (await wrong.json())["error"] == "Invalid credentials"


async def test_engine_outbox_drains_to_postgres(client, accounts, persister: Persister, pool):
    _, admin = await accounts.admin()
    users = await accounts.make(5)
    event_id = await create_event(client, admin)
    for _, token in users:
        await client.post(f"/api/bookings/{event_id}/book", headers=auth(token))
    assert await persister.drain_once() == 5
    count = await pool.fetchval(
        "SELECT count(*) FROM bookings WHERE event_id = $1 AND status = 'CONFIRMED'", event_id
    )
    assert count == 5


async def test_a_booking_body_is_read_however_it_comes_and_none_means_one_seat(client, accounts):
    """A bodiless request reads nothing (no Content-Length, or 0); a body sent chunked, empty
    or not, is still read, and an invalid one refused before anything is booked."""
    _, admin = await accounts.admin()
    event_id = await create_event(client, admin, capacity=100, maxPerUser=100)
    path = f"/api/bookings/{event_id}/book"

    async def chunks(*parts: bytes) -> Any:
        for part in parts:
            yield part

    _, user = await accounts.user()
    json_type = "application/json"
    sent: list[tuple[dict[str, Any], int]] = [
        ({}, 1),
        ({"data": b""}, 1),  # Content-Length: 0
        ({"data": chunks()}, 1),  # chunked, no chunk at all
        ({"data": chunks(b'{"sea', b'ts": 4}'), "headers": {"Content-Type": json_type}}, 4),
        ({"json": {"seats": 2}}, 2),
    ]
    for kwargs, seats in sent:
        headers = {**auth(user), **kwargs.pop("headers", {})}
        response = await client.post(path, headers=headers, **kwargs)
        assert response.status == 202, (kwargs, await response.text())
        assert (await response.json())["booking"]["seats"] == seats
    refused = await client.post(path, data=chunks(b"{nope"), headers=auth(user))
    assert refused.status == 400 and (await refused.json())["code"] == "INVALID_JSON"
    assert await available(client, event_id) == 100 - 9
