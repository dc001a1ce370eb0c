"""Admin: the outbox as the original's queue (stats, details, pause, resume, clean) and
analytics. Every route is admin-only."""

from __future__ import annotations

from aiohttp import web

from api.auth import require_admin
from api.context import services
from api.errors import not_found
from api.http import json_response, query_flag, query_int
from api.schemas import (
    AnalyticsResponse,
    CleanResponse,
    EventDriftOut,
    MessageResponse,
    PopularEvent,
    QueueCounts,
    QueueDetailsResponse,
    QueueHealth,
    QueueStatsResponse,
    ReconcileResponse,
    ShardStats,
    Utilization,
)
from engine.queue import Queue
from persistence import queries
from persistence.reconcile import EventDrift, Reconciler


def _queue(request: web.Request) -> Queue:
    svc = services(request)
    return Queue(svc.redis, svc.keys)


async def queue_stats(request: web.Request) -> web.Response:
    await require_admin(request)
    stats = await _queue(request).stats()
    counts = QueueCounts(
        waiting=stats.total("waiting"),
        active=stats.total("active"),
        completed=stats.total("completed"),
        failed=stats.total("failed"),
        total=stats.total("waiting")
        + stats.total("active")
        + stats.total("completed")
        + stats.total("failed"),
    )
    healthy = stats.stalled == 0 and (stats.persisters > 0 or counts.waiting == 0)
    status = "paused" if stats.paused else ("healthy" if healthy else "unhealthy")
    shards = [
        ShardStats(s.shard, s.waiting, s.active, s.failed, s.completed, s.leased, s.held)
        for s in stats.shards
    ]
    body = QueueStatsResponse(
        stats=counts,
        health=QueueHealth(status, stats.stalled, healthy),
        lag_seconds=round(stats.lag_seconds, 3),
        paused=stats.paused,
        persisters=stats.persisters,
        shards=shards,
        held=stats.total("held"),
    )
    return json_response(body)


async def queue_details(request: web.Request) -> web.Response:
    await require_admin(request)
    limit = query_int(request, "limit", 20, 1, 1000)
    samples = await _queue(request).samples(limit)
    return json_response(
        QueueDetailsResponse(samples["waiting"], samples["active"], samples["failed"])
    )


async def queue_pause(request: web.Request) -> web.Response:
    await require_admin(request)
    await _queue(request).pause()
    return json_response(MessageResponse("Queue paused: bookings continue, persisting waits"))


async def queue_resume(request: web.Request) -> web.Response:
    await require_admin(request)
    await _queue(request).resume()
    return json_response(MessageResponse("Queue resumed"))


async def queue_clean(request: web.Request) -> web.Response:
    await require_admin(request)
    redrive = query_flag(request, "redrive")
    count = await _queue(request).clean(redrive)
    message = f"Re-drove {count} dead letters" if redrive else f"Dropped {count} dead letters"
    return json_response(CleanResponse(message, count, redrive))


async def analytics(request: web.Request) -> web.Response:
    await require_admin(request)
    svc = services(request)
    events = await queries.open_events(svc.pool)
    inventories = await svc.engine.inventories([e["id"] for e in events])
    utilization = []
    for event in events:
        inventory = inventories[event["id"]]
        capacity = event["capacity"] if inventory is None else inventory.capacity
        booked = 0 if inventory is None else inventory.sold
        held = 0 if inventory is None else inventory.held
        share = 100 * booked / capacity if capacity else 0.0
        utilization.append(
            Utilization(event["id"], event["name"], capacity, booked, f"{share:.2f}%", held)
        )
    popular = [
        PopularEvent(r["id"], r["name"], r["impressions"])
        for r in await queries.popular_events(svc.pool)
    ]
    total = await _queue(request).live_bookings()
    return json_response(AnalyticsResponse(total, popular, utilization))


def _drift_out(d: EventDrift) -> EventDriftOut:
    return EventDriftOut(
        event_id=d.event_id,
        name=d.name,
        loaded=d.loaded,
        redis={
            "capacity": d.redis_capacity,
            "available": d.redis_available,
            "sold": d.redis_sold,
            "held": d.redis_held,
        },
        postgres={"capacity": d.pg_capacity, "confirmedSeats": d.pg_confirmed_seats},
        outbox_pending_seats=d.pending_seats,
        expected_sold=d.expected_sold,
        drift={
            "sold": d.sold_drift,
            "available": d.available_drift,
            "capacity": d.capacity_drift,
        },
        user_drift=sum(1 for v in d.user_drift.values() if v),
        drifted=d.drifted,
        expected_held=d.expected_held,
        held_drift=d.held_drift,
        oversold=d.oversold,
    )


def _event_filter(request: web.Request) -> list[int] | None:
    """`?eventId=N` narrows the report (and the repair) to one open event."""
    event_id = query_int(request, "eventId", 0, 1, 999_999_999)
    return [event_id] if event_id else None


async def _reconcile(request: web.Request, repair: bool) -> web.Response:
    svc = services(request)
    reconciler = Reconciler(svc.pool, svc.engine)
    event_ids = _event_filter(request)
    if event_ids is not None and not await reconciler.events(event_ids):
        raise not_found("event")
    if repair:
        watcher = svc.watcher
        # Redis lost data, came back older or is frozen: the whole recovery (records,
        # counters, ticks, then thaw), not only counters; then the report of what is left.
        if await watcher.trouble() is not None:
            await watcher.recover()
        report, repaired = await reconciler.repair_all(event_ids=event_ids)
        await watcher.check_once()
    else:
        report, repaired = await reconciler.report(event_ids), []
    body = ReconcileResponse(
        events=[_drift_out(d) for d in report],
        drifted=sum(1 for d in report if d.drifted),
        repaired=[d.event_id for d in repaired],
        epoch={"redis": await svc.watcher.recovery.epoch(), "postgres": svc.watcher.expected},
    )
    return json_response(body)


async def reconcile_report(request: web.Request) -> web.Response:
    """GET: the drift per event; `?repair=true` repairs it too."""
    await require_admin(request)
    return await _reconcile(request, repair=query_flag(request, "repair"))


async def reconcile_repair(request: web.Request) -> web.Response:
    """POST: repair exactly the drifted events and rebuild missing inventory."""
    await require_admin(request)
    return await _reconcile(request, repair=True)
