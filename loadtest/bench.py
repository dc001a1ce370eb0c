"""The benchmark: every figure of DESIGN §6 in one run on one machine, printed as a table and
written to docs/PERFORMANCE.md with a PNG chart beside it.

    python -m loadtest.bench                  # full run, ~3-4 minutes
    python -m loadtest.bench --quick --out /tmp/perf.md   # seconds: proves the harness works

Uses REDIS_URL / DATABASE_URL's servers (default: the local ones) through a throwaway database
and key prefix, removed afterwards. Needs redis-benchmark for the ceiling; uses wrk for peak
throughput when installed (`apt-get install -y wrk`), else the multi-process Python client
(loadtest.client), and says which measured what. Installs nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from api.tokens import Tokens
from loadtest import ceiling, report
from loadtest.client import Load, cpu_count
from loadtest.engine_rate import measure_engine, redis_cpu
from loadtest.generators import Generator, run_python
from loadtest.measure import Measure, combine
from loadtest.procs import Proc, Server, start_server
from loadtest.stage import Stage, open_stage
from loadtest.writebehind import (
    Memory,
    lag_ms,
    measure_drain,
    measure_memory,
    postgres_pids,
    redis_time_ms,
    wait_drained,
)
from persistence.persister import Persister

OK_BOOKED = frozenset({202})


@dataclass(frozen=True)
class Settings:
    duration: float = 10.0
    warmup: float = 2.0
    users: int = 5000  # under the API's 10,000-token verification cache
    events: int = 16
    connections: int = 64
    processes: int = 2  # Python client processes
    ceiling_requests: int = 200_000
    memory_bookings: int = 50_000
    poll_ms: int = 50
    rounds: int = 3  # /healthz and booking alternate, `duration` split over the rounds
    quick: bool = False


QUICK = Settings(
    duration=1.0,
    warmup=0.0,
    users=200,
    events=4,
    connections=16,
    processes=1,
    ceiling_requests=5000,
    memory_bookings=1000,
    poll_ms=20,
    rounds=1,
    quick=True,
)


@dataclass
class Results:
    settings: Settings
    generator: str
    measures: dict[str, Measure] = field(default_factory=dict)
    lag: dict[str, tuple[int, float, float, float]] = field(default_factory=dict)
    memory: Memory | None = None
    skipped: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    # The crowd's routes: per route, each round's (route req/s, /healthz req/s) on one process
    routes: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    # ... and each round's server CPU per request, µs: (route, /healthz)
    routes_cpu: dict[str, list[tuple[float, float]]] = field(default_factory=dict)

    def add(self, key: str, measure: Measure) -> Measure:
        self.measures[key] = measure
        print(report.progress_line(measure), file=sys.stderr, flush=True)
        return measure


# The host's speed swings by a third within seconds (other guests): a route and the /healthz
# it is divided by are measured in alternating slices this long, so both see the
# same host. wrk runs whole seconds.
SLICE_SECONDS = 1.0


async def paired(
    first: Callable[[float], Awaitable[Measure]],
    second: Callable[[float], Awaitable[Measure]],
    seconds: float,
) -> tuple[Measure, Measure]:
    """`first` and `second` for `seconds` each, in alternating slices in ABBA order (a steady
    drift falls on both alike), each figure the sum of its slices. Measured here: one route
    run after its /healthz, 3 s each, gave booking ÷ /healthz anywhere from 0.36 to 0.69 in
    consecutive pairs on one server."""
    a, b, how = await paired_slices(first, second, seconds)
    return combine(a, how), combine(b, how)


async def paired_slices(
    first: Callable[[float], Awaitable[Measure]],
    second: Callable[[float], Awaitable[Measure]],
    seconds: float,
) -> tuple[list[Measure], list[Measure], str]:
    """`paired`'s slices, each side's apart, and how they were taken."""
    slices = max(1, int(seconds // SLICE_SECONDS))
    a: list[Measure] = []
    b: list[Measure] = []
    for i in range(slices):
        runs = ((first, a), (second, b)) if i % 2 == 0 else ((second, b), (first, a))
        for run, into in runs:
            into.append(await run(SLICE_SECONDS))
    return a, b, f"{slices} slices of {SLICE_SECONDS:g} s, alternating"


class Bench:
    def __init__(self, settings: Settings, generator: Generator, logs: Path) -> None:
        self.s = settings
        self.gen = generator
        self.logs = logs
        self.results = Results(settings, generator.kind)

    async def run(self) -> Results:
        async with open_stage(self.s.users, self.s.events) as stage:
            self.results.env = await report.environment(stage)
            with self.steal_recorded():
                await self.ceiling(stage)
                await self.service(stage)
                await self.peers(stage)
                self.results.memory = await measure_memory(stage, self.s.memory_bookings)
        return self.results

    async def run_routes(self) -> Results:
        """`--only routes`: the crowd's routes on one `boxoffice serve`, nothing else."""
        async with open_stage(self.s.users, self.s.events) as stage:
            with self.steal_recorded():
                server = await start_server("api.cli", ["serve"], stage.env(), self.logs)
                try:
                    await self.routes(stage, server)
                finally:
                    server.proc.stop()
        return self.results

    @contextmanager
    def steal_recorded(self) -> Iterator[None]:
        """The host's CPU steal over the block, into the report's environment."""
        started = report.cpu_times()
        yield
        self.results.env[report.STEAL] = report.steal_share(started, report.cpu_times())

    async def ceiling(self, stage: Stage) -> None:
        if not ceiling.available():
            self.results.skipped["ceiling"] = "redis-benchmark is not on PATH"
            return
        for key, pipeline, requests in (
            ("ceiling", 1, self.s.ceiling_requests),
            ("ceiling_p16", 16, self.s.ceiling_requests * 2),
        ):
            measure = await ceiling.measure_ceiling(
                stage.redis, stage.redis_url, f"{stage.prefix}c", requests, pipeline
            )
            self.results.add(key, measure)

    async def service(self, stage: Stage) -> None:
        """Engine, drain (of the engine run's backlog), then HTTP on one and two `boxoffice
        serve` processes, half peak."""
        servers: list[Server] = []
        try:
            for _ in range(2):  # one after the other: the first one adopts the epoch
                servers.append(await start_server("api.cli", ["serve"], stage.env(), self.logs))
            self.results.add("engine", await measure_engine(stage, self.s.duration))
            self.results.add("drain", await measure_drain(stage))
            await self.http(stage, servers[:1])
            await self.routes(stage, servers[0])
            await self.calibration(stage)
            await self.http(stage, servers)
            await self.hot(stage, servers)
            await self.half_peak(stage, servers)
        finally:
            for server in servers:
                server.proc.stop()

    async def http(self, stage: Stage, servers: list[Server]) -> None:
        """`/healthz` and booking on the same servers, interleaved in rounds: this shared
        host's speed drifts by a third over minutes, and a ratio of two runs taken a minute
        apart would measure the drift. Each figure sums its rounds' requests and seconds."""
        n = len(servers)
        procs = f"{n} process{'es' if n > 1 else ''}"
        targets = [s.target for s in servers]
        watch = {"server": [s.proc.pid for s in servers]}
        paths = [f"/api/bookings/{e}/book" for e in stage.events]
        if self.s.warmup:
            await self.gen.peak(
                "warm-up",
                targets,
                paths,
                method="POST",
                tokens=stage.tokens,
                ok=OK_BOOKED,
                duration=self.s.warmup,
                watch=watch,
            )
        health, book = await self.alternating(
            lambda seconds: self.gen.peak(
                f"HTTP GET /healthz, {procs}", targets, ["/healthz"], duration=seconds,
                watch=watch,
            ),
            lambda seconds: self.booking(
                None, f"HTTP booking, {procs}, {len(paths)} events", stage, targets, paths,
                stage.events, watch, seconds,
            ),
        )  # fmt: skip
        self.results.add(f"healthz{n}", health)
        self.results.add(f"book{n}", book)

    async def routes(self, stage: Stage, server: Server) -> None:
        """The crowd's routes and the crowd mix (60% list, 25% event page, 10% status, 5%
        book) on one process, each against the same server's /healthz measured in slices
        paired with its own (`paired`), in every round: the report takes the median of the
        rounds' ratios."""
        health = self._route_run(stage, server, "/healthz", ["/healthz"], "GET", [])
        await Persister(stage.redis, stage.pool, stage.keys).drain_once()
        # History is read by a crowd of 1,000 who booked once each, persisted (as after a
        # sale), not by the engine run's users (dozens of bookings each, a heavier page).
        readers_ids = await stage.add_users(1000, "h")
        issuer = Tokens(stage.secret, 86400)
        readers = [issuer.issue(u, f"h{u}@bench.example", "USER") for u in readers_ids]
        for i, user in enumerate(readers_ids):
            await stage.engine.book(stage.events[i % len(stage.events)], user)
        await Persister(stage.redis, stage.pool, stage.keys).drain_once()
        pages = [f"/api/events/{e}/view" for e in stage.events]
        book = f"/api/bookings/{stage.events[0]}/book"
        # The crowd: 200 buyers rotating, who book and poll their bookings' status (as the
        # issue measured the original). Each round is a minute after the last, so 5,000
        # rotating users would find their cached account states aged out (60 s) at nearly
        # every request of a 3 s booking run: a cold cache, not a sale's steady state.
        buyers, buyer_tokens = stage.users[:200], stage.tokens[:200]
        seconds = self.s.duration / self.s.rounds
        warm: set[str] = set()
        for _ in range(self.s.rounds):
            # Status polls bookings made just before, still in Redis (as during a sale): made
            # afresh each round, since the booking route's slices drain the outbox.
            jobs = [
                (await stage.engine.book(stage.events[i % len(stage.events)], user)).record.job_id
                for i, user in enumerate(buyers)
            ]
            mix = ["GET /api/events/view"] * 12 + [f"GET {p}" for p in (pages * 5)[:5]]
            mix += [f"GET /api/bookings/status/{j}" for j in jobs[:2]] + [f"POST {book}"]
            loads: dict[str, tuple[list[str], str, list[str]]] = {
                "list": (["/api/events/view"], "GET", []),
                "page": (pages, "GET", []),
                "status": ([f"/api/bookings/status/{j}" for j in jobs], "GET", []),
                "history": (["/api/bookings/history"], "GET", readers),
                "mix": (mix, "GET", buyer_tokens),
                "book": ([book], "POST", buyer_tokens),
            }
            for name, (paths, method, with_tokens) in loads.items():
                route = self._route_run(stage, server, name, paths, method, with_tokens)
                if self.s.warmup and name not in warm:  # first sight of its tokens, once
                    await route(self.s.warmup)
                    warm.add(name)
                healthz, measure = await paired(health, route, seconds)
                print(report.progress_line(measure), file=sys.stderr, flush=True)
                self.results.routes.setdefault(name, []).append((measure.rate, healthz.rate))
                self.results.routes_cpu.setdefault(name, []).append(
                    (_server_us(measure), _server_us(healthz))
                )

    def _route_run(
        self,
        stage: Stage,
        server: Server,
        name: str,
        paths: list[str],
        method: str,
        tokens: list[str],
    ) -> Callable[[float], Awaitable[Measure]]:
        """One slice of a crowd route. Booking's start from a drained outbox, as a running
        persister keeps it (a backlog of earlier slices' bookings would slow the next ones:
        see booking()); the reads find the records they poll where they left them."""

        async def run(seconds: float) -> Measure:
            if method == "POST":
                await Persister(stage.redis, stage.pool, stage.keys).drain_once()
            return await self.gen.peak(
                f"route {name}", [server.target], paths, method=method, tokens=tokens,
                ok=frozenset({200, 202}), duration=seconds, watch={"server": [server.proc.pid]},
            )  # fmt: skip

        return run

    async def alternating(
        self,
        first: Callable[[float], Awaitable[Measure]],
        second: Callable[[float], Awaitable[Measure]],
    ) -> tuple[Measure, Measure]:
        """Two figures measured in alternating rounds (`rounds`, the duration split over
        them), each round in paired slices: host drift cannot tell them apart. Each figure
        sums all its slices."""
        seconds = self.s.duration / self.s.rounds
        a: list[Measure] = []
        b: list[Measure] = []
        how = ""
        for _ in range(self.s.rounds):
            first_slices, second_slices, how = await paired_slices(first, second, seconds)
            a += first_slices
            b += second_slices
        how = f"{self.s.rounds} rounds of {how}"
        return combine(a, how), combine(b, how)

    async def calibration(self, stage: Stage) -> None:
        """The issue's bare prototype (loadtest/peers/bare.py) on today's host, right after
        our one-process runs: its /ping and its one-EVALSHA booking alternate in rounds, as
        ours do. It says how fast this host is against the day the goals were set."""
        args = ["--redis", stage.redis_url, "--prefix", f"{stage.prefix}b"]
        args += ["--events", ",".join(str(e) for e in stage.events)]
        server = await start_server("loadtest.peers.bare", args, stage.env(), self.logs)
        try:
            watch = {"server": [server.proc.pid]}
            paths = [f"/book/{e}" for e in stage.events]
            ping, book = await self.alternating(
                lambda seconds: self.gen.peak(
                    "calibration: bare prototype GET /ping, 1 process", [server.target],
                    ["/ping"], duration=seconds, watch=watch,
                ),
                lambda seconds: self.gen.peak(
                    "calibration: bare prototype booking (one EVALSHA), 1 process",
                    [server.target], paths, method="POST", ok=OK_BOOKED, duration=seconds,
                    watch=watch,
                ),
            )  # fmt: skip
            self.results.add("bare_ping", ping)
            self.results.add("bare_book", book)
        finally:
            server.proc.stop()

    async def booking(
        self,
        key: str | None,
        name: str,
        stage: Stage,
        targets: list[tuple[str, int]],
        paths: list[str],
        events: list[int],
        watch: dict[str, list[int]],
        duration: float | None = None,
    ) -> Measure:
        """A peak booking run, checked against Redis: every 202 counted must be a seat sold.
        Recorded under `key` unless None (a round of a combined figure).

        It starts from a drained outbox, as a running persister keeps it: measured here, a
        backlog of ~30,000 records left by earlier runs cost booking 10-25% (5,625 -> 4,704
        req/s, back and forth), and the bench runs no persister during its peaks (it would
        take the cores the figure is about)."""
        await Persister(stage.redis, stage.pool, stage.keys).drain_once()
        sold_before = await stage.sold(events)
        before = await redis_cpu(stage)
        measure = await self.gen.peak(
            name,
            targets,
            paths,
            method="POST",
            tokens=stage.tokens,
            ok=OK_BOOKED,
            duration=duration or self.s.duration,
            watch=watch,
        )
        sold = await stage.sold(events) - sold_before
        if sold < measure.ok:
            measure.not_ok["202 without a seat sold"] = measure.ok - sold
        measure.note = "checked: Redis sold a seat for every 202" if sold >= measure.ok else ""
        seconds = max(measure.seconds, 1e-9)
        measure.cpu["redis"] = round((await redis_cpu(stage) - before) / seconds, 2)
        return measure if key is None else self.results.add(key, measure)

    async def hot(self, stage: Stage, servers: list[Server]) -> None:
        """Everyone books one event: the flash-sale shape the peers are compared on."""
        paths = [f"/api/bookings/{stage.hot_event}/book"]
        for n in (1, 2):
            watch = {"server": [s.proc.pid for s in servers[:n]]}
            name = f"HTTP booking, {n} process{'es' if n > 1 else ''}, one hot event"
            targets = [s.target for s in servers[:n]]
            await self.booking(f"hot{n}", name, stage, targets, paths, [stage.hot_event], watch)

    async def half_peak(self, stage: Stage, servers: list[Server]) -> None:
        """Open model at half peak, for each process count: first the API alone (as its peak
        was measured), then with a `boxoffice persist` process writing behind (booking latency
        again, and the confirm-to-Postgres lag of exactly the bookings made in that run).

        The peak is measured again just before: this machine's speed drifts by a third over
        minutes (shared host), and half of a peak taken minutes ago can be most of the
        present one."""
        for n in (1, 2):
            procs = f"{n} process{'es' if n > 1 else ''}"
            targets = [s.target for s in servers[:n]]
            paths = [f"/api/bookings/{e}/book" for e in stage.events]
            watch = {"server": [s.proc.pid for s in servers[:n]]}
            again = await self.booking(
                f"again{n}", f"HTTP booking, {procs}, peak again", stage, targets, paths,
                stage.events, watch,
            )  # fmt: skip
            load = self.booking_load(stage, targets, paths, rate=max(1.0, again.rate / 2))
            name = f"HTTP booking at half peak, {procs}"
            self.results.add(f"half{n}", await self.gen.open(name, load, watch))
            await self.with_persister(stage, n, load, watch)

    def booking_load(
        self,
        stage: Stage,
        targets: list[tuple[str, int]],
        paths: list[str],
        *,
        rate: float = 0.0,
        poll_ms: int = 0,
    ) -> Load:
        """A booking run for the Python client (or wrk_open.lua): the stage's tokens, the
        bench's connections, processes and duration; open model at `rate`, or queue-and-poll."""
        return Load(
            targets=tuple(targets),
            paths=tuple(paths),
            method="POST",
            tokens=tuple(stage.tokens),
            ok=OK_BOOKED,
            connections=self.s.connections,
            processes=self.s.processes,
            duration=self.s.duration,
            rate=rate,
            poll_ms=poll_ms,
        )

    async def with_persister(
        self, stage: Stage, n: int, load: Load, watch: dict[str, list[int]]
    ) -> None:
        persister = Proc("api.cli", ["persist"], stage.env(), self.logs / f"persist{n}.log")
        try:
            await leases_taken(stage, persister)
            await wait_drained(stage)
            since = await redis_time_ms(stage)
            name = f"HTTP booking at half peak, {n} process{'es' if n > 1 else ''}, persister on"
            measure = await self.gen.open(name, load, watch | {"persister": [persister.pid]})
            self.results.add(f"halfp{n}", measure)
            until = await redis_time_ms(stage)
            if not await wait_drained(stage):
                self.results.skipped[f"lag{n}"] = "the outbox did not drain within 120 s"
                return
            lag = await lag_ms(stage, since, until + 1)
            if lag is None:
                self.results.skipped[f"lag{n}"] = "no booking was confirmed in the run"
            else:
                self.results.lag[str(n)] = lag
        finally:
            persister.stop()

    async def peers(self, stage: Stage) -> None:
        await self.rowlock(stage)
        await self.queue_poll(stage)

    async def rowlock(self, stage: Stage) -> None:
        """One and two peer processes (the second on its own port, connections split as for
        ours): its ceiling is the hot row's lock, not its CPU, and this shows it."""
        hot = stage.hot_event
        args = ["--dsn", stage.dsn, f"--secret={stage.secret}", "--events", str(hot)]
        servers: list[Server] = []
        try:
            for n in (1, 2):
                servers.append(
                    await start_server("loadtest.peers.rowlock", args, stage.env(), self.logs)
                )
                measure = await self.gen.peak(
                    f"peer: Postgres row lock, {n} process{'es' if n > 1 else ''}, one hot event",
                    [s.target for s in servers],
                    [f"/book/{hot}"],
                    method="POST",
                    tokens=stage.tokens,
                    ok=frozenset({201}),
                    duration=self.s.duration,
                    watch={"server": [s.proc.pid for s in servers], "postgres": postgres_pids()},
                )
                self.results.add("rowlock" if n == 1 else "rowlock2", measure)
        finally:
            for server in servers:
                server.proc.stop()

    async def queue_poll(self, stage: Stage) -> None:
        hot = stage.hot_event
        module = "loadtest.peers.queue_poll"
        common = ["--dsn", stage.dsn, "--redis", stage.redis_url, "--prefix", f"{stage.prefix}q"]
        common += [f"--secret={stage.secret}", "--events", str(hot)]
        server = await start_server(module, ["serve", *common], stage.env(), self.logs)
        worker = Proc(module, ["worker", *common], stage.env(), self.logs / "qp-worker.log")
        try:
            load = self.booking_load(
                stage, [server.target], [f"/book/{hot}"], poll_ms=self.s.poll_ms
            )
            watch = {
                "server": [server.proc.pid],
                "worker": [worker.pid],
                "postgres": postgres_pids(),
            }
            name = "peer: queue-and-poll (one worker), one hot event, end to end"
            self.results.add("queue_poll", await run_python(name, load, watch))
        finally:
            worker.stop()
            server.proc.stop()


