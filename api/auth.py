"""Who is calling: bearer tokens to principals, and role checks."""

from __future__ import annotations

from aiohttp import web

from api.context import services
from api.errors import ApiError
from api.tokens import InvalidToken, Principal

PRINCIPAL = web.RequestKey("principal", Principal)


def authenticate(request: web.Request) -> Principal:
    """The caller's principal, or 401 in the error shape."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        raise ApiError(401, "UNAUTHORIZED", "No token provided")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "UNAUTHORIZED", "Malformed Authorization header")
    try:
        principal = services(request).tokens.verify(token.strip())
    except InvalidToken as exc:
        raise ApiError(401, "UNAUTHORIZED", exc.reason) from None
    request[PRINCIPAL] = principal
    return principal


def require_admin(request: web.Request) -> Principal:
    principal = authenticate(request)
    if not principal.is_admin:
        raise ApiError(403, "FORBIDDEN", "Admin access required")
    return principal
