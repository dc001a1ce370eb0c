"""Liveness (the process answers) and readiness (it can sell: Redis, Postgres, scripts and
an inventory that is whole)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from api.context import Services, services
from api.http import json_response
from api.schemas import HealthResponse, ReadinessResponse

_OK = json_response(HealthResponse("ok")).body
CHECK_TIMEOUT = 1.0


async def healthz(request: web.Request) -> web.Response:
    return web.Response(body=_OK, content_type="application/json")


async def _check(probe: Any) -> bool:
    try:
        return bool(await asyncio.wait_for(probe, CHECK_TIMEOUT))
    except Exception:
        return False


async def _scripts_loaded(svc: Services) -> bool:
    return await svc.engine.ensure_scripts()


async def readyz(request: web.Request) -> web.Response:
    svc = services(request)
    checks = {
        "redis": await _check(svc.engine.ping()),
        "postgres": await _check(svc.pool.fetchval("SELECT 1")),
        "scripts": await _check(_scripts_loaded(svc)),
        "inventory": svc.watcher.ready,
    }
    ready = all(checks.values())
    return json_response(ReadinessResponse(ready, checks), status=200 if ready else 503)
