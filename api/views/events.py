"""Events: list (cached metadata, live counts), view (counts an impression), create, update,
delete. Every change reaches Redis inventory in the same request."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import msgspec
from aiohttp import web
from msgspec import UNSET

from api.auth import bearer, require_admin
from api.catalog import Catalog, ListedPage
from api.context import Services, services
from api.errors import ApiError, from_engine, not_found
from api.http import encode_json, json_response, path_id, query_flag, query_int, raw_json, read_body
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
from engine.reads import LiveCounts
from engine.records import Inventory
from persistence import queries
from persistence.db import POSTGRES_DOWN


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


# The list is cached in fixed chunks of CHUNK events, whatever page and limit a client asks
# for: each new (page, limit) pair used to write a key of its own into a Redis that never
# evicts. A page spans at most two chunks; chunks past the last event are never cached, so
# the keys of one generation are at most (events / CHUNK) + 1.
CHUNK = 100


async def _chunk(svc: Services, generation: int, index: int) -> tuple[CachedPage, bool]:
    key = svc.keys.events_cache(generation, index, CHUNK)
    raw = await svc.redis.get(key)
    if raw is not None:
        return _page_decoder.decode(raw), True
    rows = await queries.list_events(svc.pool, index * CHUNK, CHUNK)
    chunk = CachedPage([event_out(r) for r in rows], await queries.count_events(svc.pool))
    if index == 0 or index * CHUNK < chunk.total:
        await svc.redis.set(key, msgspec.json.encode(chunk), ex=svc.config.events_cache_seconds)
    return chunk, False


async def _cached_page(
    svc: Services, generation: int, page: int, limit: int
) -> tuple[CachedPage, str]:
    offset = (page - 1) * limit
    first, hit = await _chunk(svc, generation, 0)
    total, hits = first.total, [hit]
    events: list[EventOut] = []
    if offset < total:
        for index in range(offset // CHUNK, (offset + limit - 1) // CHUNK + 1):
            chunk, hit = (first, True) if index == 0 else await _chunk(svc, generation, index)
            events.extend(chunk.events)
            hits.append(hit)
        start = offset - (offset // CHUNK) * CHUNK
        events = events[start : start + limit]
    return CachedPage(events, total), "cache" if all(hits) else "database"


async def list_events(request: web.Request) -> web.Response:
    """Metadata from this process's cache (or Redis's, or Postgres) for the generation read in
    this request; live counts at most COUNTS_MAX_AGE old; the answer reused as bytes."""
    page = query_int(request, "page", 1, 1, 1_000_000)
    limit = query_int(request, "limit", 50, 1, 100)
    svc = services(request)
    generation = svc.catalog.saw_generation(await svc.reads.generation())
    listed = svc.catalog.page(generation, page, limit)
    if listed is not None and Catalog.fresh(listed):
        return raw_json(listed.body)
    source = "cache"
    if listed is None:
        cached, source = await _cached_page(svc, generation, page, limit)
        listed = ListedPage(generation, cached.events, cached.total, source)
        svc.catalog.keep_page(page, limit, listed)
    counts = await svc.reads.counts([e.id for e in listed.events])
    data = [_with_counts(e, counts.get(e.id)) for e in listed.events]
    listed.body = encode_json(EventListResponse("cache", data, page, limit, listed.total))
    listed.counted_at = time.monotonic()
    if source == "cache":
        return raw_json(listed.body)
    return json_response(EventListResponse(source, data, page, limit, listed.total))


def _with_counts(event: EventOut, counts: LiveCounts | None) -> EventOut:
    if counts is None:
        return event
    return msgspec.structs.replace(
        event,
        available=counts.available,
        held=None if counts.available is None else counts.held,
        impressions=event.impressions + counts.pending_views,
    )


IMPRESSION_WINDOW_SECONDS = 60


def _viewer(request: web.Request) -> str:
    """Who is looking: the user of a valid token, else the client address (a view is public:
    a bad token is simply not a user)."""
    if request.headers.get("Authorization", "").lower().startswith("bearer "):
        try:
            return f"u{bearer(request).id}"
        except ApiError:
            pass
    return f"ip{request.remote or 'unknown'}"


async def view_event(request: web.Request) -> web.Response:
    """One impression per viewer per event per minute (reloading a page, or a script asking
    in a loop, no longer makes an event popular), counted with the live counts in one script
    call; the row from this process's cache, so no Postgres query per view."""
    event_id = path_id(request)
    svc = services(request)
    seen = await svc.reads.view(event_id, _viewer(request), IMPRESSION_WINDOW_SECONDS)
    generation, inventory, pending = seen.generation, seen.inventory, seen.pending_views
    svc.catalog.saw_generation(generation)
    cached = svc.catalog.row(generation, event_id, pending)
    if cached is None:
        try:
            row = await queries.event_by_id(svc.pool, event_id)
        except POSTGRES_DOWN:
            listed = svc.catalog.listed_event(event_id)
            if listed is None or inventory is None:
                raise
            counts = LiveCounts(inventory.available, inventory.held, pending)
            return json_response(_with_counts(listed, counts))
        if row is None:
            raise not_found("event")
        cached = svc.catalog.keep_row(generation, event_id, row, event_out(row), pending)
    available, held = (None, 0) if inventory is None else (inventory.available, inventory.held)
    return json_response(_with_counts(cached.out, LiveCounts(available, held, pending)))


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
