"""Headers every answer carries, and the ones answers with secrets carry.

aiohttp names itself and Python's version in a `Server` header on every answer (its
`_prepare_headers` sets it after every hook an app can register, so an app cannot delete
it); we replace the module constant it reads once at start-up: the header then says
`boxoffice` and no version a scanner could match against advisories."""

from __future__ import annotations

from aiohttp import web_response

SERVER_NAME = "boxoffice"

# On every answer: browsers must not sniff a JSON error into HTML or script.
ALWAYS = {"X-Content-Type-Options": "nosniff"}
# On answers that carry a token or a user: no shared or browser cache may keep them.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def hide_server_version() -> None:
    web_response.SERVER_SOFTWARE = SERVER_NAME  # type: ignore[attr-defined]
