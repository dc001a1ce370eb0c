"""HS256 access and refresh tokens with a small cache of verified tokens (verification costs
~20 µs).

A token proves who signed in and when, not what they may still do: each carries its own
id (`jti`, so one token can be logged out) and the user's token version (`ver`, bumped by
a password or role change, logout-all, ...). api.accounts checks both against Postgres's
current state; the role claim is kept for the original's clients, never trusted for rights.
Refresh tokens (`typ: refresh`) are refused where an access token is expected, and back."""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, TypeGuard

import jwt

ALGORITHM = "HS256"
ISSUER = "boxoffice"
AUDIENCE = "boxoffice-api"
LEEWAY_SECONDS = 5
ACCESS, REFRESH = "access", "refresh"


@dataclass(frozen=True, slots=True)
class Principal:
    id: int
    email: str
    role: str
    exp: int
    version: int = 0  # tokens issued before versions existed carry none: version 0
    jti: str = ""
    kind: str = ACCESS

    @property
    def is_admin(self) -> bool:
        return self.role == "ADMIN"


class InvalidToken(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Tokens:
    def __init__(
        self,
        secret: str,
        ttl_seconds: int,
        cache_size: int = 10_000,
        refresh_ttl_seconds: int = 14 * 86400,
    ) -> None:
        self._secret = secret
        self._ttl = ttl_seconds
        self._refresh_ttl = refresh_ttl_seconds
        self._cache: OrderedDict[str, Principal] = OrderedDict()
        self._cache_size = cache_size

    def issue(
        self, user_id: int, email: str, role: str, version: int = 0, kind: str = ACCESS
    ) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "id": user_id,
            "email": email,
            "role": role,
            "ver": version,
            "jti": secrets.token_hex(12),
            "iat": now,
            "exp": now + (self._ttl if kind == ACCESS else self._refresh_ttl),
            "iss": ISSUER,
            "aud": AUDIENCE,
        }
        if kind != ACCESS:
            claims["typ"] = kind
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def verify(self, token: str, kind: str = ACCESS) -> Principal:
        cached = self._cache.get(token)
        if cached is None or cached.exp + LEEWAY_SECONDS < time.time():
            self._cache.pop(token, None)
            cached = self._decode(token)
            self._cache[token] = cached
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        if cached.kind != kind:
            raise InvalidToken("Invalid token")
        return cached

    def _decode(self, token: str) -> Principal:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                issuer=ISSUER,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iat", "id", "role"]},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("Token expired") from None
        except jwt.PyJWTError:
            raise InvalidToken("Invalid token") from None
        user_id, role = claims.get("id"), claims.get("role")
        version, jti = claims.get("ver", 0), claims.get("jti", "")
        if (
            not _is_int(user_id)
            or role not in {"USER", "ADMIN"}
            or not _is_int(version)
            or not isinstance(jti, str)
            or len(jti) > 64
        ):
            raise InvalidToken("Invalid token")
        return Principal(
            user_id,
            str(claims.get("email", "")),
            str(role),
            int(claims["exp"]),
            version,
            jti,
            REFRESH if claims.get("typ") == REFRESH else ACCESS,
        )


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)
