"""The benchmark harness cannot rot: `python -m loadtest.bench --quick` (seconds) runs every
phase against this session's stores and prints every figure's row. It asserts rows, never
values: no test asserts a time."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

FIGURE_ROWS = [
    "engine: Engine.book, one process",
    "HTTP GET /healthz, 1 process",
    "HTTP booking, 1 process, 4 events",
    "calibration: bare prototype GET /ping, 1 process",
    "calibration: bare prototype booking (one EVALSHA), 1 process",
    "HTTP GET /healthz, 2 processes",
    "HTTP booking, 2 processes, 4 events",
    "HTTP booking, 1 process, one hot event",
    "HTTP booking, 2 processes, one hot event",
    "HTTP booking, 1 process, peak again",
    "HTTP booking at half peak, 1 process",
    "HTTP booking at half peak, 1 process, persister on",
    "HTTP booking, 2 processes, peak again",
    "HTTP booking at half peak, 2 processes",
    "HTTP booking at half peak, 2 processes, persister on",
    "peer: Postgres row lock, 1 process, one hot event",
    "peer: Postgres row lock, 2 processes, one hot event",
    "peer: queue-and-poll (one worker), one hot event, end to end",
    "write-behind: drain, one persister",
    "confirm-to-Postgres lag at half peak, 1 process(es)",
    "confirm-to-Postgres lag at half peak, 2 process(es)",
    "Redis bytes per booking, live (outbox too) / persisted",
]
CEILING_ROWS = [
    "ceiling: redis-benchmark EVALSHA book.lua, not pipelined",
    "ceiling: redis-benchmark EVALSHA book.lua -P 16",
]


def _quick_bench(stores: tuple[str, str], args: list[str], timeout: float) -> str:
    """`python -m loadtest.bench --quick *args` on this session's stores: what it printed."""
    redis_url, admin_dsn = stores
    env = dict(os.environ, REDIS_URL=redis_url, DATABASE_URL=admin_dsn)
    done = subprocess.run(
        [sys.executable, "-m", "loadtest.bench", "--quick", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    return done.stdout


@pytest.mark.timeout(240)
def test_quick_bench_prints_every_figure(stores: tuple[str, str], tmp_path: Path) -> None:
    out = tmp_path / "PERFORMANCE.md"
    printed = _quick_bench(stores, ["--out", str(out)], timeout=220)
    missing = [row for row in FIGURE_ROWS if row not in printed]
    if "skipped ceiling: redis-benchmark is not on PATH" not in printed:
        missing += [row for row in CEILING_ROWS if row not in printed]
    assert not missing, printed
    for route in (
        "event list ÷ /healthz",
        "event page ÷ /healthz",
        "status by jobId ÷ /healthz",
        "history ÷ /healthz",
        "crowd mix",
        "event list ÷ the original's",
    ):
        assert route in printed, printed  # fmt: skip
    # Every ratio row has a value: none was left at n/a by a phase that quietly measured nothing.
    ratio_lines = printed.split("ratio (DESIGN §6)", 1)[1].splitlines()
    for line in ratio_lines[1:]:
        if line.strip() and not line.startswith("wrote"):
            assert not line.rstrip().endswith("n/a") or "redis-benchmark" in line, line
    text = out.read_text()
    assert "## Goals (DESIGN §6)" in text and "## How each figure is measured" in text
    assert "## Calibration: the issue's bare prototype, this run" in text


def test_interleaved_rounds_combine_into_one_figure() -> None:
    """Rounds add up (requests, seconds, failures); CPU is time-weighted; each percentile is
    the median of the rounds' (wrk gives percentiles, not samples)."""
    from loadtest.measure import Measure, combine

    rounds = [
        Measure("b", "wrk", ok=100, seconds=1.0, p50=1.0, p99=9.0, p999=20.0, cpu={"server": 1.0}),
        Measure("b", "wrk", ok=300, seconds=3.0, p50=2.0, p99=5.0, p999=10.0, cpu={"server": 0.5},
                not_ok={"4xx/5xx": 2}),
        Measure("b", "wrk", ok=200, seconds=2.0, p50=3.0, p99=7.0, p999=30.0, cpu={"server": 0.8},
                not_ok={"4xx/5xx": 1}, errors=4),
    ]  # fmt: skip
    one = combine(rounds)
    assert (one.ok, one.seconds, one.rate) == (600, 6.0, 100.0)
    assert (one.p50, one.p99, one.p999) == (2.0, 7.0, 20.0)
    assert one.not_ok == {"4xx/5xx": 3} and one.errors == 4
    assert one.cpu == {"server": round((1.0 * 1 + 0.5 * 3 + 0.8 * 2) / 6, 2)}
    assert one.generator == "wrk, 3 rounds interleaved"
    assert combine(rounds[:1]) is rounds[0]


def test_locust_shoppers_passwords_always_pass_the_register_rule() -> None:
    """A bare token_urlsafe(12) failed the rule about one time in eight: those shoppers
    stopped at sign-up and the locust run reported 400s that were the generator's own."""
    from api.passwords import is_strong
    from loadtest.shoppers import shopper_password

    assert all(is_strong(shopper_password()) for _ in range(2000))


@pytest.mark.timeout(180)
def test_quick_routes_only_prints_the_crowd_routes_and_writes_nothing(
    stores: tuple[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "PERFORMANCE.md"
    printed = _quick_bench(stores, ["--only", "routes", "--out", str(out)], timeout=160)
    for row in ("event list ÷ /healthz", "status by jobId ÷ /healthz", "booking ÷ /healthz"):
        line = next((x for x in printed.splitlines() if x.startswith(row)), "")
        assert line and not line.rstrip().endswith("n/a"), printed
    assert "server CPU per request" in printed and "engine: Engine.book" not in printed
    assert not out.exists()
