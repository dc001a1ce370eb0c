"""The OpenAPI document describes every route, and the live app keeps to it under fuzzing."""

from __future__ import annotations

import asyncio
import re

from api.openapi import OPERATIONS, build_spec, route_key
from tests.support import ROOT, env_of, start_server


async def test_every_route_is_in_the_spec_and_every_description_is_a_route(client):
    served = {k for r in client.app.router.routes() if (k := route_key(r)) is not None}
    assert served == set(OPERATIONS)
    spec = await (await client.get("/api/openapi.json")).json()
    assert spec["openapi"] == "3.1.0"
    documented = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    assert documented == served
    book = spec["paths"]["/api/bookings/{id}/book"]["post"]
    assert set(book["responses"]) >= {"202", "400", "401", "404", "409", "503"}
    assert book["responses"]["409"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorResponse"
    }
    assert spec == build_spec(client.app)


async def test_docs_page_works_offline(client):
    page = await client.get("/api/docs")
    html = await page.text()
    assert page.status == 200 and "swagger" in html.lower()
    # The spec URL the page asks for is the one the app serves (it once asked for
    # /api/docs/api/openapi.json, a 404); the browser test shows the page loading it.
    (spec_url,) = re.findall(r'"url": "([^"]+)"', html)
    assert spec_url == "/api/openapi.json"
    assert (await client.get(spec_url)).status == 200
    assert "://" not in html  # nothing from another origin (no CDN)
    assets = re.findall(r'<(?:script|link)[^>]*(?:src|href)="([^"]+)"', html)
    assert assets and all(a.startswith("/api/docs") for a in assets), assets
    for asset in assets:
        assert (await client.get(asset)).status == 200, asset


async def test_schemathesis_finds_no_server_error_and_no_schema_violation(config, accounts, tmp):
    _, admin = await accounts.admin()
    proc, base = await start_server(config, tmp, "fuzz")
    try:
        run = await asyncio.create_subprocess_exec(
            str(ROOT / ".venv" / "bin" / "schemathesis"),
            "run",
            f"{base}/api/openapi.json",
            "--checks",
            "not_a_server_error,response_schema_conformance",
            "--max-examples",
            "25",
            "--seed",
            "20261124",
            "-H",
            f"Authorization: Bearer {admin}",
            env=env_of(config, NO_COLOR="1"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output = (await asyncio.wait_for(run.communicate(), 300))[0].decode()
    finally:
        proc.terminate()
    assert run.returncode == 0, output[-4000:]
    summary = re.search(r"(\d+) generated, (\d+) passed", output)
    assert summary is not None, output[-2000:]
    generated, passed = map(int, summary.groups())
    print(f"schemathesis: {generated} cases generated, {passed} passed")
    assert generated == passed and generated > 500
    assert "server error" not in output.lower()
