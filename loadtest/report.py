"""Turning one run's results into the console table, docs/PERFORMANCE.md and its chart. Every
figure carries what measured it and where the CPU went, so a reader can tell a server's limit
from a load generator's."""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loadtest.client import cpu_count
from loadtest.measure import Measure, cpu_text
from loadtest.procs import ROOT

if TYPE_CHECKING:
    from loadtest.bench import Results
    from loadtest.stage import Stage

ORDER = [
    "ceiling",
    "ceiling_p16",
    "engine",
    "healthz1",
    "book1",
    "bare_ping",
    "bare_book",
    "healthz2",
    "book2",
    "hot1",
    "hot2",
    "again1",
    "half1",
    "halfp1",
    "again2",
    "half2",
    "halfp2",
    "rowlock",
    "rowlock2",
    "queue_poll",
    "drain",
]


@dataclass(frozen=True)
class Ratio:
    name: str
    value: float | None
    unit: str
    goal: str
    met: bool | None
    basis: str


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def progress_line(m: Measure) -> str:
    return f"  {m.name}: {m.rate:,.0f}/s  p99 {_fmt(m.p99)} ms  [{m.generator}]"


def _rate(results: Results, key: str) -> float | None:
    m = results.measures.get(key)
    return m.rate if m is not None and m.rate > 0 else None


