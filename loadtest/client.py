"""A multi-process HTTP load generator: the fallback when wrk is absent, and the tool for what
wrk cannot do.

- closed model: N keep-alive connections, each sends its next request when the last answered
  (what wrk does);
- open model: requests are due at a fixed total rate whether or not the server keeps up, and
  latency counts from when a request was due, so a server that falls behind shows its queue
  instead of hiding it (coordinated omission);
- queue-and-poll: book, then poll the answer's `statusEndpoint` until the job is done (the
  original's client loop); latency and throughput are end to end.

It speaks raw HTTP/1.1 over asyncio protocols (uvloop when present) instead of aiohttp's
client: on a two-core machine aiohttp's client costs about as much CPU per request as the
server under test, which would make the generator the bottleneck.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import multiprocessing
import os
import time
from array import array
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

DONE_STATES = frozenset({"completed", "failed"})


@dataclass(frozen=True)
class Load:
    """One measured run. Request k goes to paths[k % len(paths)] with tokens[k % len(tokens)]."""

    targets: tuple[tuple[str, int], ...]
    paths: tuple[str, ...]
    method: str = "GET"
    tokens: tuple[str, ...] = ()
    ok: frozenset[int] = frozenset({200})
    connections: int = 64
    processes: int = 2
    duration: float = 5.0
    rate: float = 0.0  # total requests/s for the open model; 0 = closed model
    poll_ms: int = 0  # > 0: queue-and-poll, polling statusEndpoint every poll_ms

    @property
    def model(self) -> str:
        if self.poll_ms:
            return f"queue-and-poll, poll every {self.poll_ms} ms"
        return f"open model at {self.rate:,.0f}/s" if self.rate else "closed model"

    def describe(self) -> str:
        return f"python client ({self.processes} procs, {self.connections} conns, {self.model})"


@dataclass
class Outcome:
    """What the processes saw, merged. Latencies are microseconds, one per answered request."""

    seconds: float = 0.0
    cpu_seconds: float = 0.0  # the generator's own CPU during the measured window
    ok: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    errors: int = 0
    late: int = 0  # open model: requests that were due while every connection was busy
    latencies_us: array[int] = field(default_factory=lambda: array("q"))
    # open model: how late the generator itself noticed each request was due (its own
    # scheduling, not the server's fault): large values mean the generator is overloaded
    issue_lag_us: array[int] = field(default_factory=lambda: array("q"))

    def merge(self, other: Outcome) -> None:
        self.seconds = max(self.seconds, other.seconds)
        self.cpu_seconds += other.cpu_seconds
        self.ok += other.ok
        self.statuses.update(other.statuses)
        self.errors += other.errors
        self.late += other.late
        self.latencies_us.extend(other.latencies_us)
        self.issue_lag_us.extend(other.issue_lag_us)


class _Http(asyncio.Protocol):
    """One keep-alive connection, one request at a time; answers need a Content-Length."""

    def __init__(self) -> None:
        self.transport: Any = None  # uvloop's transports are not asyncio.Transport
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.waiter is None or self.waiter.done():
            return
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end]).lower()
        at = head.find(b"\r\ncontent-length:")
        if at < 0:
            self.waiter.set_exception(ConnectionError("answer without Content-Length"))
            return
        start = at + len(b"\r\ncontent-length:")
        stop = head.find(b"\r\n", start)
        length = int(head[start : stop if stop >= 0 else len(head)])
        total = end + 4 + length
        if len(self.buffer) < total:
            return
        status = int(head[9:12])
        body = bytes(self.buffer[end + 4 : total])
        del self.buffer[:total]
        self.waiter.set_result((status, body))

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection closed"))


class _Conn:
    """A connection that reconnects after an error."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.proto: _Http | None = None

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        if self.proto is None or self.proto.transport is None:
            loop = asyncio.get_running_loop()
            _, self.proto = await loop.create_connection(_Http, self.host, self.port)
        proto = self.proto
        if proto.transport is None:
            raise ConnectionError("connection closed at once")
        proto.buffer.clear()
        proto.waiter = asyncio.get_running_loop().create_future()
        proto.transport.write(raw)
        try:
            return await proto.waiter
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self.proto is not None and self.proto.transport is not None:
            self.proto.transport.close()
        self.proto = None


def _builder(load: Load, host: str) -> Callable[[int], bytes]:
    """Request k, as bytes; the header block per token is made once."""
    method = load.method.encode()
    paths = [p.encode() for p in load.paths]
    heads = [f"Host: {host}\r\nAuthorization: Bearer {t}\r\n".encode() for t in load.tokens]
    heads = heads or [f"Host: {host}\r\n".encode()]
    tail = b"Content-Length: 0\r\n\r\n" if load.method in {"POST", "PUT", "DELETE"} else b"\r\n"

    def build(k: int) -> bytes:
        path = paths[k % len(paths)]
        return method + b" " + path + b" HTTP/1.1\r\n" + heads[k % len(heads)] + tail

    return build


