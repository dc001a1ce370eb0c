"""msgspec Structs for every request and response body. Field names are the original's
(camelCase in JSON)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from msgspec import UNSET, Meta, UnsetType

# Text Postgres can store: no NUL, no lone UTF-16 surrogates (JSON can carry both).
_PLAIN = r"[^\x00\ud800-\udfff]"
_ADDR = r"[^@\s\x00\ud800-\udfff]"
Email = Annotated[
    str, Meta(min_length=3, max_length=254, pattern=rf"^{_ADDR}+@{_ADDR}+\.{_ADDR}+$")
]
Password = Annotated[str, Meta(min_length=8, max_length=128, pattern=rf"^{_PLAIN}*$")]
Name = Annotated[str, Meta(min_length=1, max_length=200, pattern=rf"^{_PLAIN}*$")]
Capacity = Annotated[int, Meta(ge=0, le=10_000_000)]
PerUser = Annotated[int, Meta(ge=1, le=1000)]
Seats = Annotated[int, Meta(ge=1, le=1000)]
Page = Annotated[int, Meta(ge=1, le=1_000_000)]
Limit = Annotated[int, Meta(ge=1, le=100)]


class Body(msgspec.Struct, rename="camel", forbid_unknown_fields=False):
    """Base of every body: JSON names are camelCase."""


# -- requests ----------------------------------------------------------------------------


class RegisterRequest(Body):
    name: Name
    email: Email
    password: Password


class LoginRequest(Body):
    email: Annotated[str, Meta(min_length=1, max_length=254, pattern=rf"^{_PLAIN}*$")]
    password: Annotated[str, Meta(min_length=1, max_length=128, pattern=rf"^{_PLAIN}*$")]


class RefreshRequest(Body):
    refresh_token: Annotated[str, Meta(min_length=1, max_length=4096)]


class LogoutRequest(Body):
    """Optional body of POST /api/auth/logout: the session's refresh token, revoked too."""

    refresh_token: Annotated[str, Meta(min_length=1, max_length=4096)] | None = None


class PasswordChangeRequest(Body):
    current_password: Annotated[str, Meta(min_length=1, max_length=128, pattern=rf"^{_PLAIN}*$")]
    new_password: Password


class CreateEventRequest(Body):
    name: Name
    venue: Name
    time: datetime
    capacity: Capacity
    max_per_user: PerUser = 1


class UpdateEventRequest(Body):
    """Every field optional: the original's clients send the whole event, others may not."""

    name: Name | UnsetType = UNSET
    venue: Name | UnsetType = UNSET
    time: datetime | UnsetType = UNSET
    capacity: Capacity | UnsetType = UNSET
    max_per_user: PerUser | UnsetType = UNSET


class BookRequest(Body):
    seats: Seats = 1


# -- responses ---------------------------------------------------------------------------


class ErrorResponse(Body):
    error: str
    code: str
    details: dict[str, Any] | None = None


class MessageResponse(Body):
    message: str


class UserOut(Body):
    id: int
    email: str
    name: str
    role: str
    created_at: datetime
    updated_at: datetime


class AuthResponse(Body):
    """The original's {user, token}, plus a refresh token and the access token's lifetime."""

    user: UserOut
    token: str
    refresh_token: str = ""
    expires_in: int = 0


class EventOut(Body):
    id: int
    name: str
    venue: str
    time: datetime
    capacity: int
    impressions: int
    max_per_user: int
    available: int | None
    status: str
    created_at: datetime
    updated_at: datetime
    held: int | None = None


class EventListResponse(Body):
    source: str
    data: list[EventOut]
    page: int
    limit: int
    total: int


class BookingOut(Body):
    id: int
    user_id: int
    event_id: int
    seats: int
    status: str
    version: int
    job_id: str
    created_at: datetime
    updated_at: datetime


class BookAccepted(Body):
    message: str
    job_id: str = msgspec.field(name="jobId")
    queue_position: int
    estimated_wait_time: int
    status_endpoint: str
    status: str
    booking: BookingOut
    replayed: bool = False


class JobResult(Body):
    booking_id: int
    event_name: str
    venue: str
    time: str
    seats: int
    booking_status: str


class JobStatus(Body):
    job_id: str = msgspec.field(name="jobId")
    status: str
    user_id: int
    event_id: int
    timestamp: datetime
    result: JobResult
    persisted: bool
    expires_at: datetime | None = None  # a hold's expiry (result.bookingStatus says HELD)


class EventSummary(Body):
    id: int
    name: str
    venue: str
    time: datetime


class HistoryItem(Body):
    id: int
    user_id: int
    event_id: int
    seats: int
    status: str
    job_id: str
    created_at: datetime
    updated_at: datetime
    event: EventSummary


class HealthResponse(Body):
    status: str


# -- admin -------------------------------------------------------------------------------


class QueueCounts(Body):
    waiting: int
    active: int
    completed: int
    failed: int
    total: int


class QueueHealth(Body):
    status: str
    stalled_jobs: int
    healthy: bool


class ShardStats(Body):
    shard: int
    waiting: int
    active: int
    failed: int
    completed: int
    leased: bool
    held: int = 0


class QueueStatsResponse(Body):
    stats: QueueCounts
    health: QueueHealth
    lag_seconds: float
    paused: bool
    persisters: int
    shards: list[ShardStats]
    held: int = 0


class QueueDetailsResponse(Body):
    waiting: list[dict[str, Any]]
    active: list[dict[str, Any]]
    failed: list[dict[str, Any]]


class CleanResponse(Body):
    message: str
    count: int
    redriven: bool


class PopularEvent(Body):
    id: int
    name: str
    impressions: int


class Utilization(Body):
    id: int
    name: str
    capacity: int
    booked: int
    utilization: str
    held: int = 0


class AnalyticsResponse(Body):
    total_bookings: int
    popular_events: list[PopularEvent]
    utilization: list[Utilization]


class ReadinessResponse(Body):
    ready: bool
    checks: dict[str, bool]


class EventDriftOut(Body):
    event_id: int
    name: str
    loaded: bool
    redis: dict[str, int | None]
    postgres: dict[str, int]
    outbox_pending_seats: int
    expected_sold: int
    drift: dict[str, int]
    user_drift: int
    drifted: bool
    expected_held: int = 0
    held_drift: int = 0
    # Seats taken (sold + held, by the truth) beyond the capacity: nothing repairs them.
    oversold: int = 0


class ReconcileResponse(Body):
    events: list[EventDriftOut]
    drifted: int
    repaired: list[int]
    epoch: dict[str, str | None]


# -- holds -------------------------------------------------------------------------------

# The configured bound (BOXOFFICE_HOLD_TTL_MAX_SECONDS) is checked by the view.
TtlSeconds = Annotated[int, Meta(ge=1, le=86_400)]


class HoldRequest(Body):
    seats: Seats = 1
    ttl_seconds: TtlSeconds | None = None


class HoldPolicyRequest(Body):
    """The longest hold of one event, seconds; null: the service-wide bound."""

    max_hold_seconds: TtlSeconds | None = None


class HoldPolicyOut(Body):
    event_id: int
    max_hold_seconds: int | None
    effective_max_hold_seconds: int


class HoldOut(Body):
    hold_id: str
    expires_at: datetime
    seats: int
    event_id: int
    booking_id: int
    status: str
    status_endpoint: str
    confirm_endpoint: str
    replayed: bool = False
