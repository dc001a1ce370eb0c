"""register, login, me."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from api.auth import authenticate
from api.context import services
from api.errors import ApiError, not_found
from api.http import json_response, read_body
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


def normalize_email(email: str) -> str:
    return email.strip().lower()


async def register(request: web.Request) -> web.Response:
    body = await read_body(request, RegisterRequest)
    svc = services(request)
    if body.password.lower() == body.password or not any(c.isdigit() for c in body.password):
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
    return json_response(AuthResponse(user_out(row), token))


async def login(request: web.Request) -> web.Response:
    body = await read_body(request, LoginRequest)
    svc = services(request)
    row = await queries.user_by_email(svc.pool, normalize_email(body.email))
    ok = await svc.passwords.verify(row["password_hash"] if row else None, body.password)
    if row is None or not ok:
        raise ApiError(400, "INVALID_CREDENTIALS", "Invalid credentials")
    token = svc.tokens.issue(row["id"], row["email"], row["role"])
    return json_response(AuthResponse(user_out(row), token))


async def me(request: web.Request) -> web.Response:
    principal = authenticate(request)
    row = await queries.user_by_id(services(request).pool, principal.id)
    if row is None:
        raise not_found("user")
    return json_response(user_out(row))
