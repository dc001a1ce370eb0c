"""The one error model: every 4xx/5xx body is {"error", "code", "details"}.

Engine codes are mapped to HTTP statuses here and only here."""

from __future__ import annotations

from typing import Any

from engine.errors import Code


class ApiError(Exception):
    """Raise from a view; the middleware renders it in the error shape."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers


# Engine code -> (status, the original's message where it had one)
ENGINE_ERRORS: dict[Code, tuple[int, str]] = {
    Code.INVALID_INPUT: (400, "Invalid input"),
    Code.RATE_LIMITED: (429, "Too many requests, retry later"),
    Code.EVENT_NOT_LOADED: (503, "Inventory is not loaded for this event"),
    Code.EVENT_CLOSED: (404, "Event not found"),
    Code.SOLD_OUT: (409, "Event is fully booked"),
    Code.LIMIT_EXCEEDED: (409, "You have already booked this event"),
    Code.BOOKING_NOT_FOUND: (404, "Booking not found"),
    Code.FORBIDDEN: (403, "Not allowed"),
    Code.ALREADY_CANCELLED: (409, "Booking already cancelled"),
    Code.ALREADY_LOADED: (409, "Inventory already loaded"),
    Code.CAPACITY_BELOW_SOLD: (409, "Capacity cannot be set below seats already sold"),
    Code.HAS_BOOKINGS: (409, "Event has live bookings; use ?force=true to cancel them"),
    Code.IDEMPOTENCY_KEY_REUSED: (422, "Idempotency-Key was used for another request"),
    Code.LEASE_LOST: (503, "Lease lost"),
    Code.INVALID_TTL: (400, "ttlSeconds is outside the allowed range"),
    Code.HOLD_NOT_FOUND: (404, "Hold not found"),
    Code.HOLD_EXPIRED: (409, "Hold has expired"),
    Code.ALREADY_RELEASED: (409, "Hold already released"),
    Code.NOT_HELD: (409, "Hold is no longer held"),
    Code.HOLD_NOT_CONFIRMED: (409, "This is a hold: confirm or release it"),
    Code.INVENTORY_NOT_READY: (503, "Inventory is being recovered; try again shortly"),
    Code.STALE_RECORD: (503, "The booking changed while it was read; try again"),
}

# The public names of a few engine codes differ from the engine's internal ones.
PUBLIC_CODES: dict[Code, str] = {
    Code.EVENT_CLOSED: "EVENT_NOT_FOUND",
    Code.EVENT_NOT_LOADED: "INVENTORY_NOT_READY",
}


# Answers that say "not now": the client should retry after a moment.
RETRY_LATER = {Code.EVENT_NOT_LOADED, Code.INVENTORY_NOT_READY, Code.STALE_RECORD}


def from_engine(code: Code, detail: int | None = None) -> ApiError:
    status, message = ENGINE_ERRORS[code]
    details = None if detail is None else {"value": detail}
    headers = {"Retry-After": "1"} if code in RETRY_LATER else None
    return ApiError(status, PUBLIC_CODES.get(code, code.value), message, details, headers)


def not_found(what: str) -> ApiError:
    return ApiError(404, f"{what.upper()}_NOT_FOUND", f"{what.capitalize()} not found")


def bad_request(message: str, code: str = "VALIDATION_ERROR", **details: Any) -> ApiError:
    return ApiError(400, code, message, details or None)
