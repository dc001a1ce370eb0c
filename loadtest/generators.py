"""The two ways the bench loads an HTTP server, behind one call: wrk when installed (cheapest
per request), else the multi-process Python client. Fixed-rate (half peak) runs use wrk with
loadtest/wrk_open.lua (requests due on schedule, latency from the due time); queue-and-poll
runs always use the Python client: wrk cannot poll."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from loadtest import wrk
from loadtest.client import Load, Outcome, percentile, run_load
from loadtest.measure import CpuMeter, Measure


class Generator:
    def __init__(self, kind: str, connections: int, processes: int) -> None:
        if kind == "auto":
            kind = "wrk" if wrk.available() else "python"
        if kind == "wrk" and not wrk.available():
            raise SystemExit("bench: --generator wrk, but wrk is not on PATH")
        self.kind = kind
        self.connections = connections
        self.processes = processes

    async def peak(
        self,
        name: str,
        targets: Sequence[tuple[str, int]],
        paths: Sequence[str],
        *,
        method: str = "GET",
        tokens: Sequence[str] = (),
        ok: frozenset[int] = frozenset({200}),
        duration: float,
        watch: dict[str, list[int]],
    ) -> Measure:
        """As fast as `connections` keep-alive connections go (closed model)."""
        if self.kind == "wrk":
            return await self._wrk(name, targets, paths, method, tokens, duration, watch)
        load = Load(
            targets=tuple(targets),
            paths=tuple(paths),
            method=method,
            tokens=tuple(tokens),
            ok=ok,
            connections=self.connections,
            processes=self.processes,
            duration=duration,
        )
        return await run_python(name, load, watch)

    async def open(self, name: str, load: Load, watch: dict[str, list[int]]) -> Measure:
        """`load` in open model (load.rate requests/s over load.targets)."""
        if self.kind != "wrk":
            return await run_python(name, load, watch)
        threads = max(2, len(load.targets))
        meter = CpuMeter(watch).start()
        result = await wrk.run_wrk_open(
            list(load.targets),
            list(load.paths),
            rate=load.rate,
            ok=min(load.ok),
            method=load.method,
            tokens=list(load.tokens),
            connections=load.connections,
            threads=threads,
            duration=load.duration,
        )
        cpu = meter.stop()
        not_ok = result.answered - result.ok
        return Measure(
            name=name,
            generator=(
                f"wrk + wrk_open.lua ({threads} threads, {load.connections} conns,"
                f" open model at {load.rate:,.0f}/s)"
            ),
            ok=result.ok,
            seconds=result.seconds,
            p50=result.p50,
            p99=result.p99,
            p999=result.p999,
            not_ok={"not ok": not_ok} if not_ok else {},
            errors=result.socket_errors,
            late=result.late,
            cpu=cpu,
            note="latency from each request's due time; up to 1 ms of it is wrk's timer tick",
        )

    async def _wrk(
        self,
        name: str,
        targets: Sequence[tuple[str, int]],
        paths: Sequence[str],
        method: str,
        tokens: Sequence[str],
        duration: float,
        watch: dict[str, list[int]],
    ) -> Measure:
        threads = max(2, len(targets))
        meter = CpuMeter(watch).start()
        result = await wrk.run_wrk(
            list(targets),
            list(paths),
            method=method,
            tokens=list(tokens),
            connections=self.connections,
            threads=threads,
            duration=duration,
        )
        return Measure(
            name=name,
            generator=f"wrk ({threads} threads, {self.connections} conns, closed model)",
            ok=result.requests - result.non2xx,
            seconds=result.seconds,
            p50=result.p50,
            p99=result.p99,
            p999=result.p999,
            not_ok={"4xx/5xx": result.non2xx} if result.non2xx else {},
            errors=result.socket_errors,
            cpu=meter.stop(),
        )


async def run_python(name: str, load: Load, watch: dict[str, list[int]]) -> Measure:
    meter = CpuMeter(watch).start()
    outcome = await asyncio.to_thread(run_load, load)
    cpu = meter.stop(wall=outcome.seconds)
    # The workers' own count: the meter's would include their start-up (imports) too.
    cpu["generator"] = round(outcome.cpu_seconds / max(outcome.seconds, 1e-9), 2)
    return measure_of(name, load, outcome, cpu)


def measure_of(name: str, load: Load, outcome: Outcome, cpu: dict[str, float]) -> Measure:
    good = {str(s) for s in load.ok} | {"completed"}
    return Measure(
        name=name,
        generator=load.describe(),
        ok=outcome.ok,
        seconds=outcome.seconds,
        p50=percentile(outcome.latencies_us, 50),
        p99=percentile(outcome.latencies_us, 99),
        p999=percentile(outcome.latencies_us, 99.9),
        not_ok={k: v for k, v in outcome.statuses.items() if k not in good},
        errors=outcome.errors,
        late=outcome.late,
        cpu=cpu,
        note=_issue_note(outcome),
    )


def _issue_note(outcome: Outcome) -> str:
    """How late the generator itself was (open model): its timer ticks every ~1 ms, so up to
    ~1 ms of every latency is its own; much more means it was starved of CPU."""
    lag = percentile(outcome.issue_lag_us, 99)
    return "" if lag is None else f"generator's own issue delay p99 {lag:.1f} ms"
