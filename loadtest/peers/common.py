"""What both peers share: the same bearer tokens as boxoffice (HS256, verified on every
request, as their designs do), the same event loop (uvloop), one JSON error shape."""

from __future__ import annotations

import argparse
import json
from typing import Any

import jwt
from aiohttp import web

from api.tokens import AUDIENCE, ISSUER


def user_of(request: web.Request, secret: str) -> int:
    """The caller's user id from `Authorization: Bearer <JWT>`; 401 otherwise."""
    header = request.headers.get("Authorization", "")
    try:
        claims = jwt.decode(
            header.removeprefix("Bearer "),
            secret,
            algorithms=["HS256"],
            audience=AUDIENCE,
            issuer=ISSUER,
        )
        return int(claims["id"])
    except (jwt.PyJWTError, KeyError, TypeError, ValueError):
        raise error(401, "UNAUTHORIZED") from None


_ERRORS: dict[int, type[web.HTTPException]] = {
    401: web.HTTPUnauthorized,
    404: web.HTTPNotFound,
    409: web.HTTPConflict,
}


def error(status: int, code: str) -> web.HTTPException:
    body = json.dumps({"error": code, "code": code})
    return _ERRORS[status](text=body, content_type="application/json")


def reply(body: dict[str, Any], status: int = 200) -> web.Response:
    return web.json_response(body, status=status)


def base_parser(doc: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=(doc or "").splitlines()[0])
    parser.add_argument("--dsn", required=True, help="Postgres DSN (a throwaway database)")
    parser.add_argument("--secret", default="", help="JWT secret of the tokens to accept")
    parser.add_argument("--port", type=int, default=3100)
    parser.add_argument("--events", default="1", help="event ids to create, comma-separated")
    parser.add_argument("--capacity", type=int, default=1_000_000_000)
    parser.add_argument("--max-per-user", type=int, default=1_000_000)
    return parser


def serve(app: web.Application, port: int) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)
