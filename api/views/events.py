"""Events: list (cached metadata, live counts), view (counts an impression), create, update,
delete. Every change reaches Redis inventory in the same request."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
from aiohttp import web
from msgspec import UNSET

from api.auth import require_admin
from api.context import Services, services
from api.errors import from_engine, not_found
from api.http import json_response, path_id, query_flag, query_int, read_body
from api.schemas import (
    CreateEventRequest,
    EventListResponse,
    EventOut,
    MessageResponse,
    UpdateEventRequest,
)
from engine.booking import EventSpec
from engine.errors import Code, EngineError
from engine.holds import Holds
from engine.records import Inventory
from persistence import queries


class CachedPage(msgspec.Struct):
    events: list[EventOut]
    total: int


_page_decoder = msgspec.json.Decoder(CachedPage)


def event_out(row: Any, inventory: Inventory | None = None, pending_views: int = 0) -> EventOut:
    return EventOut(
        id=row["id"],
        name=row["name"],
        venue=row["venue"],
        time=row["time"],
        capacity=row["capacity"],
        impressions=row["impressions"] + pending_views,
        max_per_user=row["max_per_user"],
        available=None if inventory is None else inventory.available,
        status=row["status"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        held=None if inventory is None else inventory.held,
    )


def spec_of(row: Any) -> EventSpec:
    return EventSpec(
        event_id=row["id"],
        capacity=row["capacity"],
        max_per_user=row["max_per_user"],
        name=row["name"],
        venue=row["venue"],
        time=row["time"].isoformat(),
    )


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


async def invalidate_listing(svc: Services) -> None:
    await svc.redis.incr(svc.keys.events_cache_generation)


async def _cached_page(svc: Services, page: int, limit: int) -> tuple[CachedPage, str]:
    generation = int(await svc.redis.get(svc.keys.events_cache_generation) or 0)
    key = svc.keys.events_cache(generation, page, limit)
    raw = await svc.redis.get(key)
    if raw is not None:
        return _page_decoder.decode(raw), "cache"
    rows = await queries.list_events(svc.pool, (page - 1) * limit, limit)
    cached = CachedPage([event_out(r) for r in rows], await queries.count_events(svc.pool))
    await svc.redis.set(key, msgspec.json.encode(cached), ex=svc.config.events_cache_seconds)
    return cached, "database"


async def list_events(request: web.Request) -> web.Response:
    page = query_int(request, "page", 1, 1, 1_000_000)
    limit = query_int(request, "limit", 50, 1, 100)
    svc = services(request)
    cached, source = await _cached_page(svc, page, limit)
    ids = [e.id for e in cached.events]
    inventories = await svc.engine.inventories(ids)
    pending = await svc.engine.pending_impressions(ids)
    data = [
        msgspec.structs.replace(
            e,
            available=None if (inv := inventories[e.id]) is None else inv.available,
            held=None if inv is None else inv.held,
            impressions=e.impressions + pending[e.id],
        )
        for e in cached.events
    ]
    return json_response(EventListResponse(source, data, page, limit, cached.total))


async def view_event(request: web.Request) -> web.Response:
    event_id = path_id(request)
    svc = services(request)
    row = await queries.event_by_id(svc.pool, event_id)
    if row is None:
        raise not_found("event")
    pending = await svc.engine.count_impression(event_id)
    inventory = (await svc.engine.inventories([event_id]))[event_id]
    return json_response(event_out(row, inventory, pending))


async def create_event(request: web.Request) -> web.Response:
    await require_admin(request)
    body = await read_body(request, CreateEventRequest)
    svc = services(request)
    async with svc.pool.acquire() as conn, conn.transaction():
        row = await queries.create_event(
            conn, body.name, body.venue, _utc(body.time), body.capacity, body.max_per_user
        )
        # Inventory is loaded before the row commits: an event is never visible unsellable.
        await svc.engine.load_event(spec_of(row))
    await invalidate_listing(svc)
    return json_response(event_out(row, _fresh_inventory(row)))


def _fresh_inventory(row: Any) -> Inventory:
    return Inventory(row["capacity"], row["capacity"], 0, 0, row["max_per_user"], True)


async def update_event(request: web.Request) -> web.Response:
    await require_admin(request)
    event_id = path_id(request)
    body = await read_body(request, UpdateEventRequest)
    svc = services(request)
    async with svc.pool.acquire() as conn, conn.transaction():
        current = await queries.event_by_id(conn, event_id, for_update=True)
        if current is None:
            raise not_found("event")
        row = await queries.update_event(
            conn,
            event_id,
            current["name"] if body.name is UNSET else body.name,
            current["venue"] if body.venue is UNSET else body.venue,
            current["time"] if body.time is UNSET else _utc(body.time),
            current["capacity"] if body.capacity is UNSET else body.capacity,
            current["max_per_user"] if body.max_per_user is UNSET else body.max_per_user,
        )
        try:
            await svc.engine.update_event(spec_of(row))
        except EngineError as exc:
            raise from_engine(exc.code, exc.detail) from None
    await invalidate_listing(svc)
    inventory = (await svc.engine.inventories([event_id]))[event_id]
    return json_response(event_out(row, inventory))


async def _release_holds(svc: Services, event_id: int, admin_id: int) -> None:
    """A forced delete lets go of live holds too (closed, the event refuses confirms)."""
    holds = Holds(svc.engine)
    for record in await svc.engine.live_bookings(event_id, "HELD"):
        try:
            await holds.release(record.job_id, admin_id, is_admin=True)
        except EngineError as exc:  # lapsed (the expirer returns it), or let go meanwhile
            if exc.code not in (Code.HOLD_EXPIRED, Code.ALREADY_RELEASED, Code.NOT_HELD):
                raise


async def _confirmed_ids(svc: Services, conn: Any, event_id: int) -> list[int]:
    """Confirmed bookings of a closed event: those still in Redis and those only Postgres
    holds now (evicted after persisting). A stale one is refused as already cancelled."""
    in_redis = {r.id for r in await svc.engine.live_bookings(event_id)}
    rows = await conn.fetch(
        "SELECT id FROM bookings WHERE event_id = $1 AND status = 'CONFIRMED'", event_id
    )
    return sorted(in_redis | {int(r["id"]) for r in rows})


async def delete_event(request: web.Request) -> web.Response:
    principal = await require_admin(request)
    event_id = path_id(request)
    force = query_flag(request, "force")
    svc = services(request)
    async with svc.pool.acquire() as conn, conn.transaction():
        if await queries.event_by_id(conn, event_id, for_update=True) is None:
            raise not_found("event")
        try:
            await svc.engine.close_event(event_id, force=force)
        except EngineError as exc:
            raise from_engine(exc.code, exc.detail) from None
        cancelled = 0
        if force:
            for booking_id in await _confirmed_ids(svc, conn, event_id):
                try:
                    await svc.engine.cancel(booking_id, principal.id, is_admin=True)
                    cancelled += 1
                except EngineError as exc:  # its owner cancelled it a moment ago
                    if exc.code is not Code.ALREADY_CANCELLED:
                        raise
            await _release_holds(svc, event_id, principal.id)
        await queries.delete_event(conn, event_id)
    await invalidate_listing(svc)
    message = "Event deleted" if not cancelled else f"Event deleted; {cancelled} bookings cancelled"
    return json_response(MessageResponse(message))
