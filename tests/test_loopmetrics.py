"""engine.loopmetrics must expose exactly what prometheus_client's own Counter and Histogram
would for the same observations (pure unit test: two private registries, no server)."""

from __future__ import annotations

import random

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from engine.loopmetrics import LoopCounter, LoopHistogram

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)


def _exposition(registry: CollectorRegistry) -> list[str]:
    """The scrape text without `_created` lines (creation times differ by construction)."""
    text = generate_latest(registry).decode()
    return [line for line in text.splitlines() if "_created" not in line]


def test_histogram_and_counter_expose_what_prometheus_client_would() -> None:
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    their_h = Histogram("t_seconds", "doc", ["route"], buckets=BUCKETS, registry=theirs)
    their_c = Counter("t_requests_total", "doc", ["route", "status"], registry=theirs)
    our_h = LoopHistogram("t_seconds", "doc", ["route"], buckets=BUCKETS, registry=ours)
    our_c = LoopCounter("t_requests_total", "doc", ["route", "status"], registry=ours)
    rng = random.Random(7)
    # Values on the bucket bounds too: a bound belongs to its own "le" bucket.
    values = [*BUCKETS, 0.0, 3.0, *(rng.expovariate(100) for _ in range(2000))]
    for value in values:
        route = rng.choice(["/a", "/b/{id}"])
        status = rng.choice(["200", "409"])
        their_h.labels(route).observe(value)
        our_h.labels(route).observe(value)
        their_c.labels(route, status).inc()
        our_c.labels(route, status).inc()
    assert _exposition(ours) == _exposition(theirs)


def test_wrong_label_count_is_refused() -> None:
    counter = LoopCounter("x_total", "doc", ["a", "b"], registry=CollectorRegistry())
    try:
        counter.labels("only-one")
    except ValueError:
        return
    raise AssertionError("a child with the wrong number of labels was made")
