"""One middleware: request id, one JSON log line per request, metrics, and the error model
for everything that goes wrong (never a traceback in a response)."""

from __future__ import annotations

import functools
import itertools
import logging
import os
import time

import asyncpg
import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from api import logs
from api.auth import PRINCIPAL
from api.errors import ApiError, from_engine
from api.headers import ALWAYS
from api.http import json_response
from api.metrics import LATENCY, REQUESTS
from api.schemas import ErrorResponse
from engine.errors import EngineError, EngineUnavailable
from engine.loopmetrics import CounterChild, HistogramChild

log = structlog.get_logger("http")

_HTTP_CODES = {
    404: "ROUTE_NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    400: "BAD_REQUEST",
}


def error_response(exc: ApiError) -> web.Response:
    return json_response(
        ErrorResponse(exc.message, exc.code, exc.details), exc.status, headers=exc.headers
    )


def _from_http(exc: web.HTTPException) -> ApiError:
    code = _HTTP_CODES.get(exc.status, f"HTTP_{exc.status}")
    message = "Route not found" if exc.status == 404 else exc.reason
    return ApiError(exc.status, code, message)


def _unavailable(exc: BaseException) -> ApiError | None:
    if isinstance(exc, EngineUnavailable):
        return ApiError(503, "REDIS_UNAVAILABLE", "Booking engine unavailable, retry shortly")
    if isinstance(exc, asyncpg.PostgresConnectionError | asyncpg.InterfaceError | OSError):
        return ApiError(503, "DATABASE_UNAVAILABLE", "Database unavailable, retry shortly")
    if isinstance(exc, TimeoutError):
        return ApiError(503, "DEPENDENCY_TIMEOUT", "A dependency timed out, retry shortly")
    return None


MAX_URL_BYTES = 2048
MAX_HEADER_BYTES = 8192


def _oversized(request: web.Request) -> ApiError | None:
    if len(request.raw_path) > MAX_URL_BYTES:
        return ApiError(414, "URI_TOO_LONG", f"URL longer than {MAX_URL_BYTES} bytes")
    size = sum(len(k) + len(v) + 4 for k, v in request.raw_headers)
    if size > MAX_HEADER_BYTES:
        return ApiError(431, "HEADERS_TOO_LARGE", f"Headers larger than {MAX_HEADER_BYTES} bytes")
    return None


_REQUEST_IDS = itertools.count(1)
_ID_PREFIX = f"{os.getpid():x}{int(time.time()):x}"


def _next_request_id() -> str:
    """Unique per process lifetime; not a secret, so no randomness is spent on it."""
    return f"{_ID_PREFIX}-{next(_REQUEST_IDS):x}"


@functools.cache
def _request_counter(route: str, status: int) -> CounterChild:
    return REQUESTS.labels(route, str(status))


@functools.cache
def _latency(route: str) -> HistogramChild:
    return LATENCY.labels(route)


def _count(route: str, status: int, elapsed: float) -> None:
    """Metric children are looked up once per (route, status), not on every request."""
    _request_counter(route, status).inc()
    _latency(route).observe(elapsed)


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id = request.headers.get("X-Request-Id", "")[:64] or _next_request_id()
    logs.REQUEST_ID.set(request_id)
    started = time.perf_counter()
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    try:
        too_big = _oversized(request)
        if too_big is not None:
            raise too_big
        response = await handler(request)
    except ApiError as exc:
        response = error_response(exc)
    except EngineError as exc:
        response = error_response(from_engine(exc.code, exc.detail))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = error_response(_from_http(exc))
    except (UnicodeError, asyncpg.DataError) as exc:
        # Belt and braces behind the schemas' text patterns: data Postgres cannot hold.
        response = error_response(ApiError(400, "INVALID_INPUT", f"Invalid input: {exc}"[:200]))
    except Exception as exc:
        mapped = _unavailable(exc)
        if mapped is None:
            log.exception("unhandled_error", route=route)
            mapped = ApiError(500, "INTERNAL_ERROR", "Internal server error")
        else:
            log.warning("dependency_unavailable", route=route, error=type(exc).__name__)
        response = error_response(mapped)
    elapsed = time.perf_counter() - started
    response.headers["X-Request-Id"] = request_id
    response.headers.update(ALWAYS)
    if response.status == 408:  # a body too slow: answer, then drop the connection at once
        await response.prepare(request)
        await response.write_eof()
        request.protocol.force_close()
    _count(route, response.status, elapsed)
    if logs.enabled(logging.INFO):  # the fields cost ~5% of a booking when nobody reads them
        principal = request.get(PRINCIPAL)
        log.info(
            "request",
            method=request.method,
            route=route,
            status=response.status,
            duration_ms=round(elapsed * 1000, 3),
            user_id=principal.id if principal is not None else None,
        )
    return response
