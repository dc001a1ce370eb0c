"""The original's client works: its Postman collection, run by newman against a real server.

Issue "The original's client works". The collection is the original project's own
(../shared/compat/aurora-atlan.postman_collection.json, beside the clone in CI; not part of
this repository, so the test skips without it). The original promotes
admin@example.com to ADMIN by hand; here `boxoffice create-admin` does it between a run of
the "Authentication" folder and the run of the whole collection.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from engine.config import Config
from tests.support import BOXOFFICE, ROOT, env_of, start_server

COLLECTION = ROOT.parent / "shared" / "compat" / "aurora-atlan.postman_collection.json"
NEWMAN = ROOT / ".tools" / "node_modules" / ".bin" / "newman"
NEWMAN_TIMEOUT = 60.0

# Requests the original answers 2xx in the full run (by collection item name).
EXPECT_2XX = [
    "Login User",
    "Login Admin",
    "View All Events (Public)",
    "Create Event (Admin)",
    "Update Event (Admin)",
    "Delete Event (Admin)",
    "View Booking History",
]
# The "Admin Features" folder (/api/admin/...): the original answers all of them 2xx.
ADMIN_ROUTES = [
    "Platform Analytics",
    "Queue Statistics",
    "Queue Details",
    "Pause Queue",
    "Resume Queue",
    "Clean Queue",
]
# In the first ("Authentication" only) run both users are new, so both registrations succeed.
EXPECT_2XX_AUTH_RUN = ["Register User", "Register Admin", "Login User", "Login Admin"]


@dataclass(frozen=True)
class Execution:
    name: str
    method: str
    url: str
    code: int
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def route_missing(self) -> bool:
        """Our app answers unknown routes 404 {"code": "ROUTE_NOT_FOUND"} and unknown methods
        405; either means the original's request has no route here."""
        if self.code == 405:
            return True
        body = self.json()
        return self.code == 404 and isinstance(body, dict) and body.get("code") == "ROUTE_NOT_FOUND"

    def row(self) -> str:
        return f"{self.code} {self.method} {self.url} ({self.name}) {self.body[:200]!r}"


def _url(url: Any) -> str:
    if isinstance(url, str):
        return url
    path = "/".join(str(p) for p in url.get("path", []))
    query = "&".join(f"{q['key']}={q.get('value', '')}" for q in url.get("query", []))
    return "/" + path + (f"?{query}" if query else "")


def _executions(report: dict[str, Any]) -> list[Execution]:
    out = []
    for execution in report["run"]["executions"]:
        response = execution.get("response")
        assert response is not None, f"no response for {execution['item']['name']}: {execution}"
        stream = response.get("stream") or {}
        out.append(
            Execution(
                name=execution["item"]["name"],
                method=execution["request"]["method"],
                url=_url(execution["request"]["url"]),
                code=int(response["code"]),
                body=bytes(stream.get("data") or []),
            )
        )
    return out


def _newman_or_skip() -> Path:
    if NEWMAN.exists():
        return NEWMAN
    reason = f"newman is not installed at {NEWMAN} (run `make {NEWMAN.relative_to(ROOT)}`)"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


async def _run(args: list[str], env: dict[str, str] | None) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), NEWMAN_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")


def _read_report(report: Path, code: int, output: str) -> dict[str, Any]:
    assert report.exists(), f"newman exited {code} without a report:\n{output}"
    data: dict[str, Any] = json.loads(report.read_text())
    return data


async def _newman(newman: Path, base: str, report: Path, folder: str | None) -> list[Execution]:
    args = [str(newman), "run", str(COLLECTION), "--env-var", f"baseUrl={base}"]
    if folder is not None:
        args += ["--folder", folder]
    args += ["--reporters", "json", "--reporter-json-export", str(report)]
    args += ["--timeout-request", "10000", "--color", "off"]
    code, output = await _run(args, None)
    data = _read_report(report, code, output)
    # The collection has no tests: a failure is a request that got no answer or a script error.
    failures = data["run"].get("failures", [])
    assert not failures, f"newman run failed:\n{json.dumps(failures, indent=1)[:4000]}"
    assert code == 0, f"newman exited {code}:\n{output}"
    return _executions(data)


def _by_name(executions: list[Execution]) -> dict[str, list[Execution]]:
    named: dict[str, list[Execution]] = {}
    for e in executions:
        named.setdefault(e.name, []).append(e)
    return named


def _check_sound(executions: list[Execution]) -> None:
    table = "\n".join(e.row() for e in executions)
    server_errors = [e.row() for e in executions if e.code >= 500]
    assert not server_errors, "5xx answers:\n" + "\n".join(server_errors) + f"\n\n{table}"
    missing = [e.row() for e in executions if e.route_missing()]
    assert not missing, "routes missing:\n" + "\n".join(missing) + f"\n\n{table}"


def _check_2xx(executions: list[Execution], names: list[str]) -> None:
    named = _by_name(executions)
    table = "\n".join(e.row() for e in executions)
    absent = [n for n in names if n not in named]
    assert not absent, f"requests not run: {absent}\n\n{table}"
    wrong = [e.row() for n in names for e in named[n] if not 200 <= e.code < 300]
    assert not wrong, "expected 2xx:\n" + "\n".join(wrong) + f"\n\n{table}"


@pytest.mark.timeout(90)
async def test_original_postman_collection_runs(config: Config, tmp: Path) -> None:
    if not COLLECTION.exists():
        pytest.skip(f"the original's Postman collection is not beside the repo ({COLLECTION})")
    newman = _newman_or_skip()
    server, base = await start_server(config, tmp)
    try:
        auth_run = await _newman(newman, base, tmp / "auth.json", "Authentication")
        _check_sound(auth_run)
        _check_2xx(auth_run, EXPECT_2XX_AUTH_RUN)

        code, output = await _run([*BOXOFFICE, "create-admin", "admin@example.com"], env_of(config))
        assert code == 0, f"create-admin exited {code}:\n{output}"

        full_run = await _newman(newman, base, tmp / "full.json", None)
        folders = {item["name"] for item in json.loads(COLLECTION.read_text())["item"]}
        assert {"Admin Features", "Load Testing"} <= folders
        _check_sound(full_run)
        _check_2xx(full_run, EXPECT_2XX)
        _check_2xx(full_run, ADMIN_ROUTES)

        (create,) = _by_name(full_run)["Create Event (Admin)"]
        created = create.json()
        assert isinstance(created, dict) and isinstance(created.get("id"), int), create.row()
        (update,) = _by_name(full_run)["Update Event (Admin)"]
        assert update.url.endswith(f"/api/events/{created['id']}/update"), update.row()
    finally:
        server.terminate()
