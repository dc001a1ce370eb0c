"""`boxoffice serve --workers N`: N API processes on one port (SO_REUSEPORT, the kernel
spreads connections). The parent only supervises: it forwards SIGTERM/SIGINT to the workers
and exits with the first failure's code."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from types import FrameType


def supervise(argv: Sequence[str], workers: int) -> int:
    """Start `workers` copies of `boxoffice serve --reuse-port ...`; wait for all of them."""
    command = [sys.executable, "-m", "api.cli", "serve", "--reuse-port", *argv]
    children: list[subprocess.Popen[bytes]] = []

    stopping: set[int] = set()

    def forward(signum: int, _frame: FrameType | None) -> None:
        stopping.add(signum)
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    children.extend(subprocess.Popen(command) for _ in range(workers))
    code = 0
    while children:
        for child in list(children):
            status = child.poll()
            if status is None:
                continue
            children.remove(child)
            if -status in stopping:
                status = 0  # stopped by the signal we passed on (e.g. still starting up)
            if status != 0 and code == 0:
                code = status
                forward(signal.SIGTERM, None)  # one died: stop the rest, do not limp on
        time.sleep(0.1)
    return code
