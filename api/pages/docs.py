"""The API docs page: Swagger UI from the swagger-ui-py package's own files (no CDN).

swagger-ui-py's `api_doc(config_rel_url=...)` joins the relative URL onto its own prefix,
so `/api/openapi.json` became `/api/docs/api/openapi.json` and the page failed to load the
spec. Its template also cannot take any other spec URL (the `url` parameter is overwritten).
So the page is rendered here, pointing at the one spec the app serves, and only the
package's static files are reused."""

from __future__ import annotations

import html
import json
from pathlib import Path

import swagger_ui
from aiohttp import web

PREFIX = "/api/docs"
SPEC_URL = "/api/openapi.json"
STATIC = Path(swagger_ui.__file__).resolve().parent / "static"

# persistAuthorization keeps the bearer token across reloads, so "Try it out" stays usable.
_OPTIONS = {
    "url": SPEC_URL,
    "dom_id": "#swagger-ui",
    "deepLinking": True,
    "displayRequestDuration": True,
    "persistAuthorization": True,
}

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="stylesheet" href="{prefix}/static/swagger-ui.css">
<link rel="icon" type="image/png" href="{prefix}/static/favicon-32x32.png" sizes="32x32">
</head>
<body>
<p style="font-family:sans-serif;margin:0.5rem 1rem"><a href="/">boxoffice home</a>
&middot; <a href="/admin">admin console</a> &middot; <a href="{spec}">{spec}</a></p>
<div id="swagger-ui"></div>
<script src="{prefix}/static/swagger-ui-bundle.js" charset="utf-8"></script>
<script>
window.onload = function () {{
  var options = {options};
  options.presets = [SwaggerUIBundle.presets.apis];
  window.ui = SwaggerUIBundle(options);
}};
</script>
</body>
</html>
"""


def render(title: str = "boxoffice API") -> str:
    return _PAGE.format(
        title=html.escape(title),
        prefix=PREFIX,
        spec=SPEC_URL,
        options=json.dumps(_OPTIONS),
    )


_BODY = render()


async def docs_page(request: web.Request) -> web.Response:
    return web.Response(text=_BODY, content_type="text/html")


def setup_docs(app: web.Application) -> None:
    """The page at /api/docs (and /api/docs/), its assets under /api/docs/static."""
    app.router.add_get(PREFIX, docs_page)
    app.router.add_get(PREFIX + "/", docs_page)
    app.router.add_static(PREFIX + "/static", STATIC)
