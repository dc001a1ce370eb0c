"""Flushing view counts: Redis counts each view; the persister adds the deltas to
events.impressions, exactly once per batch (the batch id is recorded in the same transaction)."""

from __future__ import annotations

from typing import Any

APPLY = """
WITH fresh AS (
    INSERT INTO impression_flushes (batch_id) VALUES ($1)
    ON CONFLICT (batch_id) DO NOTHING RETURNING batch_id
)
UPDATE events e SET impressions = e.impressions + d.delta
FROM unnest($2::bigint[], $3::bigint[]) AS d(id, delta), fresh
WHERE e.id = d.id
"""


async def apply_deltas(pool: Any, batch_id: str, deltas: dict[int, int]) -> None:
    """Add `deltas` to events.impressions unless this batch id was applied before."""
    ids = list(deltas)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(APPLY, batch_id, ids, [deltas[i] for i in ids])


def parse_reply(reply: list[bytes]) -> tuple[str, dict[int, int]] | None:
    """take_impressions.lua's reply -> (batch id, {event id: delta}), or None if nothing."""
    if len(reply) < 2:
        return None
    batch_id = reply[1].decode()
    pairs = reply[2:]
    deltas: dict[int, int] = {}
    for i in range(0, len(pairs), 2):
        key = pairs[i].decode()
        if key.isdigit():
            deltas[int(key)] = int(pairs[i + 1])
    return batch_id, deltas
