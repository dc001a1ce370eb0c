"""The SQL behind token revocation: an account's current state, logout, logout-all,
password change (migration 0010 adds the columns, the triggers and the NOTIFY channel)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

CHANNEL = "boxoffice_accounts"  # the migration's triggers NOTIFY here, payload: the user id


async def states(conn: Any, user_ids: list[int]) -> dict[int, tuple[str, int, frozenset[str]]]:
    """user id -> (role, token_version, ids of tokens revoked and not yet expired), for the
    ids that exist (a deleted user is simply absent). One statement for a batch of users."""
    rows = await conn.fetch(
        "SELECT u.id, u.role, u.token_version,"
        " COALESCE(array_agg(r.jti) FILTER (WHERE r.jti IS NOT NULL), '{}') AS revoked"
        " FROM users u LEFT JOIN revoked_tokens r"
        " ON r.user_id = u.id AND r.expires_at > now()"
        " WHERE u.id = ANY($1::bigint[]) GROUP BY u.id",
        user_ids,
    )
    return {
        int(r["id"]): (r["role"], int(r["token_version"]), frozenset(r["revoked"])) for r in rows
    }


async def revoke_token(conn: Any, jti: str, user_id: int, exp: int) -> None:
    """Refuse the token with this id until it expires (a second logout changes nothing)."""
    await conn.execute(
        "INSERT INTO revoked_tokens (jti, user_id, expires_at) VALUES ($1, $2, $3)"
        " ON CONFLICT (jti) DO NOTHING",
        jti,
        user_id,
        datetime.fromtimestamp(exp, tz=UTC),
    )


async def bump_token_version(conn: Any, user_id: int) -> None:
    """Every token the user holds stops working (logout-all)."""
    await conn.execute(
        "UPDATE users SET token_version = token_version + 1, updated_at = now() WHERE id = $1",
        user_id,
    )


async def set_password(conn: Any, user_id: int, password_hash: str) -> Any:
    """The new hash; the migration's trigger bumps token_version with it. Returns the row."""
    return await conn.fetchrow(
        "UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1"
        " RETURNING id, email, name, role, token_version, created_at, updated_at",
        user_id,
        password_hash,
    )


async def purge_expired(conn: Any) -> int:
    """Forget revocations of tokens that have expired anyway."""
    status: str = await conn.execute("DELETE FROM revoked_tokens WHERE expires_at <= now()")
    return int(status.split()[-1])
