"""Prometheus metrics of the hot paths, served at /metrics."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

REQUESTS = Counter("boxoffice_http_requests_total", "HTTP requests", ["route", "status"])
LATENCY = Histogram(
    "boxoffice_http_request_seconds",
    "HTTP request latency",
    ["route"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
BOOKINGS = Counter("boxoffice_booking_outcomes_total", "Booking attempts by outcome", ["outcome"])


async def metrics_view(request: web.Request) -> web.Response:
    body = generate_latest()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
