"""`/admin`: the admin console, static files shipped in this package (api/pages/console/).

The page is public; everything it shows comes from the admin API with the token the person
logs in with, so the console can do nothing the API would not let that token do."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

CONSOLE = Path(__file__).resolve().parent / "console"
PREFIX = "/admin"


async def console_page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(CONSOLE / "index.html", headers={"Cache-Control": "no-cache"})


def setup_console(app: web.Application) -> None:
    app.router.add_get(PREFIX, console_page)
    app.router.add_get(PREFIX + "/", console_page)
    app.router.add_static(PREFIX + "/static", CONSOLE)
