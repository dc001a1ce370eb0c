"""`boxoffice run` (the README's run command) with private servers under its data folder:
it seeds an admin and a demo event, sells, and keeps its data across runs."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.support import Proc, free_port, wait_http


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Not under pytest's 0700 tmp tree: as root, postgres runs as its own OS user.
    path = Path(tempfile.mkdtemp(prefix="bo-run-"))
    path.chmod(0o755)
    yield path / ".boxoffice"
    shutil.rmtree(path, ignore_errors=True)


def _env(data_dir: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "DATABASE_URL"}}
    env.update(BOXOFFICE_DATA_DIR=str(data_dir), PORT=str(port), BOXOFFICE_LOG_LEVEL="warning")
    env.pop("JWT_SECRET", None)
    return env


async def _run_once(data_dir: Path, tmp: Path, name: str) -> tuple[Proc, str]:
    port = free_port()
    proc = Proc(["run", "--embedded", "always"], _env(data_dir, port), tmp / f"{name}.log")
    base = f"http://127.0.0.1:{port}"
    await wait_http(f"{base}/healthz", proc, within=90)
    return proc, base


def _stop(proc: Proc) -> None:
    proc.popen.send_signal(signal.SIGINT)  # Ctrl-C
    assert proc.popen.wait(60) == 0, proc.output()
    proc.terminate()


async def test_run_twice_keeps_the_bookings_of_the_first_run(data_dir, tmp):
    proc, base = await _run_once(data_dir, tmp, "first")
    try:
        assert "admin@boxoffice.local" in proc.output()
        assert f"{base}/api/docs" in proc.output() and f"{base}/admin" in proc.output()
        password = (data_dir / "admin-password").read_text().strip()
        async with aiohttp.ClientSession(base) as http:
            events = await (await http.get("/api/events/view")).json()
            [demo] = events["data"]
            assert demo["name"] == "Demo Night" and demo["available"] == 100
            login = {"email": "admin@boxoffice.local", "password": password}
            assert (await http.post("/api/auth/login", json=login)).status == 200
            user = {"name": "Ann", "email": "ann@example.com", "password": "Password123!"}
            token = (await (await http.post("/api/auth/register", json=user)).json())["token"]
            booked = await http.post(
                f"/api/bookings/{demo['id']}/book",
                json={"seats": 2},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert booked.status == 202
            job = (await booked.json())["jobId"]
    finally:
        _stop(proc)
    proc, base = await _run_once(data_dir, tmp, "second")
    try:
        async with aiohttp.ClientSession(base) as http:
            status = await (await http.get(f"/api/bookings/status/{job}")).json()
            assert status["result"]["seats"] == 2
            for _ in range(100):  # the second run's persister writes what the first left
                if status["persisted"]:
                    break
                await asyncio.sleep(0.1)
                status = await (await http.get(f"/api/bookings/status/{job}")).json()
            assert status["persisted"] is True
            events = await (await http.get("/api/events/view")).json()
            assert [e["available"] for e in events["data"]] == [98]
            again = {"email": "ann@example.com", "password": "Password123!"}
            assert (await http.post("/api/auth/login", json=again)).status == 200
    finally:
        _stop(proc)
