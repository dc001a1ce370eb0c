"""One measured figure, whatever produced it, and where the CPU went while it ran: a figure
whose load generator used more CPU than the server it loaded measured the generator."""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass, field

TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Measure:
    """A throughput (`ok` per second) with its latency percentiles (ms) and its honesty data:
    answers that were not the expected success, socket errors, and CPU per party (cores)."""

    name: str
    generator: str
    ok: int
    seconds: float
    p50: float | None = None
    p99: float | None = None
    p999: float | None = None
    not_ok: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    late: int = 0
    cpu: dict[str, float] = field(default_factory=dict)
    note: str = ""

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds > 0 else 0.0

    @property
    def generator_suspect(self) -> bool:
        """The load generator burnt at least as much CPU as the server it loaded: on a small
        machine it may have been the limit, not the server."""
        server = self.cpu.get("server")
        return server is not None and self.cpu.get("generator", 0.0) >= server

    @property
    def bad(self) -> int:
        return sum(self.not_ok.values()) + self.errors


def combine(rounds: list[Measure], how: str | None = None) -> Measure:
    """One figure from rounds of the same run: requests, seconds and failures add up; CPU
    is weighted by time; each latency percentile is the median of the rounds' (wrk reports
    percentiles, not samples, so they cannot be pooled exactly)."""
    first = rounds[0]
    if len(rounds) == 1:
        return first
    seconds = sum(m.seconds for m in rounds)
    not_ok: dict[str, int] = {}
    for m in rounds:
        for k, v in m.not_ok.items():
            not_ok[k] = not_ok.get(k, 0) + v
    cpu: dict[str, float] = {}
    for m in rounds:
        for party, cores in m.cpu.items():
            cpu[party] = cpu.get(party, 0.0) + cores * m.seconds / max(seconds, 1e-9)
    notes = list(dict.fromkeys(m.note for m in rounds if m.note))  # each note once, in order
    return Measure(
        name=first.name,
        generator=f"{first.generator}, {how or f'{len(rounds)} rounds interleaved'}",
        ok=sum(m.ok for m in rounds),
        seconds=seconds,
        p50=_median([m.p50 for m in rounds]),
        p99=_median([m.p99 for m in rounds]),
        p999=_median([m.p999 for m in rounds]),
        not_ok=not_ok,
        errors=sum(m.errors for m in rounds),
        late=sum(m.late for m in rounds),
        cpu={k: round(v, 2) for k, v in cpu.items()},
        note="; ".join(notes),
    )


def _median(values: list[float | None]) -> float | None:
    known = sorted(v for v in values if v is not None)
    return known[len(known) // 2] if known else None


def proc_cpu_seconds(pid: int) -> float:
    """user + system CPU of a live process (Linux /proc)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def children_cpu_seconds() -> float:
    """CPU of this process's finished (waited-for) children: wrk, client processes."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def self_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class CpuMeter:
    """CPU used, in cores, by named parties between start() and stop()."""

    def __init__(self, pids: dict[str, list[int]], redis_cpu: float | None = None) -> None:
        self.pids = pids
        self.redis_before = redis_cpu
        self.before: dict[str, float] = {}
        self.started = 0.0

    def _sample(self) -> dict[str, float]:
        sample = {name: sum(proc_cpu_seconds(p) for p in pids) for name, pids in self.pids.items()}
        sample["generator"] = children_cpu_seconds()
        sample["bench"] = self_cpu_seconds()
        return sample

    def start(self) -> CpuMeter:
        self.before = self._sample()
        self.started = time.monotonic()
        return self

    def stop(self, redis_cpu: float | None = None, wall: float | None = None) -> dict[str, float]:
        """Cores per party; `wall` (seconds) when the measured window was shorter than the
        time since start(), e.g. after spawning client processes (the parties idled then)."""
        wall = max(1e-9, wall or time.monotonic() - self.started)
        after = self._sample()
        cores = {k: (after[k] - self.before[k]) / wall for k in after}
        if redis_cpu is not None and self.redis_before is not None:
            cores["redis"] = (redis_cpu - self.redis_before) / wall
        return {k: round(v, 2) for k, v in cores.items() if v > 0.005}


def cpu_text(cpu: dict[str, float]) -> str:
    return " ".join(f"{k} {v:.2f}" for k, v in cpu.items())
