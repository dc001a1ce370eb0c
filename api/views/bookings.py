"""Bookings: book (one Lua call decides), status by jobId, history, cancel."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from api.auth import authenticate
from api.context import Services, services
from api.errors import ApiError, from_engine, not_found
from api.http import json_response, path_id, query_int, read_body
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
    body = await read_body(request, BookRequest, optional=True)
    idempotency_key = idempotency_key_of(request)
    svc = services(request)
    if not svc.watcher.ready:
        raise from_engine(Code.EVENT_NOT_LOADED)
    await svc.limits.hit_booking(principal.id)
    try:
        result = await svc.engine.book(event_id, principal.id, body.seats, idempotency_key)
    except EngineError as exc:
        booking_outcome(exc.code.value).inc()
        if exc.code is Code.EVENT_NOT_LOADED:
            raise await not_loaded_error(svc, event_id) from None
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
        row = await queries.event_by_id(svc.pool, event_id)
        if row is None:
            return "", "", ""
        return row["name"], row["venue"], row["time"].isoformat()
    name, venue, time = (bytes(f or b"").decode() for f in fields)
    return name, venue, time


async def _record_by_job(svc: Services, job_id: str) -> Record | None:
    match = JOB_ID.match(job_id)
    if match is None:
        return None
    # Redis first, then Postgres (engine.get_booking falls back for evicted records).
    record = await svc.engine.get_booking(int(match.group(1)))
    if record is not None and secrets.compare_digest(record.job_id, job_id):
        return record
    return None


async def job_status(request: web.Request) -> web.Response:
    job_id = request.match_info.get("job_id", "")
    svc = services(request)
    record = await _record_by_job(svc, job_id)
    if record is None:
        raise ApiError(404, "JOB_NOT_FOUND", "Job not found")
    persisted_version = await queries.persisted_version(svc.pool, record.id)
    name, venue, time = await _event_display(svc, record.event_id)
    status = JobStatus(
        job_id=record.job_id,
        status="completed",
        user_id=record.user_id,
        event_id=record.event_id,
        timestamp=_ts(record.confirmed_ms),
        result=JobResult(record.id, name, venue, time, record.seats, record.status),
        persisted=persisted_version is not None and persisted_version >= record.version,
        expires_at=_ts(record.expires_ms) if record.expires_ms else None,
    )
    return json_response(status)


async def history(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    page = query_int(request, "page", 1, 1, 1_000_000)
    limit = query_int(request, "limit", 50, 1, 100)
    rows = await queries.bookings_of_user(
        services(request).pool, principal.id, (page - 1) * limit, limit
    )
    items = [
        HistoryItem(
            id=r["id"],
            user_id=r["user_id"],
            event_id=r["event_id"],
            seats=r["seats"],
            status=r["status"],
            job_id=r["job_id"],
            created_at=r["created_at"],
            updated_at=r["updated_at"],
            event=EventSummary(r["event_id"], r["event_name"], r["event_venue"], r["event_time"]),
        )
        for r in rows
    ]
    return json_response(items, headers={"X-Page": str(page), "X-Limit": str(limit)})


async def cancel(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    booking_id = path_id(request)
    await services(request).engine.cancel(booking_id, principal.id)
    return json_response(MessageResponse("Booking cancelled"))
