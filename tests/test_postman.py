"""The project's own Postman collection (docs/boxoffice.postman_collection.json): generated
from the OpenAPI document, so it is stale the moment a route changes without it, and played
by newman against a real server, every request's tests (documented status, content type)
passing, every operation of the spec played at least once."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from engine.config import Config
from tests.support import ROOT, Proc, env_of, start_server
from tests.test_compat_newman import _newman_or_skip, _run

GENERATOR = ROOT / "docs" / "generate_postman.py"
COLLECTION = ROOT / "docs" / "boxoffice.postman_collection.json"
ADMIN_EMAIL = "postman-admin@example.com"
ADMIN_PASSWORD = "Postman-pass-42"
METRICS_TOKEN = "postman-metrics-token"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate_postman", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _requests(collection: dict[str, Any]) -> list[dict[str, Any]]:
    return [item for folder in collection["item"] for item in folder["item"]]


def test_collection_is_what_the_generator_writes():
    assert _generator().main(["--check"]) == 0, "run python docs/generate_postman.py"


def test_collection_plays_every_operation_of_the_spec():
    generator = _generator()
    document = generator.spec()
    operations = {(m.upper(), p) for p, ops in document["paths"].items() for m in ops}
    played = {(s.method, s.path) for s in generator.STEPS}
    assert operations <= played
    collection = json.loads(COLLECTION.read_text())
    summaries = {op["summary"] for ops in document["paths"].values() for op in ops.values()}
    described = {item["request"]["description"] for item in _requests(collection)}
    assert described == summaries


def test_a_route_without_a_step_stops_the_generator():
    generator = _generator()
    document = generator.spec()
    document["paths"]["/api/new-thing"] = {"get": {"summary": "new", "responses": {}}}
    with pytest.raises(SystemExit, match="/api/new-thing"):
        generator.build(document)


@pytest.mark.timeout(90)
async def test_newman_plays_the_collection_against_a_real_server(
    config: Config, tmp: Path, monkeypatch: pytest.MonkeyPatch
):
    newman = _newman_or_skip()
    monkeypatch.setenv("BOXOFFICE_METRICS_TOKEN", METRICS_TOKEN)  # into the server's env
    env = env_of(config, BOXOFFICE_ADMIN_PASSWORD=ADMIN_PASSWORD)
    admin = Proc(["create-admin", ADMIN_EMAIL], env, tmp / "create-admin.log")
    assert admin.wait(60) == 0, admin.output()
    server, base = await start_server(config, tmp, "postman")
    report = tmp / "report.json"
    try:
        args = [str(newman), "run", str(COLLECTION), "--reporters", "json"]
        args += ["--reporter-json-export", str(report), "--color", "off"]
        variables = {"baseUrl": base, "adminEmail": ADMIN_EMAIL, "metricsToken": METRICS_TOKEN}
        for key, value in variables.items():
            args += ["--env-var", f"{key}={value}"]
        args += ["--env-var", f"adminPassword={ADMIN_PASSWORD}", "--timeout-request", "10000"]
        code, output = await _run(args, None)
    finally:
        server.terminate()
    assert report.exists(), f"newman exited {code} without a report:\n{output}"
    run = json.loads(report.read_text())["run"]
    bodies = {
        e["item"]["name"]: bytes(e.get("response", {}).get("stream", {}).get("data", []))[:300]
        for e in run["executions"]
    }
    failures = [
        (f["source"]["name"], f["error"]["message"], bodies.get(f["source"]["name"]))
        for f in run["failures"]
    ]
    assert not failures, f"newman failures: {failures}"
    assert code == 0, output
    items = _requests(json.loads(COLLECTION.read_text()))
    assert run["stats"]["requests"]["total"] == len(items)
    assert run["stats"]["assertions"]["total"] >= 2 * len(items)
    assert run["stats"]["assertions"]["failed"] == 0
