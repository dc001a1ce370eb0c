"""Calibration: the bare prototype the performance issue measured before any code existed,
rebuilt so every bench run measures it again on the host of the day. aiohttp + redis.asyncio
+ uvloop and nothing else: no auth, no validation, no middleware, no logging, no metrics.
`POST /book/{event}` runs our real `lua/book.lua` once per request, one Redis round trip
each (redis-py's Script, EVALSHA), and answers its raw reply.

On the issue's day it served ~48k req/s on /ping and ~11k bookings/s in one process. A host
that serves the same code at a quarter of that has moved every ratio against a peer whose
limit is not CPU (a row lock, a single worker): this is how the report tells.

    python -m loadtest.peers.bare --redis R --prefix P --events 1,2 --port N

Routes: GET /ping (and /healthz, for the bench's readiness probe) -> 200 {"status":"ok"};
POST /book/{event} -> 202 with the script's record (a new user id each time), 409 when
it refuses.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from redis.asyncio import Redis

from engine.booking import Engine, EventSpec
from engine.keys import SHARD_SPACE, KeySpace
from engine.scripts import script_source
from loadtest.peers.common import serve

BOOK = web.AppKey("book", Any)
KEYS = web.AppKey("keys", KeySpace)
_PONG = b'{"status":"ok"}'
_users = itertools.count(1)


async def ping(request: web.Request) -> web.Response:
    return web.Response(body=_PONG, content_type="application/json")


async def book(request: web.Request) -> web.Response:
    event_id = int(request.match_info["event"])
    ek = request.app[KEYS].event(event_id)
    sk = ek.shard_keys
    user = next(_users)
    reply = await request.app[BOOK](
        keys=[
            ek.inventory,
            ek.users,
            sk.bookings,
            sk.outbox,
            sk.pending,
            "",
            sk.stats,
            sk.changed,
        ],
        args=[event_id, user, 1, ek.shard, "ab12", "", 60, SHARD_SPACE, 0],
    )
    if reply[0] != b"ok":
        return web.Response(body=reply[1], status=409, content_type="application/json")
    return web.Response(body=reply[1], status=202, content_type="application/json")


def make_app(args: argparse.Namespace) -> web.Application:
    async def resources(app: web.Application) -> AsyncIterator[None]:
        redis = Redis.from_url(args.redis)
        app[BOOK] = redis.register_script(script_source("book"))
        yield
        await redis.aclose()

    app = web.Application()
    app[KEYS] = KeySpace(args.prefix, args.shards)
    app.cleanup_ctx.append(resources)
    app.router.add_get("/ping", ping)
    app.router.add_get("/healthz", ping)
    app.router.add_post("/book/{event}", book)
    return app


async def load_events(args: argparse.Namespace) -> None:
    """The events' inventory, loaded by the engine as boxoffice loads it (huge capacity)."""
    redis = Redis.from_url(args.redis)
    try:
        engine = Engine(redis, KeySpace(args.prefix, args.shards))
        for event in args.events.split(","):
            spec = EventSpec(int(event), 10**9, 10**9, "Bare", "Hall", "t")
            await engine.load_event(spec)
    finally:
        await redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--prefix", required=True, help="a throwaway key prefix")
    parser.add_argument("--shards", type=int, default=16)
    parser.add_argument("--events", default="1", help="event ids, comma-separated")
    parser.add_argument("--port", type=int, default=3100)
    args = parser.parse_args()
    asyncio.run(load_events(args))
    serve(make_app(args), args.port)


if __name__ == "__main__":
    main()
