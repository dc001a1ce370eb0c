"""Small helpers every view uses: JSON in and out, path and query parsing."""

from __future__ import annotations

import asyncio
import re
from typing import Any, TypeVar

import msgspec
from aiohttp import web

from api.context import CONFIG
from api.errors import ApiError, bad_request

T = TypeVar("T")

MAX_ID = 2**53 - 1  # ids travel through Lua doubles: keep them exact
# ASCII digits only: str.isdigit() also accepts "²" (int() then raises: a 500) and
# Arabic-Indic digits, which int() reads, so "\u0661" would alias id 1. fullmatch: "$"
# alone would let a trailing newline through.
_DIGITS = re.compile(r"[0-9]+")
_encoder = msgspec.json.Encoder()


def encode_json(body: Any) -> bytes:
    return _encoder.encode(body)


def raw_json(body: bytes, headers: dict[str, str] | None = None) -> web.Response:
    """An answer encoded already (a cached one)."""
    return web.Response(body=body, content_type="application/json", headers=headers)


def json_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=_encoder.encode(body),
        status=status,
        content_type="application/json",
        headers=headers,
    )


async def read_body(request: web.Request, kind: type[T], *, optional: bool = False) -> T:
    """Decode and validate a JSON body into `kind`. An empty body is `kind()` when optional."""
    raw = await read_within_deadline(request)
    if not raw.strip():
        if optional:
            return kind()
        raise bad_request("Request body is required", "INVALID_JSON")
    try:
        return msgspec.json.decode(raw, type=kind)
    except msgspec.ValidationError as exc:
        raise bad_request(str(exc), "VALIDATION_ERROR") from None
    except msgspec.DecodeError as exc:
        raise bad_request(f"Malformed JSON: {exc}", "INVALID_JSON") from None
    except RecursionError:
        # msgspec guards its C recursion with Python's limit: ~30,000 nested arrays raise
        # RecursionError, not DecodeError. No body of ours nests more than two levels.
        raise bad_request("JSON nested too deeply", "INVALID_JSON") from None


async def read_within_deadline(request: web.Request) -> bytes:
    """The whole body within BOXOFFICE_BODY_DEADLINE_SECONDS of starting to read it, or 408
    and the connection closed: a client sending a byte every 15 s used to hold its
    connection (and a descriptor) for as long as it liked. A body already received (the
    common case: small JSON arrives with its headers) is read without arming a timer, and a
    request that has none (no Content-Length, or 0: a bodiless booking) reads nothing."""
    if not request.body_exists:
        return b""
    if request.content.is_eof():
        return await request.read()
    try:
        async with asyncio.timeout(request.app[CONFIG].body_deadline_seconds):
            return await request.read()
    except TimeoutError:
        # The middleware sends the 408 and closes (no lingering read of the rest).
        raise ApiError(408, "REQUEST_TIMEOUT", "Request body not received in time") from None


def path_id(request: web.Request, name: str = "id") -> int:
    raw = request.match_info.get(name, "")
    if len(raw) > 16 or not _DIGITS.fullmatch(raw) or not 1 <= int(raw) <= MAX_ID:
        raise ApiError(
            400, "INVALID_ID", f"'{name}' must be a positive integer", {"value": raw[:40]}
        )
    return int(raw)


def query_int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if len(raw) > 9 or not _DIGITS.fullmatch(raw) or not low <= int(raw) <= high:
        raise bad_request(f"'{name}' must be an integer from {low} to {high}", name=raw[:40])
    return int(raw)


def query_flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in {"1", "true", "yes"}
