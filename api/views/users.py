"""register, login, me."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from api.auth import authenticate
from api.context import services
from api.errors import ApiError, not_found
from api.headers import NO_STORE
from api.http import json_response, read_body
from api.passwords import is_strong
from api.schemas import AuthResponse, LoginRequest, RegisterRequest, UserOut
from persistence import queries


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


def normalize_email(email: str) -> str:
    return email.strip().lower()


async def register(request: web.Request) -> web.Response:
    svc = services(request)
    await svc.limits.hit(svc.limits.register_ip, "register-ip", client_ip(request))
    body = await read_body(request, RegisterRequest)
    if not is_strong(body.password):
        raise ApiError(
            400,
            "WEAK_PASSWORD",
            "Password needs at least 8 characters, an upper-case letter and a digit",
        )
    password_hash = await svc.passwords.hash(body.password)
    try:
        row = await queries.create_user(
            svc.pool, normalize_email(body.email), body.name.strip(), password_hash, "USER"
        )
    except queries.EmailInUse:
        raise ApiError(400, "EMAIL_IN_USE", "Email already in use") from None
    token = svc.tokens.issue(row["id"], row["email"], row["role"])
    return json_response(AuthResponse(user_out(row), token), headers=NO_STORE)


async def login(request: web.Request) -> web.Response:
    svc = services(request)
    limits = svc.limits
    await limits.hit(limits.login_ip, "login-ip", client_ip(request))
    body = await read_body(request, LoginRequest)
    email = normalize_email(body.email)
    await limits.blocked(limits.login_email, "login-email", email)
    row = await queries.user_by_email(svc.pool, email)
    ok = await svc.passwords.verify(row["password_hash"] if row else None, body.password)
    if row is None or not ok:
        await limits.hit(limits.login_email, "login-email", email)
        raise ApiError(400, "INVALID_CREDENTIALS", "Invalid credentials")
    token = svc.tokens.issue(row["id"], row["email"], row["role"])
    return json_response(AuthResponse(user_out(row), token), headers=NO_STORE)


async def me(request: web.Request) -> web.Response:
    principal = authenticate(request)
    row = await queries.user_by_id(services(request).pool, principal.id)
    if row is None:
        raise not_found("user")
    return json_response(user_out(row), headers=NO_STORE)
