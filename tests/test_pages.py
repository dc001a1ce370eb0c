"""What the browser pages rest on, checked in-process: `/` and `/readme` answer plain pages,
the console's files ship in the package, and `?eventId=` narrows reconciliation (report and
repair) to one event, which the console's per-event Repair button uses."""

from __future__ import annotations

import re
from typing import Any

from api.pages.console import CONSOLE
from tests.support import auth
from tests.test_api_bookings import create_event


async def test_landing_page_says_what_this_is_and_links_the_pages(client):
    page = await client.get("/")
    html = await page.text()
    assert page.status == 200 and page.content_type == "text/html"
    assert "<h1>boxoffice</h1>" in html and "://" not in html  # no external asset
    links = re.findall(r'href="([^"]+)"', html)
    for wanted in ("/api/docs", "/admin", "/healthz", "/readyz", "/readme"):
        assert wanted in links
    assert "/metrics" not in links and "BOXOFFICE_METRICS_TOKEN" in html  # not public


async def test_readme_route_serves_the_readme(client):
    page = await client.get("/readme")
    assert page.status == 200 and page.content_type == "text/plain"
    assert (await page.text()).startswith("# boxoffice")


async def test_console_files_ship_in_the_package(client):
    assert {"index.html", "console.js", "console.css"} <= {p.name for p in CONSOLE.iterdir()}
    page = await client.get("/admin")
    html = await page.text()
    assert page.status == 200 and "boxoffice console" in html and "://" not in html
    for asset in re.findall(r'(?:src|href)="(/admin/static/[^"]+)"', html):
        assert (await client.get(asset)).status == 200, asset


async def _reconcile(client: Any, admin: str, method: str, query: str) -> Any:
    return await client.request(method, f"/api/admin/reconcile{query}", headers=auth(admin))


async def test_reconcile_narrows_to_one_event_and_repairs_only_it(client, accounts, services):
    _, admin = await accounts.admin()
    first = await create_event(client, admin, capacity=5)
    second = await create_event(client, admin, capacity=5)
    for event_id in (first, second):
        ek = services.keys.event(event_id)
        await services.redis.delete(ek.inventory, ek.users)

    report = await (await _reconcile(client, admin, "GET", f"?eventId={first}")).json()
    assert [e["eventId"] for e in report["events"]] == [first]
    assert report["events"][0]["loaded"] is False and report["drifted"] == 1

    repaired = await (await _reconcile(client, admin, "POST", f"?eventId={first}")).json()
    assert repaired["repaired"] == [first]
    after = await (await _reconcile(client, admin, "GET", "")).json()
    loaded = {e["eventId"]: e["loaded"] for e in after["events"]}
    assert loaded == {first: True, second: False}


async def test_reconcile_event_filter_refuses_bad_and_unknown_ids(client, accounts):
    _, admin = await accounts.admin()
    for method in ("GET", "POST"):
        missing = await _reconcile(client, admin, method, "?eventId=999999")
        assert missing.status == 404
        assert (await missing.json())["code"] == "EVENT_NOT_FOUND"
        for bad in ("0", "abc", "-1", "1" * 12):
            answer = await _reconcile(client, admin, method, f"?eventId={bad}")
            assert answer.status == 400, bad
            assert (await answer.json())["code"] == "VALIDATION_ERROR"
