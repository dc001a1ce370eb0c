"""Latency of the engine's Redis calls (Prometheus; served by the API's /metrics)."""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter

from engine.loopmetrics import LoopHistogram

_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1)
DEPENDENCY_SECONDS = LoopHistogram(
    "boxoffice_dependency_seconds",
    "Latency of Redis and Postgres calls",
    ["dependency"],
    buckets=_BUCKETS,
)
REDIS_SECONDS = DEPENDENCY_SECONDS.labels("redis")
POSTGRES_SECONDS = DEPENDENCY_SECONDS.labels("postgres")


UNDER_REPLICATED = Counter(
    "boxoffice_under_replicated_total",
    "Bookings or cancellations that fewer replicas than BOXOFFICE_DURABILITY asked acknowledged",
)


def observe_query(record: Any) -> None:
    """asyncpg query logger: every statement's elapsed time."""
    POSTGRES_SECONDS.observe(record.elapsed)
