"""Liveness."""

from __future__ import annotations

from aiohttp import web

from api.http import json_response
from api.schemas import HealthResponse

_OK = json_response(HealthResponse("ok")).body


async def healthz(request: web.Request) -> web.Response:
    return web.Response(body=_OK, content_type="application/json")
