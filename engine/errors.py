"""Error codes the engine can answer. HTTP statuses are chosen in api/, not here."""

from __future__ import annotations

from enum import StrEnum


class Code(StrEnum):
    INVALID_INPUT = "INVALID_INPUT"
    EVENT_NOT_LOADED = "EVENT_NOT_LOADED"
    EVENT_CLOSED = "EVENT_CLOSED"
    SOLD_OUT = "SOLD_OUT"
    LIMIT_EXCEEDED = "LIMIT_EXCEEDED"
    BOOKING_NOT_FOUND = "BOOKING_NOT_FOUND"
    FORBIDDEN = "FORBIDDEN"
    ALREADY_CANCELLED = "ALREADY_CANCELLED"
    ALREADY_LOADED = "ALREADY_LOADED"
    CAPACITY_BELOW_SOLD = "CAPACITY_BELOW_SOLD"
    HAS_BOOKINGS = "HAS_BOOKINGS"
    IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"
    LEASE_LOST = "LEASE_LOST"
    INVALID_TTL = "INVALID_TTL"
    HOLD_NOT_FOUND = "HOLD_NOT_FOUND"
    HOLD_EXPIRED = "HOLD_EXPIRED"
    ALREADY_RELEASED = "ALREADY_RELEASED"
    NOT_HELD = "NOT_HELD"
    HOLD_NOT_CONFIRMED = "HOLD_NOT_CONFIRMED"
    # Redis cannot prove it holds everything this process has seen confirmed (it came back
    # older, lost data, or a recovery is under way): nothing that changes seats runs.
    INVENTORY_NOT_READY = "INVENTORY_NOT_READY"
    # The caller's copy of an evicted record is not the version Redis's tombstone names.
    STALE_RECORD = "STALE_RECORD"
    # The per-user booking limit counted in the booking's own script (detail: ms until its
    # window resets); the API answers it as its other rate limits.
    RATE_LIMITED = "RATE_LIMITED"


class EngineError(Exception):
    """A script refused the operation; `code` says why, `detail` carries a number if any."""

    def __init__(self, code: Code, detail: int | None = None) -> None:
        super().__init__(code.value if detail is None else f"{code.value} ({detail})")
        self.code = code
        self.detail = detail


class EngineUnavailable(Exception):
    """Redis could not be reached or did not answer in time."""


class RedisMisconfigured(Exception):
    """Redis runs with settings that could lose inventory (e.g. an eviction policy)."""
