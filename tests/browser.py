"""A real headless Chromium for the browser tests: Debian's `chromium`, driven by Playwright
with `executable_path` (no browser is ever downloaded). Without it the tests skip, except under
CI (`CI` set), where a missing browser is a failure, as a missing newman is."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


def chromium_path() -> str:
    found = os.environ.get("CHROMIUM") or shutil.which("chromium")
    if found is None:
        reason = "chromium is not installed (make test installs Debian's chromium)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return found


@asynccontextmanager
async def chromium() -> AsyncIterator[Any]:
    """A browser for one test; closed (with its driver) whatever the test does."""
    path = chromium_path()
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=path, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            yield browser
        finally:
            await browser.close()


async def new_page(browser: Any, viewport: dict[str, int] = DESKTOP) -> Any:
    """A page that records its uncaught script errors in `page.script_errors` (a 4xx the page
    asked for on purpose logs a console error too, so those are not counted)."""
    page = await browser.new_page(viewport=viewport)
    page.set_default_timeout(10_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.script_errors = errors
    return page