def _server_us(measure: Measure) -> float:
    """Server CPU per answered request, µs (from /proc, whatever else the host is doing)."""
    return measure.cpu.get("server", 0.0) / measure.rate * 1e6 if measure.rate else 0.0


async def leases_taken(stage: Stage, persister: Proc, within: float = 30) -> None:
    """Measure nothing before the persister is up: it holds every shard's lease then."""
    deadline = time.monotonic() + within
    leases = [shard.lease for shard in stage.keys.shards()]
    while await stage.redis.exists(*leases) < len(leases):
        if persister.popen.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the persister did not take its leases:\n{persister.output()}")
        await asyncio.sleep(0.05)


def _settings(args: argparse.Namespace) -> Settings:
    settings = QUICK if args.quick else Settings(processes=min(2, cpu_count()))
    overrides = {
        k: getattr(args, k)
        for k in ("duration", "users", "connections", "processes")
        if getattr(args, k) is not None
    }
    return replace(settings, **overrides)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny durations: a smoke run")
    parser.add_argument("--duration", type=float, help="seconds per measured run (default 10)")
    parser.add_argument("--users", type=int, help="users with pre-made tokens (default 5000)")
    parser.add_argument("--connections", type=int, help="keep-alive connections (default 64)")
    parser.add_argument("--processes", type=int, help="Python client processes (default 2)")
    parser.add_argument(
        "--generator",
        choices=["auto", "wrk", "python"],
        default="auto",
        help="peak-throughput load generator (auto: wrk if installed)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("docs/PERFORMANCE.md"),
        help="markdown report; the PNG chart goes beside it (same name, .png)",
    )
    parser.add_argument("--logs", type=Path, help="keep server logs here (default: discarded)")
    parser.add_argument(
        "--only",
        choices=["routes"],
        help="routes: only the crowd's routes against /healthz on one process (~2 minutes);"
        " printed, docs/PERFORMANCE.md is left as it is",
    )
    args = parser.parse_args(argv)
    settings = _settings(args)
    generator = Generator(args.generator, settings.connections, settings.processes)
    with tempfile.TemporaryDirectory(prefix="bench-logs-") as tmp:
        logs = args.logs or Path(tmp)
        logs.mkdir(parents=True, exist_ok=True)
        bench = Bench(settings, generator, logs)
        if args.only == "routes":
            print(report.routes_table(_run(bench.run_routes())))
            return 0
        results = _run(bench.run())
    print(report.table(results))
    chart = report.write_chart(results, args.out.with_suffix(".png"))
    report.write_markdown(results, args.out, chart)
    print(f"\nwrote {args.out}" + (f" and {chart}" if chart else " (no chart: matplotlib missing)"))
    return 0


def _run(work: Awaitable[Results]) -> Results:
    """On uvloop, like `boxoffice serve`: the in-process engine figure is measured here."""
    factory: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop
    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover
        pass
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(work)


if __name__ == "__main__":
    raise SystemExit(main())
