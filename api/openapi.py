"""OpenAPI 3.1, generated from the route table and the msgspec Structs (no hand-kept copy).

Each route of the app is described here by an `Operation`; the document is assembled from
the router at start-up, so a route without a description fails the tests, and a body or
response type change shows up in the spec by itself."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import msgspec
from aiohttp import web

from api import schemas as s

REF = "#/components/schemas/{name}"
_PARAM = re.compile(r"\{(\w+)(?::[^}]*)?\}")

ERROR_TEXT = {
    400: "Bad request (malformed JSON, validation, bad id or query)",
    401: "Missing, malformed, expired or forged token",
    403: "Authenticated, but not allowed",
    404: "Not found",
    409: "Conflict with the current state (sold out, limit, already cancelled, ...)",
    413: "Body too large",
    422: "Idempotency-Key reused for another request",
    429: "Rate limited (see Retry-After)",
    503: "A dependency is unavailable or inventory is not ready",
}


@dataclass(frozen=True)
class Query:
    name: str
    schema: dict[str, Any]
    description: str = ""


@dataclass(frozen=True)
class Operation:
    summary: str
    ok: int = 200
    response: Any = None  # a msgspec type, or None for no JSON body
    body: Any = None
    body_required: bool = True
    auth: str = "none"  # none | user | admin
    errors: tuple[int, ...] = ()
    query: tuple[Query, ...] = ()
    tag: str = "ops"
    headers: tuple[Query, ...] = ()
    content_type: str = "application/json"
    extra: dict[str, Any] = field(default_factory=dict)


PAGE = Query("page", {"type": "integer", "minimum": 1, "maximum": 1_000_000})
LIMIT = Query("limit", {"type": "integer", "minimum": 1, "maximum": 100})
IDEMPOTENCY = Query(
    "Idempotency-Key",
    {"type": "string", "pattern": "^[A-Za-z0-9_.:\\-]{1,128}$"},
    "Replays the first answer for the same key (per user) for 24 h",
)
FLAG = {"type": "string", "enum": ["true", "false"]}
EVENT_FILTER = Query(
    "eventId",
    {"type": "integer", "minimum": 1, "maximum": 999_999_999},
    "Only this open event (404 if there is none)",
)
_COMMON = (400, 503)
_AUTHED = (400, 401, 503)
_ADMIN = (400, 401, 403, 503)

OPERATIONS: dict[tuple[str, str], Operation] = {
    ("POST", "/api/auth/register"): Operation(
        "Register a user", response=s.AuthResponse, body=s.RegisterRequest, tag="auth",
        errors=(*_COMMON, 413, 429),
    ),
    ("POST", "/api/auth/login"): Operation(
        "Log in", response=s.AuthResponse, body=s.LoginRequest, tag="auth",
        errors=(*_COMMON, 413, 429),
    ),
    ("GET", "/api/auth/me"): Operation(
        "The caller", response=s.UserOut, auth="user", tag="auth", errors=(*_AUTHED, 404)
    ),
    ("POST", "/api/auth/refresh"): Operation(
        "A new token pair for a refresh token (which is rotated)", response=s.AuthResponse,
        body=s.RefreshRequest, tag="auth", errors=(*_AUTHED, 413),
    ),
    ("POST", "/api/auth/logout"): Operation(
        "Revoke this token (and the refresh token named in the body)",
        response=s.MessageResponse, body=s.LogoutRequest, body_required=False, auth="user",
        tag="auth", errors=(*_AUTHED, 403, 413),
    ),
    ("POST", "/api/auth/logout-all"): Operation(
        "Revoke every token of the caller", response=s.MessageResponse, auth="user",
        tag="auth", errors=_AUTHED,
    ),
    ("POST", "/api/auth/password"): Operation(
        "Change the password; every other token is revoked", response=s.AuthResponse,
        body=s.PasswordChangeRequest, auth="user", tag="auth", errors=(*_AUTHED, 413, 429),
    ),
    ("GET", "/api/events/view"): Operation(
        "List events (cached metadata, live availability)", response=s.EventListResponse,
        query=(PAGE, LIMIT), tag="events", errors=_COMMON,
    ),
    ("GET", "/api/events/{id}/view"): Operation(
        "View one event (counts an impression)", response=s.EventOut, tag="events",
        errors=(*_COMMON, 404),
    ),
    ("POST", "/api/events/create"): Operation(
        "Create an event and load its inventory", response=s.EventOut,
        body=s.CreateEventRequest, auth="admin", tag="events", errors=(*_ADMIN, 413),
    ),
    ("PUT", "/api/events/{id}/update"): Operation(
        "Update an event; capacity changes by the difference", response=s.EventOut,
        body=s.UpdateEventRequest, auth="admin", tag="events",
        errors=(*_ADMIN, 404, 409, 413),
    ),
    ("DELETE", "/api/events/{id}/delete"): Operation(
        "Delete an event (refused with live bookings unless force)", response=s.MessageResponse,
        auth="admin", tag="events", query=(Query("force", FLAG),), errors=(*_ADMIN, 404, 409),
    ),
    ("POST", "/api/bookings/{id}/book"): Operation(
        "Book seats: decided at once by one atomic script", ok=202, response=s.BookAccepted,
        body=s.BookRequest, body_required=False, auth="user", tag="bookings",
        headers=(IDEMPOTENCY,), errors=(*_AUTHED, 404, 409, 413, 422, 429),
    ),
    ("GET", "/api/bookings/status/{job_id}"): Operation(
        "Status of a booking by its (unguessable) jobId", response=s.JobStatus,
        tag="bookings", errors=(*_COMMON, 404),
    ),
    ("GET", "/api/bookings/history"): Operation(
        "The caller's bookings, newest first", response=list[s.HistoryItem], auth="user",
        query=(PAGE, LIMIT), tag="bookings", errors=_AUTHED,
    ),
    ("DELETE", "/api/bookings/{id}/cancel"): Operation(
        "Cancel one's own booking; seats return to stock", response=s.MessageResponse,
        auth="user", tag="bookings", errors=(*_AUTHED, 403, 404, 409),
    ),
    ("POST", "/api/bookings/{id}/hold"): Operation(
        "Hold seats until an expiry (two-phase booking)", ok=201, response=s.HoldOut,
        body=s.HoldRequest, body_required=False, auth="user", tag="bookings",
        headers=(IDEMPOTENCY,), errors=(*_AUTHED, 404, 409, 413, 422, 429),
    ),
    ("POST", "/api/bookings/holds/{hold_id}/confirm"): Operation(
        "Confirm a live hold: answered like a booking", ok=202, response=s.BookAccepted,
        auth="user", tag="bookings", errors=(*_AUTHED, 403, 404, 409),
    ),
    ("DELETE", "/api/bookings/holds/{hold_id}"): Operation(
        "Release a live hold early; seats return to stock", response=s.MessageResponse,
        auth="user", tag="bookings", errors=(*_AUTHED, 403, 404, 409),
    ),
    ("GET", "/api/admin/events/{id}/hold-policy"): Operation(
        "The longest hold of one event", response=s.HoldPolicyOut, auth="admin",
        tag="admin", errors=(*_ADMIN, 404),
    ),
    ("PUT", "/api/admin/events/{id}/hold-policy"): Operation(
        "Set (or clear, null) the longest hold of one event", response=s.HoldPolicyOut,
        body=s.HoldPolicyRequest, auth="admin", tag="admin", errors=(*_ADMIN, 404, 413),
    ),
    ("GET", "/api/admin/analytics"): Operation(
        "Bookings, popular events, utilization", response=s.AnalyticsResponse, auth="admin",
        tag="admin", errors=_ADMIN,
    ),
    ("GET", "/api/admin/queue/stats"): Operation(
        "The outbox in the original's queue words", response=s.QueueStatsResponse,
        auth="admin", tag="admin", errors=_ADMIN,
    ),
    ("GET", "/api/admin/queue/details"): Operation(
        "Samples of waiting, active and failed records", response=s.QueueDetailsResponse,
        auth="admin", query=(Query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),),
        tag="admin", errors=_ADMIN,
    ),
    ("POST", "/api/admin/queue/pause"): Operation(
        "Pause the persisters (bookings go on)", response=s.MessageResponse, auth="admin",
        tag="admin", errors=_ADMIN,
    ),
    ("POST", "/api/admin/queue/resume"): Operation(
        "Resume the persisters", response=s.MessageResponse, auth="admin", tag="admin",
        errors=_ADMIN,
    ),
    ("POST", "/api/admin/queue/clean"): Operation(
        "Drop dead letters, or re-drive them", response=s.CleanResponse, auth="admin",
        query=(Query("redrive", FLAG),), tag="admin", errors=_ADMIN,
    ),
    ("GET", "/api/admin/reconcile"): Operation(
        "Drift between Redis and Postgres per event", response=s.ReconcileResponse,
        auth="admin", query=(Query("repair", FLAG), EVENT_FILTER), tag="admin",
        errors=(*_ADMIN, 404),
    ),
    ("POST", "/api/admin/reconcile"): Operation(
        "Repair drifted events, rebuild missing inventory", response=s.ReconcileResponse,
        auth="admin", query=(EVENT_FILTER,), tag="admin", errors=(*_ADMIN, 404),
    ),
    ("GET", "/healthz"): Operation("Liveness", response=s.HealthResponse),
    ("GET", "/readyz"): Operation(
        "Readiness: Redis, Postgres, scripts, inventory", response=s.ReadinessResponse,
        errors=(503,),
    ),
    ("GET", "/metrics"): Operation(
        "Prometheus metrics (BOXOFFICE_METRICS_TOKEN as bearer, or BOXOFFICE_METRICS_PORT)",
        content_type="text/plain", response=str, errors=(401, 404),
    ),
    ("GET", "/api/openapi.json"): Operation("This document", response=dict[str, Any]),
    ("GET", "/"): Operation(
        "Landing page: what this server is, with links", content_type="text/html", response=str
    ),
    ("GET", "/readme"): Operation(
        "The README, as plain text", content_type="text/plain", response=str
    ),
}  # fmt: skip

# The docs page, the admin console and their static files: pages, not API operations.
UNDOCUMENTED_PREFIXES = ("/api/docs", "/admin")


def route_key(route: web.AbstractRoute) -> tuple[str, str] | None:
    resource = route.resource
    if resource is None or route.method in ("HEAD", "OPTIONS"):
        return None
    path = _PARAM.sub(r"{\1}", resource.canonical)
    if path.startswith(UNDOCUMENTED_PREFIXES):
        return None
    return route.method, path


def _parameters(path: str, op: Operation) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = []
    for name in _PARAM.findall(path):
        schema: dict[str, Any] = {"type": "string", "minLength": 1}
        if name == "id":
            schema = {"type": "integer", "minimum": 1, "maximum": 2**53 - 1}
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
    for q in op.query:
        param = {"name": q.name, "in": "query", "required": False, "schema": q.schema}
        params.append({**param, "description": q.description} if q.description else param)
    for h in op.headers:
        params.append(
            {
                "name": h.name,
                "in": "header",
                "required": False,
                "schema": h.schema,
                "description": h.description,
            }
        )
    return params


def _content(schema: dict[str, Any], content_type: str = "application/json") -> dict[str, Any]:
    return {content_type: {"schema": schema}}


def build_spec(app: web.Application) -> dict[str, Any]:
    """The OpenAPI 3.1 document for every route the app serves."""
    ops: list[tuple[str, str, Operation]] = []
    for route in app.router.routes():
        key = route_key(route)
        if key is None:
            continue
        op = OPERATIONS.get(key)
        if op is None:
            raise KeyError(f"route {key} has no OpenAPI description in api/openapi.py")
        ops.append((key[0], key[1], op))
    types = [op.response for *_, op in ops if op.response not in (None, str)]
    types += [op.body for *_, op in ops if op.body is not None]
    types.append(s.ErrorResponse)
    schemas, components = msgspec.json.schema_components(types, ref_template=REF)
    schema_of = dict(zip(map(_type_id, types), schemas, strict=True))
    paths: dict[str, dict[str, Any]] = {}
    for method, path, op in ops:
        paths.setdefault(path, {})[method.lower()] = _operation(method, path, op, schema_of)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "boxoffice",
            "version": "0.1.0",
            "description": "Event booking: atomic Redis-Lua reservations, write-behind to "
            "Postgres. Errors: {error, code, details}.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }


def _type_id(t: Any) -> str:
    return repr(t)


def _operation(
    method: str, path: str, op: Operation, schema_of: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    error_schema = schema_of[_type_id(s.ErrorResponse)]
    ok: dict[str, Any] = {"description": op.summary}
    if op.response is str:
        ok["content"] = _content({"type": "string"}, op.content_type)
    elif op.response is not None:
        ok["content"] = _content(schema_of[_type_id(op.response)])
    responses: dict[str, Any] = {str(op.ok): ok}
    errors = set(op.errors)
    if op.auth != "none":
        errors |= {401}
    if op.auth == "admin":
        errors |= {403}
    if method in ("POST", "PUT") and op.body is not None:
        errors |= {400, 413}
    errors |= {405, 404} if "{" in path else {405}
    for status in sorted(errors):
        responses[str(status)] = {
            "description": ERROR_TEXT.get(status, "Error"),
            "content": _content(error_schema),
        }
    operation: dict[str, Any] = {
        "summary": op.summary,
        "operationId": f"{method.lower()}_{re.sub(r'[^a-z0-9]+', '_', path.lower()).strip('_')}",
        "tags": [op.tag],
        "parameters": _parameters(path, op),
        "responses": responses,
    }
    if op.auth != "none":
        operation["security"] = [{"bearer": []}]
    if op.body is not None:
        operation["requestBody"] = {
            "required": op.body_required,
            "content": _content(schema_of[_type_id(op.body)]),
        }
    return operation


SPEC = web.AppKey("openapi_spec", dict)


async def build_on_startup(app: web.Application) -> None:
    """Built once, when every route is registered; a missing description stops start-up."""
    app[SPEC] = build_spec(app)


async def openapi_view(request: web.Request) -> web.Response:
    return web.json_response(request.app[SPEC])
