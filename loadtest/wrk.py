"""Load with wrk (C, event loop per thread): the cheapest load generator on a small machine.
`wrk_rotate.lua` (closed model, peaks) and `wrk_open.lua` (open model, half peak) rotate
pre-made tokens and paths and spread threads over servers (`wrk_common.lua`).
Used only when `wrk` is on PATH (Debian: `apt-get install -y wrk`); else the bench falls back
to loadtest.client."""

from __future__ import annotations

import asyncio
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).with_name("wrk_rotate.lua")
OPEN_SCRIPT = Path(__file__).with_name("wrk_open.lua")


def available() -> bool:
    return shutil.which("wrk") is not None


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    non2xx: int
    socket_errors: int
    p50: float
    p99: float
    p999: float


def _environment(
    tmp: Path, targets: list[tuple[str, int]], paths: list[str], method: str, tokens: list[str]
) -> dict[str, str]:
    """What wrk_rotate.lua reads: the paths and tokens as files, the rest as variables."""
    (tmp / "paths").write_text("\n".join(paths) + "\n")
    (tmp / "tokens").write_text("\n".join(tokens) + "\n")
    env = dict(os.environ)
    env.update(
        BENCH_METHOD=method,
        BENCH_PATHS=str(tmp / "paths"),
        BENCH_TOKENS=str(tmp / "tokens") if tokens else "",
        BENCH_ADDRS=",".join(f"{h}:{p}" for h, p in targets),
    )
    return env


async def _run_script(
    script: Path,
    targets: list[tuple[str, int]],
    paths: list[str],
    method: str,
    tokens: list[str],
    connections: int,
    threads: int,
    duration: float,
    extra_env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One wrk run of `script`; its 'BENCH_JSON {...}' line, parsed. wrk takes whole seconds,
    so `duration` is rounded up."""
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        env = _environment(Path(tmp), targets, paths, method, tokens)
        env.update(extra_env or {})
        host, port = targets[0]
        proc = await asyncio.create_subprocess_exec(
            "wrk",
            f"-t{threads}",
            f"-c{max(connections, threads)}",
            f"-d{max(1, math.ceil(duration))}s",
            "--timeout",
            "5s",
            "-s",
            str(script),
            f"http://{host}:{port}/",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await proc.communicate()
    text = out.decode(errors="replace")
    line = next((ln for ln in text.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}):\n{text}")
    data: dict[str, Any] = json.loads(line.removeprefix("BENCH_JSON "))
    return data


def _socket_errors(data: dict[str, Any]) -> int:
    return sum(int(data[k]) for k in ("connect", "read", "write", "timeout"))


async def run_wrk(
    targets: list[tuple[str, int]],
    paths: list[str],
    *,
    method: str = "GET",
    tokens: list[str] | None = None,
    connections: int = 64,
    threads: int = 2,
    duration: float = 5.0,
) -> WrkResult:
    """One closed-model run (wrk_rotate.lua)."""
    threads = max(threads, len(targets))
    data = await _run_script(
        SCRIPT, targets, paths, method, tokens or [], connections, threads, duration
    )
    return WrkResult(
        requests=int(data["requests"]),
        seconds=data["duration_us"] / 1e6,
        non2xx=int(data["non2xx"]),
        socket_errors=_socket_errors(data),
        p50=data["p50_us"] / 1000,
        p99=data["p99_us"] / 1000,
        p999=data["p999_us"] / 1000,
    )


@dataclass(frozen=True)
class WrkOpenResult:
    """An open-model run: latencies count from each request's due time."""

    sent: int
    ok: int
    answered: int
    seconds: float
    late: int  # requests due while every connection was busy (sent over 1 ms late)
    socket_errors: int
    p50: float
    p99: float
    p999: float


async def run_wrk_open(
    targets: list[tuple[str, int]],
    paths: list[str],
    *,
    rate: float,
    ok: int,
    method: str = "GET",
    tokens: list[str] | None = None,
    connections: int = 64,
    threads: int = 2,
    duration: float = 5.0,
) -> WrkOpenResult:
    """`rate` requests/s, due on schedule whatever the server does (wrk_open.lua)."""
    threads = max(threads, len(targets))
    extra = {"BENCH_RATE": str(rate), "BENCH_OK": str(ok), "BENCH_THREADS": str(threads)}
    data = await _run_script(
        OPEN_SCRIPT, targets, paths, method, tokens or [], connections, threads, duration, extra
    )
    return WrkOpenResult(
        sent=int(data["requests"]),
        ok=int(data["ok"]),
        answered=int(data["answered"]),
        seconds=data["duration_us"] / 1e6,
        late=int(data["late"]),
        socket_errors=_socket_errors(data),
        p50=data["p50_us"] / 1000,
        p99=data["p99_us"] / 1000,
        p999=data["p999_us"] / 1000,
    )
