"""Prometheus metrics of the hot paths, served at /metrics -- not to the public.

The figures name every route with its failure counts (failed logins among them), dead
letters and versions: operators' business. /metrics on the API port needs
`Authorization: Bearer <BOXOFFICE_METRICS_TOKEN>` when that is set, is open with
BOXOFFICE_ENV=dev, and otherwise answers 404 METRICS_NOT_PUBLIC; BOXOFFICE_METRICS_PORT
serves it without a token on its own listener (BOXOFFICE_METRICS_HOST, loopback by
default), for a scraper on the host or a private network."""

from __future__ import annotations

import contextlib
import hmac

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, Gauge, generate_latest

from api.context import CONFIG, SERVICES, Services, services
from api.errors import ApiError
from engine.errors import EngineUnavailable
from engine.loopmetrics import CounterChild, LoopCounter, LoopHistogram
from engine.queue import Queue

REQUESTS = LoopCounter("boxoffice_http_requests_total", "HTTP requests", ["route", "status"])
LATENCY = LoopHistogram(
    "boxoffice_http_request_seconds",
    "HTTP request latency",
    ["route"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
BOOKINGS = LoopCounter(
    "boxoffice_booking_outcomes_total", "Booking attempts by outcome", ["outcome"]
)


def booking_outcome(outcome: str) -> CounterChild:
    return BOOKINGS.labels(outcome)


OUTBOX_DEPTH = Gauge("boxoffice_outbox_waiting", "Records waiting in the outbox", ["shard"])
IN_FLIGHT = Gauge("boxoffice_outbox_in_flight", "Records claimed, not yet acked", ["shard"])
DEAD_LETTERS = Gauge("boxoffice_outbox_dead_letters", "Records in dead letters")
FLUSHED_TOTAL = Gauge("boxoffice_outbox_flushed", "Records flushed to Postgres, all persisters")
LAG = Gauge("boxoffice_outbox_lag_seconds", "Age of the oldest waiting record")


async def _refresh_queue_gauges(request: web.Request) -> None:
    svc = services(request)
    stats = await Queue(svc.redis, svc.keys).stats()
    for shard in stats.shards:
        OUTBOX_DEPTH.labels(str(shard.shard)).set(shard.waiting)
        IN_FLIGHT.labels(str(shard.shard)).set(shard.active)
    DEAD_LETTERS.set(stats.total("failed"))
    FLUSHED_TOTAL.set(stats.total("completed"))
    LAG.set(stats.lag_seconds)


PRIVATE_LISTENER = web.AppKey("metrics_private_listener", bool)


def authorize_scrape(request: web.Request) -> None:
    if request.app.get(PRIVATE_LISTENER):
        return
    config = request.app[CONFIG]
    if config.metrics_token:
        given = request.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(given, f"Bearer {config.metrics_token}".encode()):
            raise ApiError(401, "UNAUTHORIZED", "Metrics need the metrics bearer token")
        return
    if config.env != "dev":
        raise ApiError(
            404,
            "METRICS_NOT_PUBLIC",
            "Metrics are served on BOXOFFICE_METRICS_PORT or with BOXOFFICE_METRICS_TOKEN",
        )


async def serve_private_listener(svc: Services) -> web.AppRunner | None:
    """/metrics alone, without a token, on BOXOFFICE_METRICS_PORT (0: none). Several
    worker processes share the port (SO_REUSEPORT), as they share the API's."""
    config = svc.config
    if not config.metrics_port:
        return None
    app = web.Application()
    app[CONFIG], app[SERVICES], app[PRIVATE_LISTENER] = config, svc, True
    app.router.add_get("/metrics", metrics_view)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, config.metrics_host, config.metrics_port, reuse_port=True).start()
    return runner


async def metrics_view(request: web.Request) -> web.Response:
    authorize_scrape(request)
    # Without Redis, serve the process metrics anyway; queue gauges keep their last value.
    with contextlib.suppress(EngineUnavailable):
        await _refresh_queue_gauges(request)
    body = generate_latest()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
