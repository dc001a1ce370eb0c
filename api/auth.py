"""Who is calling: bearer tokens to principals, checked against the account's current
state (api.accounts), and role checks."""

from __future__ import annotations

import dataclasses

from aiohttp import web

from api.accounts import MISS, Loaded, Miss, Unverified
from api.context import services
from api.errors import ApiError
from api.tokens import ACCESS, InvalidToken, Principal

PRINCIPAL = web.RequestKey("principal", Principal)


def bearer(request: web.Request, kind: str = ACCESS) -> Principal:
    """The token's claims, verified (signature, expiry, kind), or 401 in the error shape.
    Says nothing about whether the account still exists or the token was revoked."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        raise ApiError(401, "UNAUTHORIZED", "No token provided")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "UNAUTHORIZED", "Malformed Authorization header")
    return verified(request, token.strip(), kind)


def verified(request: web.Request, token: str, kind: str = ACCESS) -> Principal:
    try:
        return services(request).tokens.verify(token, kind)
    except InvalidToken as exc:
        raise ApiError(401, "UNAUTHORIZED", exc.reason) from None


def current(principal: Principal, state: Loaded) -> Principal:
    """The principal with the account's live role, or 401 if the token no longer counts.
    UNVERIFIED (Postgres down, account never seen here): the token's claims stand."""
    if isinstance(state, Unverified):
        return principal
    if state is None:
        raise ApiError(401, "UNAUTHORIZED", "Account no longer exists")
    if principal.version != state.token_version or principal.jti in state.revoked:
        raise ApiError(401, "TOKEN_REVOKED", "Token has been revoked, sign in again")
    if principal.role != state.role:
        return dataclasses.replace(principal, role=state.role)
    return principal


async def authenticate(request: web.Request, *, fresh: bool = False) -> Principal:
    """The caller's principal, judged by Postgres's current state of the account (cached,
    invalidated by push; `fresh` skips the cache). 401 in the error shape otherwise."""
    principal = bearer(request)
    accounts = services(request).accounts
    cached = MISS if fresh else accounts.cached(principal.id)
    state = await accounts.load(principal.id, fresh=fresh) if isinstance(cached, Miss) else cached
    principal = current(principal, state)
    request[PRINCIPAL] = principal
    return principal


async def require_admin(request: web.Request) -> Principal:
    """Admin rights are read from Postgres on every admin request, never from the token."""
    principal = await authenticate(request, fresh=True)
    if not principal.is_admin:
        raise ApiError(403, "FORBIDDEN", "Admin access required")
    return principal
