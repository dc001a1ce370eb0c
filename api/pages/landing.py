"""`/`: what this server is and where to go next, and `/readme`: the README as plain text.

A person who opens the server's address in a browser used to get a JSON 404. The README is
read from the installed package's metadata (pyproject's `readme`), so an installed wheel
serves it too, without the source tree."""

from __future__ import annotations

import importlib.metadata

from aiohttp import web

_LINKS = (
    ("/api/docs", "API docs", "Swagger UI: every route, with Try it out"),
    ("/admin", "Admin console", "sales, the outbox, reconciliation and queue controls"),
    ("/api/openapi.json", "OpenAPI document", "the spec the docs page reads"),
    ("/healthz", "/healthz", "liveness"),
    ("/readyz", "/readyz", "readiness: Redis, Postgres, scripts, inventory"),
    ("/readme", "README", "how to run, configure and operate it"),
)

_STYLE = (
    "body{font:16px/1.5 system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;"
    "color:#1b1f24}a{color:#0550ae}li{margin:.4rem 0}code{background:#f0f2f4;padding:0 .2rem}"
)


def render() -> str:
    items = "\n".join(
        f'<li><a href="{href}">{label}</a>: {what}</li>' for href, label, what in _LINKS
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>boxoffice</title>
<style>{_STYLE}</style>
</head>
<body>
<main>
<h1>boxoffice</h1>
<p>An event-booking API built for flash sales. Seats live in Redis and every booking is one
atomic Lua script, so nothing is ever oversold; a write-behind persister copies each confirmed
change into Postgres, the system of record. It keeps the routes and JSON of the original
Node/Express "Event Booking API".</p>
<ul>
{items}
</ul>
<p>Prometheus metrics are not public: <code>/metrics</code> asks for the bearer token set in
<code>BOXOFFICE_METRICS_TOKEN</code>, or is served on <code>BOXOFFICE_METRICS_PORT</code>.</p>
<p>Bookings need a token: <code>POST /api/auth/register</code> or
<code>/api/auth/login</code>, then <code>Authorization: Bearer &lt;token&gt;</code>.</p>
</main>
</body>
</html>
"""


_PAGE = render()


def _readme() -> str:
    try:
        text = importlib.metadata.metadata("boxoffice").get_payload()  # type: ignore[attr-defined]
    except importlib.metadata.PackageNotFoundError:
        text = None
    return str(text) if text else "boxoffice: the README is not installed with this copy.\n"


async def landing(request: web.Request) -> web.Response:
    return web.Response(text=_PAGE, content_type="text/html")


async def readme(request: web.Request) -> web.Response:
    return web.Response(text=_readme(), content_type="text/plain", charset="utf-8")
