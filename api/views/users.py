"""register, login, me, and the token lifecycle: refresh, logout, logout-all, password."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from api.auth import authenticate, current, verified
from api.context import Services, services
from api.emails import canonical_email, registrable_email
from api.errors import ApiError, not_found
from api.headers import NO_STORE
from api.http import json_response, read_body
from api.passwords import is_strong
from api.schemas import (
    AuthResponse,
    LoginRequest,
    LogoutRequest,
    MessageResponse,
    PasswordChangeRequest,
    RefreshRequest,
    RegisterRequest,
    UserOut,
)
from api.tokens import REFRESH, Principal
from persistence import accounts, queries

WEAK_PASSWORD = "Password needs at least 8 characters, an upper-case letter and a digit"


def user_out(row: Any) -> UserOut:
    return UserOut(
        id=row["id"],
        email=row["email"],
        name=row["name"],
        role=row["role"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def client_ip(request: web.Request) -> str:
    """The peer address (proxies are not trusted: put the limit at the proxy instead)."""
    return request.remote or "unknown"


def signed_in(svc: Services, row: Any) -> web.Response:
    """{user, token, refreshToken, expiresIn}: tokens at the account's current version,
    never stored by a cache."""
    tokens, version = svc.tokens, int(row["token_version"])
    access = tokens.issue(row["id"], row["email"], row["role"], version)
    refresh = tokens.issue(row["id"], row["email"], row["role"], version, kind=REFRESH)
    body = AuthResponse(user_out(row), access, refresh, svc.config.jwt_ttl_seconds)
    return json_response(body, headers=NO_STORE)


async def register(request: web.Request) -> web.Response:
    svc = services(request)
    await svc.limits.hit(svc.limits.register_ip, "register-ip", client_ip(request))
    body = await read_body(request, RegisterRequest)
    if not is_strong(body.password):
        raise ApiError(400, "WEAK_PASSWORD", WEAK_PASSWORD)
    email = registrable_email(body.email)  # before paying for argon2
    password_hash = await svc.passwords.hash(body.password)
    try:
        row = await queries.create_user(svc.pool, email, body.name.strip(), password_hash, "USER")
    except queries.EmailInUse:
        raise ApiError(400, "EMAIL_IN_USE", "Email already in use") from None
    return signed_in(svc, row)


async def login(request: web.Request) -> web.Response:
    svc = services(request)
    limits = svc.limits
    ip = client_ip(request)
    await limits.hit(limits.login_ip, "login-ip", ip)
    body = await read_body(request, LoginRequest)
    email = canonical_email(body.email)
    await svc.logins.check(email, ip)
    row = await queries.user_by_email(svc.pool, email)
    ok = await svc.passwords.verify(row["password_hash"] if row else None, body.password)
    if row is None or not ok:
        await svc.logins.failed(email, ip)
        raise ApiError(400, "INVALID_CREDENTIALS", "Invalid credentials")
    await svc.logins.succeeded(email, ip)
    return signed_in(svc, row)


async def me(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    row = await queries.user_by_id(services(request).pool, principal.id)
    if row is None:
        raise not_found("user")
    return json_response(user_out(row), headers=NO_STORE)


async def _revoke(svc: Services, principal: Principal) -> None:
    async with svc.pool.acquire() as conn:
        await accounts.revoke_token(conn, principal.jti, principal.id, principal.exp)
    svc.accounts.forget(principal.id)  # this process at once; the others by NOTIFY


async def refresh(request: web.Request) -> web.Response:
    """A refresh token for a new pair; the one presented is revoked (rotation), so a stolen
    refresh token works once at most, and its owner's next refresh fails loudly."""
    svc = services(request)
    body = await read_body(request, RefreshRequest)
    principal = verified(request, body.refresh_token, REFRESH)
    current(principal, await svc.accounts.load(principal.id, fresh=True))
    row = await queries.user_by_id(svc.pool, principal.id)
    if row is None:
        raise ApiError(401, "UNAUTHORIZED", "Account no longer exists")
    await _revoke(svc, principal)
    return signed_in(svc, row)


async def logout(request: web.Request) -> web.Response:
    """This access token (and the refresh token in the body, if any) stop working now."""
    svc = services(request)
    principal = await authenticate(request)
    body = await read_body(request, LogoutRequest, optional=True)
    if body.refresh_token is not None:
        paired = verified(request, body.refresh_token, REFRESH)
        if paired.id != principal.id:
            raise ApiError(403, "FORBIDDEN", "Not allowed")
        await _revoke(svc, paired)
    await _revoke(svc, principal)
    return json_response(MessageResponse("Logged out"), headers=NO_STORE)


async def logout_all(request: web.Request) -> web.Response:
    """Every token of the caller, on every device, stops working now."""
    svc = services(request)
    principal = await authenticate(request)
    async with svc.pool.acquire() as conn:
        await accounts.bump_token_version(conn, principal.id)
    svc.accounts.forget(principal.id)
    return json_response(MessageResponse("Logged out everywhere"), headers=NO_STORE)


async def change_password(request: web.Request) -> web.Response:
    """Needs the current password; every other token dies with the old one (the version
    trigger), and the answer carries a fresh pair so this client stays signed in."""
    svc = services(request)
    principal = await authenticate(request)
    body = await read_body(request, PasswordChangeRequest)
    row = await queries.user_by_id(svc.pool, principal.id)
    if row is None:
        raise ApiError(401, "UNAUTHORIZED", "Account no longer exists")
    ip = client_ip(request)
    await svc.logins.check(row["email"], ip)  # a stolen token must not brute-force it
    if not await svc.passwords.verify(row["password_hash"], body.current_password):
        await svc.logins.failed(row["email"], ip)
        raise ApiError(400, "INVALID_CREDENTIALS", "Invalid credentials")
    if not is_strong(body.new_password):
        raise ApiError(400, "WEAK_PASSWORD", WEAK_PASSWORD)
    password_hash = await svc.passwords.hash(body.new_password)
    async with svc.pool.acquire() as conn:
        updated = await accounts.set_password(conn, principal.id, password_hash)
    svc.accounts.forget(principal.id)
    if updated is None:
        raise ApiError(401, "UNAUTHORIZED", "Account no longer exists")
    return signed_in(svc, updated)