def _div(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def _check(value: float | None, ok: bool) -> bool | None:
    return None if value is None else ok


def _gen(results: Results, *keys: str) -> str:
    return "; ".join(f"{k}: {results.measures[k].generator}" for k in keys if k in results.measures)


def ratios(results: Results) -> list[Ratio]:
    """The figures DESIGN §6 sets goals for, computed from this one run."""
    out: list[Ratio] = []
    for n in (1, 2):
        v = _div(_rate(results, f"book{n}"), _rate(results, f"healthz{n}"))
        name = f"authenticated booking ÷ GET /healthz, {n} process{'es' if n > 1 else ''}"
        out.append(Ratio(name, v, "", ">= 0.5", _check(v, (v or 0) >= 0.5), "req/s ÷ req/s"))
    v = _div(_rate(results, "engine"), _rate(results, "ceiling"))
    name = "engine bookings/s ÷ redis-benchmark EVALSHA (not pipelined)"
    out.append(Ratio(name, v, "", ">= 0.5", _check(v, (v or 0) >= 0.5), "one process"))
    for n, peer in ((1, "rowlock"), (2, "rowlock2")):
        v = _div(_rate(results, f"hot{n}"), _rate(results, peer))
        name = (
            f"booking ÷ Postgres row-lock peer, one hot event, {n} process{'es' if n > 1 else ''}"
        )
        basis = f"{n} process{'es' if n > 1 else ''} each"
        out.append(Ratio(name, v, "", ">= 10", _check(v, (v or 0) >= 10), basis))
    hot = _rate(results, "hot1")
    v = _div(hot, _rate(results, "queue_poll"))
    name = "booking ÷ queue-and-poll peer, end to end (no goal: the original measured instead)"
    out.append(Ratio(name, v, "", "-", None, "one hot event"))
    out.extend(route_ratios(results))
    for key, basis in (("half", "open model, API alone"), ("halfp", "open model, persister on")):
        for n in (1, 2):
            m = results.measures.get(f"{key}{n}")
            v = m.p99 if m is not None else None
            name = f"p99 booking latency at half peak, {n} process{'es' if n > 1 else ''}"
            name += ", persister on" if key == "halfp" else ""
            out.append(Ratio(name, v, "ms", "< 10 ms", _check(v, (v or 0) < 10), basis))
    runs = ("book1", "book2", "hot1", "hot2", "again1", "again2")
    peak = max((_rate(results, k) or 0 for k in runs), default=0) or None
    v = _div(_rate(results, "drain"), peak)
    name = "write-behind drain rate ÷ peak booking rate"
    out.append(Ratio(name, v, "", ">= 5", _check(v, (v or 0) >= 5), "peak = best booking run"))
    for n in (1, 2):
        lag = results.lag.get(str(n))
        v = lag[2] if lag else None
        name = f"p99 confirm-to-Postgres lag at half peak, {n} process{'es' if n > 1 else ''}"
        basis = f"{lag[0]:,} bookings" if lag else ""
        out.append(Ratio(name, v, "ms", "< 500 ms", _check(v, (v or 0) < 500), basis))
    mem = results.memory
    v = mem.persisted_bytes if mem else None
    name = "Redis memory per booking once persisted"
    basis = f"{mem.bookings:,} bookings" if mem else ""
    out.append(Ratio(name, v, "bytes", "<= 200", _check(v, (v or 0) <= 200), basis))
    return out


# The crowd's routes against the same server's /healthz (DESIGN §6), and the original's own
# figures measured on this kind of host (one process, wrk -c64), with its /healthz-equivalent
# speed: our list and status must beat them 3x, scaled by this run's /healthz.
ROUTE_GOALS = {
    "list": ("event list ÷ /healthz", 0.5),
    "page": ("event page ÷ /healthz", 0.5),
    "status": ("status by jobId ÷ /healthz", 0.6),
    "history": ("history ÷ /healthz", 0.4),
    "mix": ("crowd mix (60% list, 25% page, 10% status, 5% book) ÷ /healthz", 0.5),
    "book": ("booking ÷ /healthz (rounds)", 0.5),
}
ORIGINAL = {"list": 2954.0, "status": 3182.0}
ORIGINAL_HEALTHZ_BASIS = 5947.0


def _median(values: list[float]) -> float | None:
    ordered = sorted(values)
    return ordered[len(ordered) // 2] if ordered else None


def route_ratios(results: Results) -> list[Ratio]:
    """Each route's ratio to /healthz: the median of its rounds' ratios (1 process)."""
    out: list[Ratio] = []
    for key, (name, goal) in ROUTE_GOALS.items():
        rounds = results.routes.get(key, [])
        each = [rate / health for rate, health in rounds if health]
        v = _median(each)
        basis = f"median of {len(rounds)} rounds ({', '.join(f'{r:.2f}' for r in each)}), 1 process"
        out.append(Ratio(name, v, "", f">= {goal}", _check(v, (v or 0) >= goal), basis))
    healthz = _median([h for rounds in results.routes.values() for _, h in rounds])
    for key, figure in ORIGINAL.items():
        rounds = results.routes.get(key, [])
        rate = _median([r for r, _ in rounds])
        scaled = None if healthz is None else figure * healthz / ORIGINAL_HEALTHZ_BASIS
        v = _div(rate, scaled)
        name = f"{ROUTE_GOALS[key][0].split(' ÷')[0]} ÷ the original's, scaled by /healthz"
        basis = f"original {figure:,.0f}/s at /healthz {ORIGINAL_HEALTHZ_BASIS:,.0f}/s"
        out.append(Ratio(name, v, "", ">= 3", _check(v, (v or 0) >= 3), basis))
    return out


SUSPECT = "the load generator used as much CPU as the server: it may be the limit here"


def _verdict(met: bool | None, goal: str = "") -> str:
    if goal == "-":
        return "info"  # a figure kept for comparison, with no goal
    return {True: "met", False: "NOT MET", None: "n/a"}[met]


def _measures(results: Results) -> list[Measure]:
    return [results.measures[k] for k in ORDER if k in results.measures]


def table(results: Results) -> str:
    """The console table: figures, then ratios."""
    env = results.env
    lines = [
        f"machine: {env.get('cpu', '?')}; load average at start {env.get('load average at start')}"
        f"; peak load generator: {results.generator}",
        "",
        f"{'figure':<62} {'per s':>10} {'p50 ms':>8} {'p99 ms':>8} {'p99.9':>8}"
        f" {'not ok':>7}  cpu cores / generator",
    ]
    for m in _measures(results):
        lines.append(
            f"{m.name:<62} {m.rate:>10,.0f} {_fmt(m.p50):>8} {_fmt(m.p99):>8} {_fmt(m.p999):>8}"
            f" {m.bad:>7}  {cpu_text(m.cpu)} / {m.generator}"
        )
        for reason, count in m.not_ok.items():
            lines.append(f"{'':<4}not ok: {reason} x {count:,}")
        if m.generator_suspect:
            lines.append(f"{'':<4}warning: {SUSPECT}")
        if m.note:
            lines.append(f"{'':<4}{m.note}")
    for n, lag in sorted(results.lag.items()):
        lines.append(
            f"{'confirm-to-Postgres lag at half peak, ' + n + ' process(es)':<62}"
            f" {lag[0]:>10,} {lag[1]:>8.1f} {lag[2]:>8.1f} {'':>8} {'':>7}  bookings / ms"
        )
    if results.memory:
        mem = results.memory
        lines.append(
            f"{'Redis bytes per booking, live (outbox too) / persisted':<62}"
            f" {mem.live_bytes:>10,.0f} {mem.persisted_bytes:>8,.0f}"
            f"   (INFO used_memory: {mem.used_live:,.0f} / {mem.used_persisted:,.0f})"
        )
    for key, why in results.skipped.items():
        lines.append(f"skipped {key}: {why}")
    lines.append("")
    lines.append(f"{'ratio (DESIGN §6)':<70} {'value':>10}  {'goal':<9} verdict")
    for r in ratios(results):
        lines.append(f"{r.name:<70} {_fmt(r.value):>10}  {r.goal:<9} {_verdict(r.met, r.goal)}")
    return "\n".join(lines)


def routes_table(results: Results) -> str:
    """`--only routes`: the crowd's routes against /healthz, with each round's ratio and the
    server's CPU per request (route / /healthz, µs)."""
    lines = [f"{'ratio (DESIGN §6), crowd routes only':<70} {'value':>10}  {'goal':<9} verdict"]
    for r in route_ratios(results):
        lines.append(f"{r.name:<70} {_fmt(r.value):>10}  {r.goal:<9} {_verdict(r.met, r.goal)}")
        lines.append(f"{'':<4}{r.basis}")
    lines.append("")
    lines.append("server CPU per request, µs (route / /healthz), each round:")
    for key, rounds in results.routes_cpu.items():
        lines.append(f"{'':<4}{key:<8} " + "  ".join(f"{a:.0f} / {b:.0f}" for a, b in rounds))
    steal = results.env.get(STEAL)
    if steal:
        lines.append(f"{STEAL}: {steal}")
    return "\n".join(lines)


async def environment(stage: Stage) -> dict[str, str]:
    redis_info = await stage.redis.info("server")
    pg = await stage.pool.fetchval("SHOW server_version")
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": _git("rev-parse", "--short", "HEAD")
        + (" (dirty)" if _git("status", "--porcelain") else ""),
        "cpu": f"{cpu_count()} cores, {_cpu_model()}",
        "load average at start": load,
        "python": platform.python_version(),
        "redis": str(redis_info.get("redis_version")),
        "postgres": str(pg),
    }


# The report's environment key for `steal_share` over the run.
STEAL = "cpu steal during the run (other guests)"


def cpu_times() -> list[int]:
    """The host's CPU time counters (/proc/stat's first line), [] where there is none."""
    try:
        with open("/proc/stat") as f:
            return [int(v) for v in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return []


def steal_share(before: list[int], after: list[int]) -> str:
    """The share of CPU time the hypervisor gave to other guests between two readings: on a
    shared virtual machine every figure of the run is slower by about as much, unevenly."""
    if len(before) < 8 or len(after) < 8:
        return "unknown"
    spent = [b - a for a, b in zip(before, after, strict=True)]
    total = sum(spent)
    return f"{100 * spent[7] / total:.1f}% of CPU time" if total else "unknown"


def _git(*args: str) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=5)
    except OSError:
        return "?"
    return done.stdout.strip()


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def write_markdown(results: Results, path: Path, chart: Path | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(markdown(results, chart))


def markdown(results: Results, chart: Path | None) -> str:
    s = results.settings
    out = [
        "# Performance",
        "",
        "Written by `python -m loadtest.bench`"
        + (" --quick (a smoke run: figures mean nothing)" if s.quick else "")
        + ": one run, one machine, every figure below from the same run. Load generators run"
        " on the same machine as the servers, Redis and Postgres; the CPU column says where"
        " the cores went (cores busy during the run), so a figure limited by its generator"
        " shows it.",
        "",
        "| | |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in results.env.items()],
        f"| peak load generator | {results.generator} |",
        f"| settings | {s.duration:g} s per run, {s.users:,} users (pre-made tokens),"
        f" {s.events} events, {s.connections} connections |",
        "",
        "## Goals (DESIGN §6)",
        "",
        "| figure | value | goal | verdict | basis |",
        "|---|---:|---|---|---|",
    ]
    for r in ratios(results):
        value = _fmt(r.value) + (f" {r.unit}" if r.unit and r.value is not None else "")
        out.append(f"| {r.name} | {value} | {r.goal} | {_verdict(r.met, r.goal)} | {r.basis} |")
    out += _calibration_md(results)
    out += [
        "",
        "## Figures",
        "",
        "| figure | per second | p50 ms | p99 ms | p99.9 ms | not ok | CPU cores | measured by |",
        "|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for m in _measures(results):
        bad = ", ".join(f"{k}: {v:,}" for k, v in m.not_ok.items()) or str(m.errors or 0)
        if m.errors and m.not_ok:
            bad += f", socket errors: {m.errors:,}"
        note = f" ({m.note})" if m.note else ""
        if m.generator_suspect:
            note += f" **{SUSPECT}**"
        late = f"; {m.late:,} due while all connections were busy" if m.late else ""
        out.append(
            f"| {m.name}{note} | {m.rate:,.0f} | {_fmt(m.p50)} | {_fmt(m.p99)} | {_fmt(m.p999)}"
            f" | {bad} | {cpu_text(m.cpu)} | {m.generator}{late} |"
        )
    out += _writebehind_md(results)
    if results.skipped:
        out += ["", "## Skipped", ""] + [f"- {k}: {v}" for k, v in results.skipped.items()]
    if chart is not None:
        out += ["", f"![throughput and latency]({chart.name})"]
    out += ["", "## How each figure is measured", "", *METHOD]
    return "\n".join(out) + "\n"


# What the performance issue measured on its day, before any code existed.
ISSUE_DAY = {"bare_ping": 48_000.0, "bare_book": 11_000.0}


def _calibration_md(results: Results) -> list[str]:
    """The bare prototype on this host against the issue's day: the goals were set there."""
    ping, book = _rate(results, "bare_ping"), _rate(results, "bare_book")
    if ping is None or book is None:
        return []
    rows = [
        ("bare prototype GET /ping, 1 process (req/s)", ping, ISSUE_DAY["bare_ping"], 0),
        ("bare prototype booking, 1 process (req/s)", book, ISSUE_DAY["bare_book"], 0),
        ("bare booking ÷ bare /ping", book / ping, 0.23, 2),
    ]
    out = [
        "",
        "## Calibration: the issue's bare prototype, this run",
        "",
        "aiohttp + redis.asyncio + uvloop with nothing else (`loadtest/peers/bare.py`), one"
        " EVALSHA of `lua/book.lua` per booking, measured right after our one-process runs."
        " A host slower than the issue's day lowers every rate here; the ratios against"
        " peers whose limit is a lock or a single worker, not CPU, fall with it.",
        "",
        "| | this run | the issue's day |",
        "|---|---:|---:|",
        *[f"| {name} | {_fmt(v, d)} | ~{_fmt(day, d)} |" for name, v, day, d in rows],
        f"| this host ÷ the issue's day (bare /ping) | {_fmt(ping / ISSUE_DAY['bare_ping'])} | |",
    ]
    ours = [
        ("our GET /healthz ÷ bare /ping, 1 process", _div(_rate(results, "healthz1"), ping)),
        (
            "our authenticated booking ÷ bare booking, 1 process",
            _div(_rate(results, "book1"), book),
        ),
    ]
    out += [f"| {name} | {_fmt(v)} | |" for name, v in ours]
    return out


def _writebehind_md(results: Results) -> list[str]:
    out = ["", "## Write-behind", ""]
    if results.lag:
        out += [
            "| confirm-to-Postgres lag | bookings | p50 ms | p99 ms | max ms |",
            "|---|---:|---:|---:|---:|",
        ]
        for n, (count, p50, p99, worst) in sorted(results.lag.items()):
            out.append(
                f"| at half peak, {n} API process(es) | {count:,} | {p50:.1f} | {p99:.1f}"
                f" | {worst:.1f} |"
            )
    if results.memory:
        mem = results.memory
        out += [
            "",
            f"Redis memory per booking ({mem.bookings:,} bookings by as many users, 16 events):",
            "",
            "| | bytes per booking (our keys, MEMORY USAGE) | INFO used_memory delta |",
            "|---|---:|---:|",
            f"| confirmed, not yet persisted (the outbox holds it too) | {mem.live_bytes:,.0f}"
            f" | {mem.used_live:,.0f} |",
            f"| persisted (what stays: the live record, the per-user count) |"
            f" {mem.persisted_bytes:,.0f} | {mem.used_persisted:,.0f} |",
            f"| history's change marks (one per 64 user ids per shard, trimmed after 60 s) |"
            f" {mem.marks_bytes:,.0f} | |",
        ]
    return out


METHOD = [
    "- **the crowd's routes** (event list, event page, status by jobId, history, booking, and"
    " the crowd mix: 60% list, 25% event page, 10% status, 5% booking in one wrk run): one"
    " `boxoffice serve`, closed model; in every round each route alternates with `/healthz` in"
    " 1-second slices (ABBA order: the host's speed swings within seconds), from a drained"
    " outbox, after one unmeasured warm-up run of each route (first sight of its tokens); each"
    " ratio is the median of the rounds' route ÷ `/healthz`. 200 buyers rotating (as the"
    " original was measured) book and poll the status of bookings they made just before (in"
    " Redis, as during a sale); history is read by 1,000 users who booked once each,"
    " persisted (as after a sale). The original's"
    " figures (list 2,954/s, status 3,182/s, at a `/healthz`-class speed of 5,947/s) are scaled by"
    " this run's `/healthz`.",
    "- **ceiling**: `redis-benchmark -c 50 -r 100000000 EVALSHA <sha of lua/book.lua> 8 <keys>"
    " 1 __rand_int__ 1 ...`, one event with a huge capacity and limit, a random user id per call;"
    " checked by the seats sold equalling the requests sent (one call first through redis-py"
    " must answer ok). Pipelined run: `-P 16`.",
    "- **engine**: `Engine.book` in the bench process (uvloop), 256 concurrent callers rotating"
    " users and events; count checked against Redis's sold counters.",
    "- **HTTP**: `boxoffice serve` processes on the bench's stage (`BOXOFFICE_LOG_LEVEL=warning`,"
    " `BOXOFFICE_RATE_LIMITS=off`), tokens made with `api.tokens.Tokens.issue` for users"
    " inserted by SQL, events with a capacity of 10^9 and a per-user limit of 10^6, so every"
    " answer should be 202: anything else is counted under *not ok* and excluded from the rate."
    " Peak = closed model (wrk when installed: `loadtest/wrk_rotate.lua` rotates tokens and"
    " events, one thread per server; else `loadtest.client`). The 2-process runs split the"
    " connections over both servers. `/healthz` and booking alternate in rounds (3 by default,"
    " the duration split over them), each round in 1-second slices in ABBA order, so their"
    " ratio is not a measure of the host's drift; each figure sums its slices, and its"
    " percentiles are the median of the slices'. Every booking"
    " run starts from a drained outbox, as a running persister keeps it (a 30,000-record"
    " backlog cost booking 10-25% here; no persister runs during peaks: it would take the"
    " cores the figure is about).",
    "- **half peak**: open model (wrk with `loadtest/wrk_open.lua` when installed: each request"
    " carries its slot in `X-Request-Id`, which the server echoes; else `loadtest.client`) at"
    " half the same configuration's peak,"
    " measured again just before (*peak again*: this shared host's speed drifts by a third over"
    " minutes): requests are due at a fixed rate and latency counts from when a request was due,"
    " so queueing is not hidden. First the API alone, as at peak; then again with a"
    " `boxoffice persist` process writing behind on the same two cores (*persister on*).",
    "- **lag**: for exactly the bookings confirmed during a half-peak run, Postgres"
    " `persisted_at - confirmed_at` (Redis's clock stamps `t`; `persisted_at` is the writing"
    " transaction's `now()`, i.e. its start).",
    "- **drain**: what the engine run left in the outbox, drained by one in-process"
    " `Persister.drain_once` (COPY + version-guarded upsert); rows written are counted.",
    "- **memory**: new users each book once (the per-user entries count too); the sum of"
    " `MEMORY USAGE key SAMPLES 0` over the stage's keys before, after booking, and after the"
    " persister drained, divided by the bookings; history's change marks (one per 64"
    " consecutive user ids per shard, for records changed in the last 60 s) are measured"
    " apart and then trimmed as their keep would. `INFO used_memory` deltas are shown beside"
    " (noisy when others share the Redis).",
    "- **calibration**: `loadtest/peers/bare.py`, the issue's bare prototype (aiohttp +"
    " redis.asyncio + uvloop, no auth, validation, middleware, logging or metrics; a booking"
    " is one EVALSHA of `lua/book.lua` through redis-py's Script), one process, `/ping` and"
    " booking alternating in rounds, closed model, right after our one-process runs.",
    "- **peers** (`loadtest/peers/`, built from their designs, same tokens, same generator):"
    " *row lock*: one process, then two (own ports, connections split), per request `BEGIN;"
    " SELECT ... FOR UPDATE` the event row, count the caller's bookings, `INSERT`, `UPDATE"
    " remaining`, `COMMIT`; compared with ours on the same hot event at the same process count."
    " *queue-and-poll*: the API"
    " enqueues a job in a Redis list and answers 202 {jobId}; ONE worker process books each job"
    " in a SERIALIZABLE transaction; the client polls the status route until `completed`"
    " (throughput and latency end to end).",
]


def write_chart(results: Results, path: Path) -> Path | None:
    """Throughput (log scale) and latency percentiles; None when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    measures = _measures(results)
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 6), gridspec_kw={"width_ratios": [3, 2]})
    names = [m.name for m in measures]
    bars = left.barh(names, [max(m.rate, 1e-3) for m in measures], color="#4477aa")
    left.bar_label(bars, labels=[f"{m.rate:,.0f}" for m in measures], fontsize=7, padding=2)
    left.set_xscale("log")
    left.invert_yaxis()
    left.set_xlabel("per second (log scale)")
    left.set_title("throughput")
    left.tick_params(axis="y", labelsize=7)
    _latency_panel(right, results)
    fig.suptitle(
        f"boxoffice bench, {results.env.get('date', '')}, {results.env.get('cpu', '')}", fontsize=9
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _latency_panel(ax: Any, results: Results) -> None:
    wanted = ("book1", "book2", "hot1", "half1", "halfp1", "half2", "halfp2")
    keys = [k for k in wanted if k in results.measures]
    labels = {
        "book1": "peak 1p",
        "book2": "peak 2p",
        "hot1": "hot 1p",
        "half1": "half 1p",
        "halfp1": "half 1p\n+persister",
        "half2": "half 2p",
        "halfp2": "half 2p\n+persister",
    }
    width = 0.27
    for i, (attr, label) in enumerate((("p50", "p50"), ("p99", "p99"), ("p999", "p99.9"))):
        values = [getattr(results.measures[k], attr) or 0 for k in keys]
        ax.bar([x + (i - 1) * width for x in range(len(keys))], values, width, label=label)
    ax.set_xticks(range(len(keys)), [labels[k] for k in keys], rotation=30, fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("ms (log scale)")
    ax.set_title("booking latency")
    ax.legend()
