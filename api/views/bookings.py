"""Bookings: book (one Lua call decides), status by jobId, history, cancel."""

from __future__ import annotations

import asyncio
import re
import secrets
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from api.auth import authenticate
from api.context import Services, services
from api.errors import ApiError, from_engine, not_found
from api.http import encode_json, json_response, path_id, query_int, raw_json, read_body
from api.metrics import booking_outcome
from api.schemas import (
    BookAccepted,
    BookingOut,
    BookRequest,
    EventSummary,
    HistoryItem,
    JobResult,
    JobStatus,
    MessageResponse,
)
from engine.errors import Code, EngineError
from engine.records import Record
from persistence import queries
from persistence.db import POSTGRES_DOWN

IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9_.:\-]{1,128}$")
JOB_ID = re.compile(r"^([0-9]{1,16})-([0-9a-f]{24})$")


def _ts(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def booking_out(record: Record) -> BookingOut:
    return BookingOut(
        id=record.id,
        user_id=record.user_id,
        event_id=record.event_id,
        seats=record.seats,
        status=record.status,
        version=record.version,
        job_id=record.job_id,
        created_at=(created := _ts(record.confirmed_ms)),
        updated_at=created if record.updated_ms == record.confirmed_ms else _ts(record.updated_ms),
    )


def idempotency_key_of(request: web.Request) -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not IDEMPOTENCY_KEY.match(key):
        raise ApiError(
            400, "INVALID_IDEMPOTENCY_KEY", "Idempotency-Key must be 1-128 of [A-Za-z0-9_.:-]"
        )
    return key


async def not_loaded_error(svc: Services, event_id: int) -> ApiError:
    """Redis has no inventory for the event: unknown event (404) or not yet rebuilt (503)."""
    if await queries.event_by_id(svc.pool, event_id) is None:
        return not_found("event")
    return from_engine(Code.EVENT_NOT_LOADED)


async def book(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    event_id = path_id(request)
    svc = services(request)
    limits = svc.limits
    await limits.before_booking_body(principal.id)  # a flood sends its bodies in vain
    body = await read_body(request, BookRequest, optional=True)
    idempotency_key = idempotency_key_of(request)
    rate = limits.booking_window(principal.id)  # counted in the booking's own script
    try:
        result = await svc.engine.book(event_id, principal.id, body.seats, idempotency_key, rate)
    except EngineError as exc:
        booking_outcome(exc.code.value).inc()
        if exc.code is Code.EVENT_NOT_LOADED:
            raise await not_loaded_error(svc, event_id) from None
        if exc.code is Code.RATE_LIMITED:
            raise limits.booking_refused(principal.id, exc.detail) from None
        raise
    record = result.record
    if record.user_id != principal.id:  # an idempotency key is per user; belt and braces
        raise from_engine(Code.IDEMPOTENCY_KEY_REUSED)
    booking_outcome("REPLAYED" if result.replayed else "CONFIRMED").inc()
    return accepted_response(record, result.replayed)


def accepted_response(record: Record, replayed: bool) -> web.Response:
    """The original's 202 booking answer, decided at once: a booking and a confirmed hold."""
    accepted = BookAccepted(
        message="Booking confirmed",
        job_id=record.job_id,
        queue_position=0,
        estimated_wait_time=0,
        status_endpoint=f"/api/bookings/status/{record.job_id}",
        status="completed",
        booking=booking_out(record),
        replayed=replayed,
    )
    return json_response(accepted, status=202)


async def _event_display(svc: Services, event_id: int) -> tuple[str, str, str]:
    inventory_key = svc.keys.event(event_id).inventory
    fields: list[Any] = await svc.redis.hmget(inventory_key, ["name", "venue", "time"])
    if fields[0] is None:
        row = await queries.any_event_by_id(svc.pool, event_id)
        if row is None:
            return "", "", ""
        return row["name"], row["venue"], row["time"].isoformat()
    name, venue, time = (bytes(f or b"").decode() for f in fields)
    return name, venue, time


async def _display(svc: Services, generation: int, event_id: int) -> tuple[str, str, str]:
    """An event's name, venue and time for this generation: from this process's memory, else
    Redis's inventory (or Postgres), then kept."""
    display = svc.catalog.display(generation, event_id)
    if display is None:
        display = await _event_display(svc, event_id)
        svc.catalog.keep_display(generation, event_id, display)
    return display


async def job_status(request: web.Request) -> web.Response:
    """One Redis round trip while the booking's record is in Redis (its state, whether it is
    still on its way to Postgres, and the list generation unless a list or page request read
    it in the last second); one Postgres query (a JOIN with its event) once it was persisted
    and evicted."""
    job_id = request.match_info.get("job_id", "")
    match = JOB_ID.match(job_id)
    if match is None:
        raise ApiError(404, "JOB_NOT_FOUND", "Job not found")
    svc = services(request)
    booking_id = int(match.group(1))
    recent = svc.catalog.recent_generation()
    if recent is None:  # no list or page request read it in the last second: read it too
        read, state = await asyncio.gather(svc.reads.generation(), svc.reads.booking(booking_id))
        generation = svc.catalog.saw_generation(read)
    else:
        generation, state = recent, await svc.reads.booking(booking_id)
    if state is not None and state.record is not None:
        record, persisted = state.record, not state.pending
        name, venue, time = await _display(svc, generation, record.event_id)
    else:
        row = await queries.booking_with_event(svc.pool, booking_id)
        if row is None:
            raise ApiError(404, "JOB_NOT_FOUND", "Job not found")
        record, persisted = queries.record_of_row(row), True
        name, venue, time = row["event_name"], row["event_venue"], row["event_time"].isoformat()
    if not secrets.compare_digest(record.job_id, job_id):
        raise ApiError(404, "JOB_NOT_FOUND", "Job not found")
    status = JobStatus(
        job_id=record.job_id,
        status="completed",
        user_id=record.user_id,
        event_id=record.event_id,
        timestamp=_ts(record.confirmed_ms),
        result=JobResult(record.id, name, venue, time, record.seats, record.status),
        persisted=persisted,
        expires_at=_ts(record.expires_ms) if record.expires_ms else None,
    )
    return json_response(status)


async def history(request: web.Request) -> web.Response:
    """The caller's bookings, newest (highest id) first, reading its own writes: the records
    Redis holds and Postgres does not yet are merged into Postgres's rows by id, and a newer
    version waiting in Redis overrides the row Postgres holds. One query per page, and none
    while the page this process keeps of it is still good (api/history_cache.py): then one
    Redis round trip answers. While Postgres is down the records Redis holds still answer."""
    principal = await authenticate(request)
    page = query_int(request, "page", 1, 1, 1_000_000)
    limit = query_int(request, "limit", 50, 1, 100)
    svc = services(request)
    headers = {"X-Page": str(page), "X-Limit": str(limit)}
    fence = svc.engine.fence
    openings = fence.openings
    changes = await svc.reads.user_changes(principal.id)
    if fence.ready and (kept := svc.history.get(principal.id, page, limit, changes, openings)):
        return raw_json(kept, headers)
    pending = await svc.engine.pending_of_user(principal.id)
    start = (page - 1) * limit
    newer = {r.id: r for r in pending}
    try:
        if pending:
            picked, events = await _merged_page(svc, principal.id, pending, start, limit)
        else:
            rows = await queries.bookings_of_user(svc.pool, principal.id, start, limit)
            picked, events = list(rows), {}
        from_postgres = True
    except POSTGRES_DOWN:
        picked = list(pending[start : start + limit])
        events = await _event_summaries(svc, {r.event_id for r in picked})
        from_postgres = False
    items = [
        _history_of_record(p, events[p.event_id])
        if isinstance(p, Record)
        else _history_of_row(p, newer.get(p["id"]))
        for p in picked
    ]
    body = encode_json(items)
    if from_postgres and fence.ready and fence.openings == openings:
        svc.history.keep(principal.id, page, limit, changes, openings, body)
    return raw_json(body, headers)


async def _merged_page(
    svc: Services, user_id: int, pending: list[Record], start: int, limit: int
) -> tuple[list[Any], dict[int, EventSummary]]:
    """Items [start, start + limit) of Postgres's rows and the records only Redis holds,
    merged by id (descending): each item's place is the count of both kinds above it."""
    event_ids = sorted({r.event_id for r in pending})
    found = await queries.history_page(
        svc.pool, user_id, [r.id for r in pending], start, limit, event_ids
    )
    known = {r["id"] for r in found if r["kind"] == "known"}
    above_in_postgres = {r["id"]: r["version"] for r in found if r["kind"] == "rank"}
    fresh = sorted((r for r in pending if r.id not in known), key=lambda r: -r.id)
    first_row = max(0, start - len(pending))
    placed: list[tuple[int, Any]] = []
    for i, row in enumerate(r for r in found if r["kind"] == "row"):
        placed.append((first_row + i + sum(1 for f in fresh if f.id > row["id"]), row))
    for i, record in enumerate(fresh):
        placed.append((above_in_postgres[record.id] + i, record))
    picked = [item for place, item in sorted(placed, key=lambda p: p[0])
              if start <= place < start + limit]  # fmt: skip
    events = {
        r["event_id"]: EventSummary(
            r["event_id"], r["event_name"], r["event_venue"], r["event_time"]
        )
        for r in found
        if r["kind"] == "event"
    }
    missing = {p.event_id for p in picked if isinstance(p, Record)} - events.keys()
    return picked, events | await _event_summaries(svc, missing)


def _history_of_record(record: Record, event: EventSummary) -> HistoryItem:
    out = booking_out(record)
    return HistoryItem(
        id=record.id,
        user_id=record.user_id,
        event_id=record.event_id,
        seats=record.seats,
        status=record.status,
        job_id=record.job_id,
        created_at=out.created_at,
        updated_at=out.updated_at,
        event=event,
    )


def _history_of_row(row: Any, newer: Record | None) -> HistoryItem:
    """A Postgres row, with the status of a newer version still on its way, if any."""
    fresher = newer is not None and newer.version > row["version"]
    return HistoryItem(
        id=row["id"],
        user_id=row["user_id"],
        event_id=row["event_id"],
        seats=row["seats"],
        status=newer.status if newer is not None and fresher else row["status"],
        job_id=row["job_id"],
        created_at=row["created_at"],
        updated_at=_ts(newer.updated_ms) if newer is not None and fresher else row["updated_at"],
        event=EventSummary(
            row["event_id"], row["event_name"], row["event_venue"], row["event_time"]
        ),
    )


async def _event_summaries(svc: Services, event_ids: set[int]) -> dict[int, EventSummary]:
    """Display fields of a few events, from Redis's inventory (so history answers while
    Postgres is down), else from Postgres."""
    found: dict[int, EventSummary] = {}
    for event_id in event_ids:
        name, venue, when = await _event_display(svc, event_id)
        found[event_id] = EventSummary(event_id, name, venue, _parse_time(when))
    return found


def _parse_time(value: str) -> datetime:
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return datetime.fromtimestamp(0, tz=UTC)


async def cancel(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    booking_id = path_id(request)
    await services(request).engine.cancel(booking_id, principal.id)
    return json_response(MessageResponse("Booking cancelled"))
