"""Holds (two-phase booking): hold seats for a while (one Lua call decides), confirm them
(answered like a booking), or release them early. Lapsed holds are returned by the expirer
in the persister process."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from api.auth import authenticate
from api.context import services
from api.errors import bad_request
from api.http import json_response, path_id, read_body
from api.metrics import booking_outcome
from api.schemas import HoldOut, HoldRequest, MessageResponse
from api.views.bookings import accepted_response, idempotency_key_of, not_loaded_error
from api.views.holdpolicy import longest_hold
from api.views.users import client_ip
from engine.errors import Code, EngineError
from engine.holds import Holds
from engine.records import Record


def _ts(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def hold_out(record: Record, replayed: bool = False) -> HoldOut:
    return HoldOut(
        hold_id=record.job_id,
        expires_at=_ts(record.expires_ms),
        seats=record.seats,
        event_id=record.event_id,
        booking_id=record.id,
        status=record.status,
        status_endpoint=f"/api/bookings/status/{record.job_id}",
        confirm_endpoint=f"/api/bookings/holds/{record.job_id}/confirm",
        replayed=replayed,
    )


async def hold(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    event_id = path_id(request)
    svc = services(request)
    # A hold takes seats like a booking: it shares the per-user booking limit, counted
    # before the body is read (a flood sends its bodies in vain).
    await svc.limits.hit_booking(principal.id)
    body = await read_body(request, HoldRequest, optional=True)
    idempotency_key = idempotency_key_of(request)
    longest = await longest_hold(svc, event_id)
    ttl = (
        min(svc.config.hold_ttl_seconds, longest) if body.ttl_seconds is None else body.ttl_seconds
    )
    if ttl > longest:
        raise bad_request(f"ttlSeconds must be 1..{longest}", "INVALID_TTL", max=longest)
    reservation = await svc.holdguard.reserve(
        principal.id, client_ip(request), event_id, body.seats, ttl
    )
    try:
        result = await Holds(svc.engine).hold(
            event_id, principal.id, body.seats, ttl * 1000, longest * 1000, idempotency_key
        )
    except BaseException as exc:
        if reservation is not None:
            await reservation.cancel()
        if not isinstance(exc, EngineError):
            raise
        booking_outcome(f"HOLD_{exc.code.value}").inc()
        if exc.code is Code.EVENT_NOT_LOADED:
            raise await not_loaded_error(svc, event_id) from None
        raise
    if reservation is not None:
        await reservation.commit(result.record)
    if result.record.user_id != principal.id:  # an idempotency key is per user
        raise EngineError(Code.IDEMPOTENCY_KEY_REUSED)
    booking_outcome("HOLD_REPLAYED" if result.replayed else "HELD").inc()
    return json_response(hold_out(result.record, result.replayed), status=201)


async def confirm(request: web.Request) -> web.Response:
    """The same 202 answer as a booking; a second confirm replays it (`replayed: true`)."""
    principal = await authenticate(request)
    hold_id = request.match_info.get("hold_id", "")
    svc = services(request)
    result = await Holds(svc.engine).confirm(hold_id, principal.id)
    record = result.record
    await svc.holdguard.ended(principal.id, record, released=False)
    booking_outcome("HOLD_REPLAYED" if result.replayed else "HOLD_CONFIRMED").inc()
    return accepted_response(record, result.replayed)


async def release(request: web.Request) -> web.Response:
    """Seats back to stock at once. A second release changes nothing: 409 ALREADY_RELEASED."""
    principal = await authenticate(request)
    hold_id = request.match_info.get("hold_id", "")
    svc = services(request)
    record = await Holds(svc.engine).release(hold_id, principal.id)
    await svc.holdguard.ended(principal.id, record, released=True)  # cooldown from now
    return json_response(MessageResponse("Hold released"))
