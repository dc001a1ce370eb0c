"""Admin: the longest hold of one event (issue 16), below BOXOFFICE_HOLD_TTL_MAX_SECONDS.
Read by every hold request from Postgres (holds are rate-limited and human-paced, so one
indexed read each is cheap, and a change bites on the next hold)."""

from __future__ import annotations

from aiohttp import web

from api.auth import require_admin
from api.context import Services, services
from api.errors import not_found
from api.http import json_response, path_id, read_body
from api.schemas import HoldPolicyOut, HoldPolicyRequest
from persistence import holdpolicy, queries


async def longest_hold(svc: Services, event_id: int) -> int:
    """The longest ttlSeconds a hold of this event may ask for."""
    async with svc.pool.acquire() as conn:
        own = await holdpolicy.max_hold_seconds(conn, event_id)
    bound = svc.config.hold_ttl_max_seconds
    return bound if own is None else min(own, bound)


async def _answer(svc: Services, event_id: int) -> web.Response:
    async with svc.pool.acquire() as conn:
        own = await holdpolicy.max_hold_seconds(conn, event_id)
    return json_response(HoldPolicyOut(event_id, own, await longest_hold(svc, event_id)))


async def get_policy(request: web.Request) -> web.Response:
    await require_admin(request)
    event_id = path_id(request)
    svc = services(request)
    if await queries.event_by_id(svc.pool, event_id) is None:
        raise not_found("event")
    return await _answer(svc, event_id)


async def set_policy(request: web.Request) -> web.Response:
    await require_admin(request)
    event_id = path_id(request)
    body = await read_body(request, HoldPolicyRequest)
    svc = services(request)
    async with svc.pool.acquire() as conn, conn.transaction():
        if await queries.event_by_id(conn, event_id, for_update=True) is None:
            raise not_found("event")
        await holdpolicy.set_max_hold_seconds(conn, event_id, body.max_hold_seconds)
    return await _answer(svc, event_id)
