"""Subprocesses the bench starts (API servers, persister, peers) and always ends."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

import aiohttp

from api.embedded import free_port

ROOT = Path(__file__).resolve().parent.parent


class Proc:
    """A `python -m <module> ...` child with its output in a log file."""

    def __init__(self, module: str, args: list[str], env: Mapping[str, str], log: Path) -> None:
        self.log_path = log
        self._log = log.open("wb")
        self.popen = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            env=dict(env),
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stop(self, timeout: float = 15) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        self._log.close()

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]


class Server:
    """A child that answers HTTP on 127.0.0.1:port."""

    def __init__(self, proc: Proc, port: int) -> None:
        self.proc = proc
        self.port = port

    @property
    def target(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


async def start_server(
    module: str, args: list[str], env: Mapping[str, str], logs: Path, probe: str = "/healthz"
) -> Server:
    """Start a server on a free port (`--port` is appended) and wait until `probe` answers 200."""
    port = free_port()
    name = module.rsplit(".", 1)[-1]
    proc = Proc(module, [*args, "--port", str(port)], env, logs / f"{name}-{port}.log")
    server = Server(proc, port)
    try:
        await wait_http(f"{server.base}{probe}", proc)
    except BaseException:
        proc.stop()
        raise
    return server


class Running(Protocol):
    """A child process with its output: loadtest's Proc, and the test suite's."""

    popen: subprocess.Popen[bytes]

    def output(self) -> str: ...


async def wait_http(url: str, proc: Running, within: float = 30) -> None:
    """Until `url` answers 200; fails at once if the process exits first."""
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if proc.popen.poll() is not None:
                raise RuntimeError(f"{url}: server exited early:\n{proc.output()}")
            try:
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise TimeoutError(f"{url} did not answer:\n{proc.output()}")
