"""Prometheus metrics of the persister (served by /metrics in `run`, or --metrics-port)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

BATCH_RECORDS = Histogram(
    "boxoffice_persister_batch_records",
    "Records per batch written to Postgres",
    buckets=(1, 5, 10, 50, 100, 250, 500, 1000, 2500, 5000),
)
FLUSH_SECONDS = Histogram(
    "boxoffice_persister_flush_seconds",
    "Time to write and ack one batch",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
FLUSHED = Counter("boxoffice_persister_records_total", "Records flushed by this process")
DEAD = Counter("boxoffice_persister_dead_letters_total", "Poison records sent to dead letters")
STORE_DOWN = Counter(
    "boxoffice_persister_store_outages_total", "Times Postgres or Redis became unavailable"
)
HOLDS_EXPIRED = Counter(
    "boxoffice_holds_expired_total", "Lapsed holds returned to stock by this process"
)
