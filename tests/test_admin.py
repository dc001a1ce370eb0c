"""Admin routes: the original's field names, admin-only, and what they steer."""

from __future__ import annotations

import json

import pytest

from tests.support import METRICS_AUTH, auth
from tests.test_api_bookings import create_event

ADMIN_ROUTES = [
    ("GET", "/api/admin/analytics"),
    ("GET", "/api/admin/queue/stats"),
    ("GET", "/api/admin/queue/details"),
    ("POST", "/api/admin/queue/pause"),
    ("POST", "/api/admin/queue/resume"),
    ("POST", "/api/admin/queue/clean"),
]


@pytest.mark.parametrize(("method", "path"), ADMIN_ROUTES)
async def test_admin_routes_are_admin_only(client, accounts, method, path):
    _, user = await accounts.user()
    _, admin = await accounts.admin()
    anonymous = await client.request(method, path)
    assert anonymous.status == 401 and (await anonymous.json())["code"] == "UNAUTHORIZED"
    as_user = await client.request(method, path, headers=auth(user))
    assert as_user.status == 403 and (await as_user.json())["code"] == "FORBIDDEN"
    as_admin = await client.request(method, path, headers=auth(admin))
    assert as_admin.status == 200, await as_admin.text()


async def test_queue_stats_counts_waiting_and_completed(client, accounts, persister):
    _, admin = await accounts.admin()
    users = await accounts.make(3)
    event_id = await create_event(client, admin)
    for _, token in users:
        await client.post(f"/api/bookings/{event_id}/book", headers=auth(token))
    body = await (await client.get("/api/admin/queue/stats", headers=auth(admin))).json()
    assert set(body["stats"]) == {"waiting", "active", "completed", "failed", "total"}
    assert set(body["health"]) == {"status", "stalledJobs", "healthy"}
    assert body["stats"]["waiting"] == 3 and body["stats"]["completed"] == 0
    assert body["lagSeconds"] >= 0 and len(body["shards"]) == 16
    await persister.drain_once()
    body = await (await client.get("/api/admin/queue/stats", headers=auth(admin))).json()
    assert body["stats"] == {"waiting": 0, "active": 0, "completed": 3, "failed": 0, "total": 3}
    assert body["health"]["healthy"] is True


async def test_stalled_batch_is_reported_unhealthy(client, accounts, services):
    _, admin = await accounts.admin()
    inflight = services.keys.shard(3).inflight
    await services.redis.rpush(inflight, b"{}")  # a batch in flight with no lease holder
    body = await (await client.get("/api/admin/queue/stats", headers=auth(admin))).json()
    assert body["health"] == {"status": "unhealthy", "stalledJobs": 1, "healthy": False}
    assert body["stats"]["active"] == 1


async def test_details_show_waiting_and_failed_with_reasons(client, accounts, services, persister):
    _, admin = await accounts.admin()
    _, user = await accounts.user()
    event_id = await create_event(client, admin)
    await client.post(f"/api/bookings/{event_id}/book", headers=auth(user))
    details = await (await client.get("/api/admin/queue/details", headers=auth(admin))).json()
    assert [w["eventId"] for w in details["waiting"]] == [event_id]
    assert details["active"] == [] and details["failed"] == []
    outbox = services.keys.event(event_id).shard_keys.outbox
    await services.redis.rpush(outbox, b"garbage")
    await persister.drain_once()
    details = await (await client.get("/api/admin/queue/details", headers=auth(admin))).json()
    assert details["waiting"] == []
    [failed] = details["failed"]
    assert failed["record"] == "garbage" and failed["reason"].startswith("undecodable")


async def test_clean_drops_and_redrive_requeues_dead_letters(client, accounts, services, pool):
    _, admin = await accounts.admin()
    sk = services.keys.shard(5)
    entry = json.dumps({"record": "one", "reason": "test", "at": 1})
    await services.redis.rpush(sk.dead, entry, entry)
    redriven = await client.post("/api/admin/queue/clean?redrive=true", headers=auth(admin))
    assert (await redriven.json())["count"] == 2
    assert await services.redis.lrange(sk.outbox, 0, -1) == [b"one", b"one"]
    assert await services.redis.llen(sk.dead) == 0
    await services.redis.rpush(sk.dead, entry)
    dropped = await client.post("/api/admin/queue/clean", headers=auth(admin))
    assert await dropped.json() == {
        "message": "Dropped 1 dead letters",
        "count": 1,
        "redriven": False,
    }
    assert await services.redis.llen(sk.dead) == 0


async def test_pause_and_resume_set_the_flag_bookings_go_on(client, accounts, services):
    _, admin = await accounts.admin()
    _, user = await accounts.user()
    event_id = await create_event(client, admin)
    paused = await client.post("/api/admin/queue/pause", headers=auth(admin))
    assert "message" in await paused.json()
    assert (await client.post(f"/api/bookings/{event_id}/book", headers=auth(user))).status == 202
    stats = await (await client.get("/api/admin/queue/stats", headers=auth(admin))).json()
    assert stats["paused"] is True and stats["health"]["status"] == "paused"
    await client.post("/api/admin/queue/resume", headers=auth(admin))
    stats = await (await client.get("/api/admin/queue/stats", headers=auth(admin))).json()
    assert stats["paused"] is False


async def test_analytics_in_the_original_shape(client, accounts, persister):
    _, admin = await accounts.admin()
    users = await accounts.make(3)
    popular = await create_event(client, admin, capacity=4)
    quiet = await create_event(client, admin, capacity=3)
    for _, token in users:
        await client.post(f"/api/bookings/{popular}/book", headers=auth(token))
    for _, token in [*users, *await accounts.make(2)]:  # 5 viewers (one view each a minute)
        await client.get(f"/api/events/{popular}/view", headers=auth(token))
    await client.get(f"/api/events/{quiet}/view")
    await persister.drain_once()
    body = await (await client.get("/api/admin/analytics", headers=auth(admin))).json()
    assert set(body) == {"totalBookings", "popularEvents", "utilization"}
    assert body["totalBookings"] == 3
    assert [(e["id"], e["impressions"]) for e in body["popularEvents"]] == [
        (popular, 5),
        (quiet, 1),
    ]
    by_id = {u["id"]: u for u in body["utilization"]}
    assert by_id[popular] == {
        "id": popular,
        "name": "Show",
        "capacity": 4,
        "booked": 3,
        "utilization": "75.00%",
        "held": 0,
    }
    assert by_id[quiet]["utilization"] == "0.00%"


async def test_metrics_expose_queue_and_request_figures(client, accounts, persister):
    _, admin = await accounts.admin()
    _, user = await accounts.user()
    event_id = await create_event(client, admin)
    await client.post(f"/api/bookings/{event_id}/book", headers=auth(user))
    text = await (await client.get("/metrics", headers=METRICS_AUTH)).text()
    shard = event_id % 16
    assert f'boxoffice_outbox_waiting{{shard="{shard}"}} 1.0' in text
    assert "boxoffice_outbox_lag_seconds" in text
    assert 'boxoffice_booking_outcomes_total{outcome="CONFIRMED"}' in text
    assert "boxoffice_http_request_seconds_bucket" in text
    await persister.drain_once()
    text = await (await client.get("/metrics", headers=METRICS_AUTH)).text()
    assert f'boxoffice_outbox_waiting{{shard="{shard}"}} 0.0' in text
    assert "boxoffice_outbox_flushed 1.0" in text
    assert "boxoffice_persister_flush_seconds_bucket" in text
