"""Writes a batch of outbox records to Postgres in one transaction: COPY into a temporary
table, then one upsert keyed by booking id and guarded by version (idempotent, order-safe)."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

import asyncpg

from engine.fence import Fence
from engine.keys import KeySpace
from engine.records import Record
from persistence.db import POSTGRES_DOWN

STAGE_TABLE = "outbox_batch"
_COLUMNS = [
    "id",
    "user_id",
    "event_id",
    "seats",
    "status",
    "version",
    "job_id",
    "confirmed_ms",
    "updated_ms",
    "expires_ms",
]

CREATE_STAGE = f"""
CREATE TEMPORARY TABLE IF NOT EXISTS {STAGE_TABLE} (
    id BIGINT, user_id BIGINT, event_id BIGINT, seats INTEGER, status TEXT, version INTEGER,
    job_id TEXT, confirmed_ms BIGINT, updated_ms BIGINT, expires_ms BIGINT
) ON COMMIT DELETE ROWS
"""

# Keyed by jobId, which names one booking and nothing else (it carries the booking id and 96
# random bits), and guarded by version: idempotent and order-safe. One booking's write can
# never land on another's row: a record whose booking id Postgres already holds under another
# jobId is an id handed out twice; its INSERT breaks the primary key, and the batch falls back
# to one record at a time, where that record alone becomes a dead letter with the reason.
UPSERT = f"""
INSERT INTO bookings (id, user_id, event_id, seats, status, version, job_id,
                      created_at, confirmed_at, updated_at, expires_at, persisted_at)
SELECT id, user_id, event_id, seats, status, version, job_id,
       to_timestamp(confirmed_ms / 1000.0), to_timestamp(confirmed_ms / 1000.0),
       to_timestamp(updated_ms / 1000.0), to_timestamp(expires_ms / 1000.0), now()
FROM {STAGE_TABLE}
ON CONFLICT (job_id) DO UPDATE
SET seats = EXCLUDED.seats, status = EXCLUDED.status, version = EXCLUDED.version,
    updated_at = EXCLUDED.updated_at, expires_at = EXCLUDED.expires_at, persisted_at = now()
WHERE bookings.version < EXCLUDED.version AND bookings.id = EXCLUDED.id
"""

# Each shard's mark: the highest booking id persisted (the API's fence floor, migration 0008).
# Sent with the upsert in one round trip (no parameters: the simple-query protocol).
MARK_SHARDS = f"""
INSERT INTO shard_marks (shard, top_id)
SELECT (id % 1024)::INTEGER, max(id) FROM {STAGE_TABLE} GROUP BY 1
ON CONFLICT (shard) DO UPDATE SET top_id = EXCLUDED.top_id
WHERE shard_marks.top_id < EXCLUDED.top_id
"""


async def persisted_ticks(pool: Any) -> dict[int, int]:
    """Each shard's mark as a booking tick: the least a Redis holding what Postgres holds
    must have (the fence floor, engine.fence)."""
    rows = await pool.fetch("SELECT shard, top_id FROM shard_marks")
    return {int(r["shard"]): KeySpace.tick_of_booking(int(r["top_id"])) for r in rows}


async def refresh_floors(pool: Any, fence: Fence) -> None:
    """Raise the fence's floors to Postgres's marks; with Postgres down they stay as last
    read (bookings go on through an outage)."""
    try:
        fence.raise_floors(await persisted_ticks(pool))
    except POSTGRES_DOWN:
        return


# Errors that say "this record can never be written", as opposed to "Postgres is unwell".
POISON_ERRORS: tuple[type[Exception], ...] = (
    asyncpg.IntegrityConstraintViolationError,
    asyncpg.DataError,
)


async def prepare_connection(conn: Any) -> None:
    """Pool `init` hook: the staging table lives as long as the connection."""
    await conn.execute(CREATE_STAGE)


def latest_versions(records: Iterable[Record]) -> list[Record]:
    """One row per booking, its highest version: an upsert may touch a row only once."""
    latest: dict[int, Record] = {}
    for record in records:
        seen = latest.get(record.id)
        if seen is None or seen.version < record.version:
            latest[record.id] = record
    return list(latest.values())


def _row(record: Record) -> tuple[Any, ...]:
    return (
        record.id,
        record.user_id,
        record.event_id,
        record.seats,
        record.status,
        record.version,
        record.job_id,
        record.confirmed_ms,
        record.updated_ms,
        record.expires_ms or None,
    )


async def write_records(conn: Any, records: Sequence[Record], clear: bool = False) -> None:
    """All or nothing, in the caller's transaction. Times travel as epoch milliseconds and
    become timestamps in SQL (cheaper than building datetimes in Python). The staging table
    empties at commit; `clear` empties it at once (several writes in one transaction)."""
    if not records:
        return
    await conn.copy_records_to_table(
        STAGE_TABLE, records=[_row(r) for r in latest_versions(records)], columns=_COLUMNS
    )
    await conn.execute(UPSERT + ";" + MARK_SHARDS)
    if clear:
        await conn.execute(f"DELETE FROM {STAGE_TABLE}")


async def flush_journal(pool: Any, journal: deque[Record]) -> tuple[int, int]:
    """Write what a process confirmed recently straight to Postgres (idempotent) and forget
    it: a Redis that lost data or went back in time may have lost these records. Returns
    (records written, of which refused as poison)."""
    records = list(journal)
    if not records:
        return 0, 0
    poison = await write_batch(pool, records)
    journal.clear()
    return len(records), len(poison)


async def write_batch(pool: Any, records: Sequence[Record]) -> list[tuple[Record, str]]:
    """Write a batch in one transaction. If a record breaks a constraint, write the rest one
    by one, each in its own savepoint, and return the poison ones with their reason."""
    async with pool.acquire() as conn:
        try:
            async with conn.transaction():
                await write_records(conn, records)
            return []
        except POISON_ERRORS:
            pass
        poison: list[tuple[Record, str]] = []
        async with conn.transaction():
            for record in latest_versions(records):
                try:
                    async with conn.transaction():
                        await write_records(conn, [record], clear=True)
                except POISON_ERRORS as exc:
                    poison.append((record, f"{type(exc).__name__}: {exc}"))
        return poison
