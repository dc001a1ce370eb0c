"""The admin console in a real headless Chromium, against a real server and persister:
an admin signs in, creates an event, watches a booking burst move the counters and the
sell-through chart, pauses and resumes the queue (records wait, then flush), sees a capacity
edit below sold refused, wipes one event's inventory keys and repairs it from the page; a
USER sees "admins only" and nothing else. Screenshots at desktop and phone width go to
docs/ when BOXOFFICE_SCREENSHOTS=1 (how docs/console-*.png were made)."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from engine.config import Config
from engine.keys import KeySpace
from tests.browser import DESKTOP, PHONE, chromium, new_page
from tests.support import ROOT, Proc, env_of, start_server

ADMIN_EMAIL = "console-admin@example.com"
ADMIN_PASSWORD = "Console-pass-42"
BURST = 30


async def _register(http: aiohttp.ClientSession, base: str, n: int) -> str:
    body = {"name": f"Fan {n}", "email": f"fan{n}@example.com", "password": "Fan-pass-4242"}
    async with http.post(f"{base}/api/auth/register", json=body) as r:
        assert r.status == 200, await r.text()
        return str((await r.json())["token"])


async def _book(http: aiohttp.ClientSession, base: str, event_id: int, token: str) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with http.post(f"{base}/api/bookings/{event_id}/book", headers=headers) as r:
        assert r.status == 202, await r.text()


async def _text(page: Any, selector: str) -> str:
    return str(await page.locator(selector).inner_text()).strip()


async def _until(page: Any, selector: str, pattern: str, within: float = 15) -> str:
    """Wait until the element's text matches `pattern` (the page polls every second)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        text = await _text(page, selector)
        if re.fullmatch(pattern, text):
            return text
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{selector} shows {text!r}, expected /{pattern}/")
        await asyncio.sleep(0.2)


async def _confirm(page: Any, button: str) -> None:
    await page.get_by_role("button", name=button, exact=True).click()
    dialog = page.locator("dialog#confirm")
    assert await dialog.is_visible()
    await dialog.get_by_role("button", name="Confirm").click()


async def _sign_in(page: Any, base: str, email: str, password: str) -> None:
    await page.goto(f"{base}/admin")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(password)
    await page.keyboard.press("Enter")  # keyboard: the form submits from the field


def _shot_dir(tmp: Path) -> Path:
    return ROOT / "docs" if os.environ.get("BOXOFFICE_SCREENSHOTS") else tmp