class _Runner:
    """The requests of one process."""

    def __init__(self, load: Load, index: int) -> None:
        self.load = load
        self.index = index
        self.outcome = Outcome()
        count = load.connections // load.processes + (index < load.connections % load.processes)
        self.conns: list[_Conn] = []
        self.hosts: list[str] = []
        self.builders: list[Callable[[int], bytes]] = []
        for c in range(max(1, count)):
            host, port = load.targets[(index + c * load.processes) % len(load.targets)]
            self.conns.append(_Conn(host, port))
            self.hosts.append(f"{host}:{port}")
            self.builders.append(_builder(load, self.hosts[-1]))
        self.deadline = 0.0

    async def one(self, c: int, k: int, due_ns: int) -> None:
        """Send request k on connection c; record its outcome if it ends before the deadline."""
        load = self.load
        try:
            status, body = await self.conns[c].request(self.builders[c](k))
            outcome = str(status)
            if load.poll_ms and status in load.ok:
                outcome = await self._poll(c, body)
        except Exception:  # any failure is the server's answer to count, not ours to die of
            if time.monotonic() < self.deadline:
                self.outcome.errors += 1
                await asyncio.sleep(0.01)
            return
        if time.monotonic() >= self.deadline:
            return
        self.outcome.statuses[outcome] += 1
        if outcome == "completed" or (not load.poll_ms and status in load.ok):
            self.outcome.ok += 1
        self.outcome.latencies_us.append((time.perf_counter_ns() - due_ns) // 1000)

    async def _poll(self, c: int, body: bytes) -> str:
        endpoint = json.loads(body)["statusEndpoint"]
        raw = f"GET {endpoint} HTTP/1.1\r\nHost: {self.hosts[c]}\r\n\r\n".encode()
        while time.monotonic() < self.deadline:
            await asyncio.sleep(self.load.poll_ms / 1000)
            status, answer = await self.conns[c].request(raw)
            if status == 200:
                state = str(json.loads(answer).get("status", ""))
                if state in DONE_STATES:
                    return state
        return "unfinished"

    async def closed(self) -> None:
        async def drive(c: int) -> None:
            k = self.index + c * self.load.processes
            step = self.load.connections
            while time.monotonic() < self.deadline:
                await self.one(c, k, time.perf_counter_ns())
                k += step

        await asyncio.gather(*(drive(c) for c in range(len(self.conns))))

    async def open(self) -> None:
        rate = self.load.rate / self.load.processes
        free = deque(range(len(self.conns)))
        backlog: deque[tuple[int, int]] = deque()
        tasks: set[asyncio.Task[None]] = set()
        start_ns = time.perf_counter_ns()
        issued = 0

        async def serve(c: int, k: int, due_ns: int) -> None:
            while True:
                await self.one(c, k, due_ns)
                if not backlog or time.monotonic() >= self.deadline:
                    free.append(c)
                    return
                k, due_ns = backlog.popleft()

        while time.monotonic() < self.deadline:
            now_ns = time.perf_counter_ns()
            due = int((now_ns - start_ns) / 1e9 * rate) + 1  # request i is due at i / rate
            while issued < due:
                k = self.index + issued * self.load.processes
                due_ns = start_ns + int(issued / rate * 1e9)
                self.outcome.issue_lag_us.append((now_ns - due_ns) // 1000)
                issued += 1
                if free:
                    task = asyncio.create_task(serve(free.popleft(), k, due_ns))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                else:
                    backlog.append((k, due_ns))
                    self.outcome.late += 1
            await asyncio.sleep(0.001)  # uvloop rounds shorter sleeps to 0: a busy loop
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def run(self, start_at: float) -> Outcome:
        await asyncio.sleep(max(0.0, start_at - time.time()))
        cpu = time.process_time()
        started = time.monotonic()
        self.deadline = started + self.load.duration
        work = self.open() if self.load.rate else self.closed()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(work, self.load.duration + 5)
        self.outcome.seconds = min(time.monotonic(), self.deadline) - started
        self.outcome.cpu_seconds = time.process_time() - cpu
        for conn in self.conns:
            conn.close()
        return self.outcome


def _worker(load: Load, index: int, results: Any, go: Any, start_at: Any) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        pass
    results.put(("ready", index))
    go.wait()
    outcome = Outcome()
    try:
        outcome = asyncio.run(_Runner(load, index).run(start_at.value))
    finally:
        results.put((index, outcome))


def run_load(load: Load) -> Outcome:
    """Run `load` in fresh processes (spawned, so none inherits an event loop), all starting
    at the same instant once every one is ready, and merge what they saw."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    go = context.Event()
    start_at = context.Value("d", 0.0)
    workers = [
        context.Process(target=_worker, args=(load, i, results, go, start_at), daemon=True)
        for i in range(load.processes)
    ]
    for worker in workers:
        worker.start()
    try:
        for _ in workers:
            results.get(timeout=60)
        start_at.value = time.time() + 0.05
        go.set()
        merged = Outcome()
        for _ in workers:
            _, outcome = results.get(timeout=load.duration + 60)
            merged.merge(outcome)
    finally:
        for worker in workers:
            worker.join(10)
            if worker.is_alive():
                worker.kill()
    return merged


def percentile(values: array[int], p: float) -> float | None:
    """The p-th percentile (nearest rank) in milliseconds, or None when nothing answered."""
    if not values:
        return None
    ordered = sorted(values)
    rank = min(len(ordered), max(1, math.ceil(p / 100 * len(ordered))))
    return ordered[rank - 1] / 1000


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
