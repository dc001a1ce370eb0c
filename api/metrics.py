"""Prometheus metrics of the hot paths, served at /metrics."""

from __future__ import annotations

import contextlib

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, Gauge, generate_latest

from api.context import services
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


async def metrics_view(request: web.Request) -> web.Response:
    # Without Redis, serve the process metrics anyway; queue gauges keep their last value.
    with contextlib.suppress(EngineUnavailable):
        await _refresh_queue_gauges(request)
    body = generate_latest()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