@pytest.mark.timeout(150)
async def test_admin_console_end_to_end(config: Config, keys: KeySpace, redis: Any, tmp: Path):
    env = env_of(config, BOXOFFICE_ADMIN_PASSWORD=ADMIN_PASSWORD)
    admin = Proc(["create-admin", ADMIN_EMAIL], env, tmp / "create-admin.log")
    assert admin.wait(60) == 0, admin.output()
    server, base = await start_server(config, tmp, "console")
    persister = Proc(["persist"], env_of(config), tmp / "persist.log")
    try:
        async with chromium() as browser, aiohttp.ClientSession() as http:
            page = await new_page(browser, DESKTOP)
            await _sign_in(page, base, ADMIN_EMAIL, ADMIN_PASSWORD)
            await page.get_by_role("heading", name="Events").wait_for()
            assert await page.get_by_role("heading", name="admins only").count() == 0

            # Create an event from the form.
            await page.get_by_label("Name").fill("Console Night")
            await page.get_by_label("Venue").fill("Hall 1")
            await page.get_by_label("Starts").fill("2027-05-01T20:00")
            await page.get_by_label("Capacity").fill("100")
            await page.get_by_role("button", name="Create event").click()
            created = await _until(page, "#event-result", r'Created event \d+ "Console Night".*')
            event_id = int(re.findall(r"\d+", created)[0])
            row = f'#events-table tr[data-event="{event_id}"]'
            await _until(page, f'{row} [data-col="capacity"]', "100")
            await _until(page, f'{row} [data-col="sold"]', "0")

            # A burst of bookings moves the counters, the chart and the outbox.
            tokens = await asyncio.gather(*(_register(http, base, n) for n in range(BURST)))
            await asyncio.gather(*(_book(http, base, event_id, t) for t in tokens))
            await _until(page, f'{row} [data-col="sold"]', str(BURST))
            await _until(page, f'{row} [data-col="available"]', str(100 - BURST))
            chart = page.locator(f"{row} svg")
            assert await chart.get_attribute("data-last") == str(BURST)
            assert int(await chart.get_attribute("data-points") or 0) >= 2
            label = await chart.get_attribute("aria-label")
            assert label == f"Console Night: {BURST} of 100 sold (30%)"
            await _until(page, "#queue-completed", r"[3-9]\d|\d{3,}")  # flushed >= 30
            await _until(page, "#m-waiting", "0")

            # Pause: bookings go on, records wait; resume: they flush.
            await _confirm(page, "Pause")
            await _until(page, "#queue-result", "Queue paused.*")
            await _until(page, "#queue-health", "paused")
            more = await asyncio.gather(*(_register(http, base, BURST + n) for n in range(5)))
            await asyncio.gather(*(_book(http, base, event_id, t) for t in more))
            await _until(page, "#m-waiting", "5")
            assert await page.locator("#c-waiting").get_attribute("data-last") == "5"
            await _until(page, f'{row} [data-col="sold"]', str(BURST + 5))
            await _confirm(page, "Resume")
            await _until(page, "#queue-result", "Queue resumed")
            await _until(page, "#m-waiting", "0")
            await _until(page, "#queue-health", "healthy")

            # By keyboard: Escape cancels a confirmation; Enter confirms (focus is on Confirm).
            await page.get_by_role("button", name="Drop dead letters").focus()
            await page.keyboard.press("Enter")
            assert await page.locator("dialog#confirm").is_visible()
            await page.keyboard.press("Escape")
            await _until(page, "#queue-result", "Nothing done.")
            await page.get_by_role("button", name="Re-drive dead letters").focus()
            await page.keyboard.press("Enter")
            await page.locator("dialog#confirm").wait_for()
            await page.keyboard.press("Enter")
            await _until(page, "#queue-result", "Re-drove 0 dead letters")

            # A capacity edit below what is sold is refused, and the page says why.
            await page.get_by_role("button", name="Edit Console Night").click()
            assert await page.get_by_label("Name").input_value() == "Console Night"
            await page.get_by_label("Capacity").fill("10")
            await page.get_by_role("button", name="Save changes").click()
            await _until(page, "#event-error", r".*\(CAPACITY_BELOW_SOLD\)")
            await page.get_by_role("button", name="Cancel edit").click()

            # Wipe the event's inventory keys; the page shows it missing and repairs it.
            ek = keys.event(event_id)
            await redis.delete(ek.inventory, ek.users)
            await _until(page, f'{row} [data-col="sold"]', "not loaded")
            await page.get_by_role("button", name="Refresh report").click()
            recon = f'#reconcile-table tr[data-event="{event_id}"]'
            await _until(page, f'{recon} [data-col="loaded"]', "missing")
            await _until(page, f'{recon} [data-col="state"]', "drifted")
            await _confirm(page, "Repair Console Night")
            await _until(page, "#reconcile-result", f"Repaired 1 event: {event_id}.")
            await _until(page, f'{recon} [data-col="loaded"]', "loaded")
            await _until(page, f'{recon} [data-col="state"]', "ok")
            await _until(page, f'{row} [data-col="sold"]', str(BURST + 5))
            assert int(await redis.hget(ek.inventory, "sold")) == BURST + 5

            shots = _shot_dir(tmp)
            await page.screenshot(path=str(shots / "console-desktop.png"), full_page=True)
            phone = await new_page(browser, PHONE)
            await _sign_in(phone, base, ADMIN_EMAIL, ADMIN_PASSWORD)  # a tab signs in alone
            await _until(phone, f'{row} [data-col="sold"]', str(BURST + 5))
            width = await phone.evaluate("document.documentElement.scrollWidth")
            assert width <= PHONE["width"], f"the page is {width}px wide at phone width"
            await phone.screenshot(path=str(shots / "console-phone.png"), full_page=True)
            assert page.script_errors == [] and phone.script_errors == []
    finally:
        persister.terminate()
        server.terminate()


async def test_a_user_sees_admins_only(config: Config, tmp: Path):
    server, base = await start_server(config, tmp, "console-user")
    try:
        async with chromium() as browser, aiohttp.ClientSession() as http:
            await _register(http, base, 1)
            page = await new_page(browser, DESKTOP)
            await _sign_in(page, base, "fan1@example.com", "Fan-pass-4242")
            await page.get_by_role("heading", name="admins only").wait_for()
            assert not await page.locator("#console").is_visible()
            assert await page.get_by_role("heading", name="Events").count() == 0
            assert await page.get_by_role("button", name="Pause").count() == 0
            text = await page.locator("main").inner_text()
            assert "admins only" in text and "Capacity" not in text
            assert page.script_errors == []
    finally:
        server.terminate()
