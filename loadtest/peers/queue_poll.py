"""Peer (b): shaped like the original (Express + a Bull queue + one worker + Prisma). The API
enqueues a job in a Redis list and answers 202 {jobId, statusEndpoint} at once; ONE worker
process pops jobs one at a time and books each in a SERIALIZABLE transaction (check capacity
and the caller's count, insert); the client polls the status route until the job is done.
A booking is done when the client sees `completed`, so the rate that matters is end to end.

    python -m loadtest.peers.queue_poll serve  --dsn D --redis R --prefix P --secret S --port N
    python -m loadtest.peers.queue_poll worker --dsn D --redis R --prefix P

Routes: POST /book/{event} (Bearer JWT) -> 202 {jobId, status: "queued", statusEndpoint};
GET /status/{jobId} -> 200 {jobId, status: queued|active|completed|failed, result?, error?};
GET /healthz. Tables qp_* in the bench's throwaway database; keys under the given prefix.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import time
from collections.abc import AsyncIterator

import asyncpg
from aiohttp import web
from redis.asyncio import Redis

from loadtest.peers.common import base_parser, error, reply, serve, user_of

SCHEMA = """
CREATE TABLE IF NOT EXISTS qp_events (
    id BIGINT PRIMARY KEY, capacity INTEGER NOT NULL, max_per_user INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS qp_bookings (
    id BIGSERIAL PRIMARY KEY, event_id BIGINT NOT NULL REFERENCES qp_events (id),
    user_id BIGINT NOT NULL, created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS qp_bookings_event_user ON qp_bookings (event_id, user_id);
"""

REDIS = web.AppKey("redis", Redis)
SECRET = web.AppKey("secret", str)
PREFIX = web.AppKey("prefix", str)


def _text(value: bytes | str | None) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _job_key(prefix: str, job_id: str) -> str:
    return f"{prefix}:qp:job:{job_id}"


async def enqueue(request: web.Request) -> web.Response:
    user_id = user_of(request, request.app[SECRET])
    event_id = int(request.match_info["event"])
    redis, prefix = request.app[REDIS], request.app[PREFIX]
    job_id = str(await redis.incr(f"{prefix}:qp:seq"))
    pipe = redis.pipeline(transaction=True)
    pipe.hset(
        _job_key(prefix, job_id),
        mapping={"status": "queued", "userId": user_id, "eventId": event_id, "t": time.time()},
    )
    pipe.lpush(f"{prefix}:qp:wait", job_id)
    await pipe.execute()
    return reply(
        {"jobId": job_id, "status": "queued", "statusEndpoint": f"/status/{job_id}"}, status=202
    )


async def status(request: web.Request) -> web.Response:
    job_id = request.match_info["job"]
    job = await request.app[REDIS].hgetall(_job_key(request.app[PREFIX], job_id))
    if not job:
        raise error(404, "JOB_NOT_FOUND")
    body = {_text(k): _text(v) for k, v in job.items()}
    return reply({"jobId": job_id, **body})


async def healthz(request: web.Request) -> web.Response:
    return reply({"status": "ok"})


def make_app(args: argparse.Namespace) -> web.Application:
    async def resources(app: web.Application) -> AsyncIterator[None]:
        redis = Redis.from_url(args.redis)
        app[REDIS] = redis
        yield
        await redis.aclose()

    app = web.Application()
    app[SECRET] = args.secret
    app[PREFIX] = args.prefix
    app.cleanup_ctx.append(resources)
    app.router.add_post("/book/{event}", enqueue)
    app.router.add_get("/status/{job}", status)
    app.router.add_get("/healthz", healthz)
    return app


async def _book(conn: asyncpg.Connection, event_id: int, user_id: int) -> tuple[str, str]:
    """One job: (status, result or error), retried while serialization fails."""
    for _ in range(10):
        try:
            async with conn.transaction(isolation="serializable"):
                event = await conn.fetchrow(
                    "SELECT capacity, max_per_user FROM qp_events WHERE id = $1", event_id
                )
                if event is None:
                    return "failed", "Event not found"
                booked = await conn.fetchval(
                    "SELECT count(*) FROM qp_bookings WHERE event_id = $1", event_id
                )
                mine = await conn.fetchval(
                    "SELECT count(*) FROM qp_bookings WHERE event_id = $1 AND user_id = $2",
                    event_id,
                    user_id,
                )
                if booked >= event["capacity"]:
                    return "failed", "Event is fully booked"
                if mine >= event["max_per_user"]:
                    return "failed", "Booking limit reached"
                booking_id = await conn.fetchval(
                    "INSERT INTO qp_bookings (event_id, user_id) VALUES ($1, $2) RETURNING id",
                    event_id,
                    user_id,
                )
                return "completed", str(booking_id)
        except asyncpg.SerializationError:
            continue
    return "failed", "serialization failures"


async def work(args: argparse.Namespace) -> None:
    """The one worker: pop, book, record the outcome; SIGTERM ends it between jobs."""
    redis = Redis.from_url(args.redis)
    conn = await asyncpg.connect(args.dsn)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    wait_key = f"{args.prefix}:qp:wait"
    try:
        while not stop.is_set():
            popped = await redis.brpop([wait_key], timeout=1)
            if popped is None:
                continue
            job_id = _text(popped[1])
            key = _job_key(args.prefix, job_id)
            await redis.hset(key, "status", "active")
            job = await redis.hmget(key, ["eventId", "userId"])
            state, detail = await _book(conn, int(_text(job[0])), int(_text(job[1])))
            field = "result" if state == "completed" else "error"
            await redis.hset(key, mapping={"status": state, field: detail})
    finally:
        await conn.close()
        await redis.aclose()


async def prepare(args: argparse.Namespace) -> None:
    conn = await asyncpg.connect(args.dsn)
    try:
        await conn.execute(SCHEMA)
        await conn.executemany(
            "INSERT INTO qp_events VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING",
            [(int(e), args.capacity, args.max_per_user) for e in args.events.split(",")],
        )
    finally:
        await conn.close()


def main() -> None:
    parser = base_parser(__doc__)
    parser.add_argument("role", choices=["serve", "worker"])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--prefix", default="qp")
    args = parser.parse_args()
    if args.role == "worker":
        try:
            import uvloop

            uvloop.install()
        except ImportError:  # pragma: no cover
            pass
        asyncio.run(prepare(args))
        asyncio.run(work(args))
        return
    asyncio.run(prepare(args))
    serve(make_app(args), args.port)


if __name__ == "__main__":
    main()
