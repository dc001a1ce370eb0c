"""HS256 access tokens with a small cache of verified tokens (verification costs ~20 µs)."""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import jwt

ALGORITHM = "HS256"
ISSUER = "boxoffice"
AUDIENCE = "boxoffice-api"
LEEWAY_SECONDS = 5


@dataclass(frozen=True, slots=True)
class Principal:
    id: int
    email: str
    role: str
    exp: int

    @property
    def is_admin(self) -> bool:
        return self.role == "ADMIN"


class InvalidToken(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Tokens:
    def __init__(self, secret: str, ttl_seconds: int, cache_size: int = 10_000) -> None:
        self._secret = secret
        self._ttl = ttl_seconds
        self._cache: OrderedDict[str, Principal] = OrderedDict()
        self._cache_size = cache_size

    def issue(self, user_id: int, email: str, role: str) -> str:
        now = int(time.time())
        claims = {
            "id": user_id,
            "email": email,
            "role": role,
            "iat": now,
            "exp": now + self._ttl,
            "iss": ISSUER,
            "aud": AUDIENCE,
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def verify(self, token: str) -> Principal:
        cached = self._cache.get(token)
        if cached is not None:
            if cached.exp + LEEWAY_SECONDS >= time.time():
                return cached
            del self._cache[token]
        principal = self._decode(token)
        self._cache[token] = principal
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return principal

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
        if (
            not isinstance(user_id, int)
            or isinstance(user_id, bool)
            or role
            not in {
                "USER",
                "ADMIN",
            }
        ):
            raise InvalidToken("Invalid token")
        return Principal(user_id, str(claims.get("email", "")), str(role), int(claims["exp"]))
