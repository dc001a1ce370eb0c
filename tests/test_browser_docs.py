"""The docs page and the landing page, as a person sees them in a real headless Chromium:
Swagger UI loads the spec (it once asked for /api/docs/api/openapi.json and showed "Failed to
load API definition"), lists every operation, and "Try it out" answers 200 with a bearer
token; `/` says what the server is and each of its links opens."""

from __future__ import annotations

from typing import Any

from tests.browser import chromium, new_page


def _operation_count(spec: dict[str, Any]) -> int:
    return sum(len(ops) for ops in spec["paths"].values())


async def test_docs_page_lists_every_operation_and_try_it_out_answers(client, accounts):
    user_id, token = await accounts.user()
    spec = await (await client.get("/api/openapi.json")).json()
    async with chromium() as browser:
        page = await new_page(browser)
        await page.goto(str(client.make_url("/api/docs")))
        await page.locator(".opblock").first.wait_for()
        assert await page.locator(".opblock").count() == _operation_count(spec)
        body = await page.locator("body").inner_text()
        assert "Failed to load API definition" not in body
        assert "/api/bookings/{id}/book" in body

        await page.get_by_role("button", name="Authorize").first.click()
        await page.locator(".modal-ux input").fill(token)
        await page.locator(".modal-ux button.modal-btn.authorize").click()
        await page.locator(".modal-ux button", has_text="Logout").wait_for()  # token taken
        await page.locator(".modal-ux button.btn-done").click()

        me = page.locator("#operations-auth-get_api_auth_me")
        await me.locator(".opblock-summary").click()
        await me.get_by_role("button", name="Try it out").click()
        await me.get_by_role("button", name="Execute").click()
        status = me.locator(".live-responses-table .response .response-col_status")
        await status.wait_for()
        assert (await status.inner_text()).strip() == "200"
        answer = me.locator(".live-responses-table .response-col_description pre").first
        answer_text = await answer.inner_text()
        assert f'"id": {user_id}' in answer_text
        assert page.script_errors == []


async def test_landing_page_links_all_open(client):
    base = str(client.make_url("/")).rstrip("/")
    async with chromium() as browser:
        page = await new_page(browser)
        answer = await page.goto(base + "/")
        assert answer.status == 200
        assert await page.get_by_role("heading", name="boxoffice").is_visible()
        links = page.locator("main a")
        hrefs = await links.evaluate_all("as => as.map(a => a.getAttribute('href'))")
        assert {"/api/docs", "/admin", "/healthz", "/readyz", "/readme"} <= set(hrefs)
        expect = {
            "/api/docs": (".opblock", None),
            "/admin": ("#login-form", None),
            "/healthz": ("body", '"status":"ok"'),
            "/readyz": ("body", '"ready"'),
            "/readme": ("body", "# boxoffice"),
            "/api/openapi.json": ("body", '"openapi"'),
        }
        for href in hrefs:
            await page.goto(base + "/")
            async with page.expect_navigation() as navigation:
                await page.locator(f'main a[href="{href}"]').click()
            response = await navigation.value
            assert response.status == 200, href
            selector, text = expect[href]
            await page.locator(selector).first.wait_for()
            if text is not None:
                assert text in await page.locator("body").inner_text(), href
        assert page.script_errors == []
