"""Peer (a): the textbook Postgres booking service. Each request locks the event row
(`SELECT ... FOR UPDATE`), checks what remains and the caller's count, inserts the booking,
decrements what remains, and commits: correct under any concurrency, and serialised on the
row of a hot event.

    python -m loadtest.peers.rowlock --dsn postgresql://... --secret S --port 3101 --events 1

Routes: POST /book/{event} (Bearer JWT) -> 201 {bookingId, status}; 409 SOLD_OUT,
LIMIT_EXCEEDED; 404; GET /healthz. Its tables (rl_*) live beside boxoffice's in the bench's
throwaway database.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
from aiohttp import web

from loadtest.peers.common import base_parser, error, reply, serve, user_of

SCHEMA = """
CREATE TABLE IF NOT EXISTS rl_events (
    id BIGINT PRIMARY KEY, capacity INTEGER NOT NULL, remaining INTEGER NOT NULL,
    max_per_user INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS rl_bookings (
    id BIGSERIAL PRIMARY KEY, event_id BIGINT NOT NULL REFERENCES rl_events (id),
    user_id BIGINT NOT NULL, seats INTEGER NOT NULL, created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS rl_bookings_event_user ON rl_bookings (event_id, user_id);
"""

POOL = web.AppKey("pool", asyncpg.Pool)
SECRET = web.AppKey("secret", str)


async def book(request: web.Request) -> web.Response:
    user_id = user_of(request, request.app[SECRET])
    event_id = int(request.match_info["event"])
    async with request.app[POOL].acquire() as conn, conn.transaction():
        event = await conn.fetchrow(
            "SELECT remaining, max_per_user FROM rl_events WHERE id = $1 FOR UPDATE", event_id
        )
        if event is None:
            raise error(404, "EVENT_NOT_FOUND")
        mine = await conn.fetchval(
            "SELECT count(*) FROM rl_bookings WHERE event_id = $1 AND user_id = $2",
            event_id,
            user_id,
        )
        if mine >= event["max_per_user"]:
            raise error(409, "LIMIT_EXCEEDED")
        if event["remaining"] < 1:
            raise error(409, "SOLD_OUT")
        booking_id = await conn.fetchval(
            "INSERT INTO rl_bookings (event_id, user_id, seats) VALUES ($1, $2, 1) RETURNING id",
            event_id,
            user_id,
        )
        await conn.execute("UPDATE rl_events SET remaining = remaining - 1 WHERE id = $1", event_id)
    return reply({"bookingId": booking_id, "status": "completed"}, status=201)


async def healthz(request: web.Request) -> web.Response:
    return reply({"status": "ok"})


def make_app(
    dsn: str, secret: str, events: list[int], capacity: int, per_user: int
) -> web.Application:
    async def resources(app: web.Application) -> AsyncIterator[None]:
        pool = await asyncpg.create_pool(dsn, min_size=4, max_size=20)
        async with pool.acquire() as conn:
            await conn.execute(SCHEMA)
            await conn.executemany(
                "INSERT INTO rl_events VALUES ($1, $2, $2, $3) ON CONFLICT (id) DO NOTHING",
                [(e, capacity, per_user) for e in events],
            )
        app[POOL] = pool
        yield
        await pool.close()

    app = web.Application()
    app[SECRET] = secret
    app.cleanup_ctx.append(resources)
    app.router.add_post("/book/{event}", book)
    app.router.add_get("/healthz", healthz)
    return app


def main() -> None:
    args = base_parser(__doc__).parse_args()
    events = [int(e) for e in args.events.split(",")]
    serve(make_app(args.dsn, args.secret, events, args.capacity, args.max_per_user), args.port)


if __name__ == "__main__":
    main()
