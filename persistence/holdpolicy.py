"""The SQL of per-event hold policies (migration 0011)."""

from __future__ import annotations

from typing import Any


async def max_hold_seconds(conn: Any, event_id: int) -> int | None:
    value = await conn.fetchval(
        "SELECT max_hold_seconds FROM event_hold_policies WHERE event_id = $1", event_id
    )
    return None if value is None else int(value)


async def set_max_hold_seconds(conn: Any, event_id: int, seconds: int | None) -> None:
    if seconds is None:
        await conn.execute("DELETE FROM event_hold_policies WHERE event_id = $1", event_id)
        return
    await conn.execute(
        "INSERT INTO event_hold_policies (event_id, max_hold_seconds) VALUES ($1, $2)"
        " ON CONFLICT (event_id) DO UPDATE SET max_hold_seconds = excluded.max_hold_seconds,"
        " updated_at = now()",
        event_id,
        seconds,
    )
