"""Every SQL statement the API runs, with asyncpg parameters only (never string-built SQL)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from engine.records import Record

Row = Any  # asyncpg.Record


class EmailInUse(Exception):
    """A user with this email already exists."""


# -- users -------------------------------------------------------------------------------

_USER_COLUMNS = "id, email, name, role, password_hash, token_version, created_at, updated_at"


async def create_user(pool: Any, email: str, name: str, password_hash: str, role: str) -> Row:
    try:
        return await pool.fetchrow(
            f"INSERT INTO users (email, name, password_hash, role) VALUES ($1, $2, $3, $4)"
            f" RETURNING {_USER_COLUMNS}",
            email,
            name,
            password_hash,
            role,
        )
    except asyncpg.UniqueViolationError:
        raise EmailInUse(email) from None


async def user_by_email(pool: Any, email: str) -> Row | None:
    return await pool.fetchrow(f"SELECT {_USER_COLUMNS} FROM users WHERE email = $1", email)


async def user_by_id(pool: Any, user_id: int) -> Row | None:
    return await pool.fetchrow(f"SELECT {_USER_COLUMNS} FROM users WHERE id = $1", user_id)


async def set_role(pool: Any, user_id: int, role: str, password_hash: str | None) -> Row:
    return await pool.fetchrow(
        "UPDATE users SET role = $2, password_hash = COALESCE($3, password_hash),"
        f" updated_at = now() WHERE id = $1 RETURNING {_USER_COLUMNS}",
        user_id,
        role,
        password_hash,
    )


# -- events ------------------------------------------------------------------------------

_EVENT_COLUMNS = (
    "id, name, venue, time, capacity, impressions, max_per_user, status, created_at, updated_at"
)


async def create_event(
    conn: Any, name: str, venue: str, time: datetime, capacity: int, max_per_user: int
) -> Row:
    return await conn.fetchrow(
        "INSERT INTO events (name, venue, time, capacity, max_per_user)"
        f" VALUES ($1, $2, $3, $4, $5) RETURNING {_EVENT_COLUMNS}",
        name,
        venue,
        time,
        capacity,
        max_per_user,
    )


async def update_event(
    conn: Any,
    event_id: int,
    name: str,
    venue: str,
    time: datetime,
    capacity: int,
    max_per_user: int,
) -> Row | None:
    return await conn.fetchrow(
        "UPDATE events SET name = $2, venue = $3, time = $4, capacity = $5, max_per_user = $6,"
        " updated_at = now() WHERE id = $1 AND status = 'OPEN'"
        f" RETURNING {_EVENT_COLUMNS}",
        event_id,
        name,
        venue,
        time,
        capacity,
        max_per_user,
    )


async def event_by_id(conn: Any, event_id: int, for_update: bool = False) -> Row | None:
    lock = " FOR UPDATE" if for_update else ""
    return await conn.fetchrow(
        f"SELECT {_EVENT_COLUMNS} FROM events WHERE id = $1 AND status = 'OPEN'{lock}", event_id
    )


async def any_event_by_id(conn: Any, event_id: int) -> Row | None:
    """An event whatever its status (a deleted event still names its bookings)."""
    return await conn.fetchrow(f"SELECT {_EVENT_COLUMNS} FROM events WHERE id = $1", event_id)


async def list_events(pool: Any, offset: int, limit: int) -> list[Row]:
    return list(
        await pool.fetch(
            f"SELECT {_EVENT_COLUMNS} FROM events WHERE status = 'OPEN'"
            " ORDER BY time, id OFFSET $1 LIMIT $2",
            offset,
            limit,
        )
    )


async def count_events(pool: Any) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM events WHERE status = 'OPEN'"))


async def delete_event(conn: Any, event_id: int) -> None:
    """Soft delete: bookings keep their event, history stays whole."""
    await conn.execute(
        "UPDATE events SET status = 'DELETED', updated_at = now() WHERE id = $1", event_id
    )


# -- bookings ----------------------------------------------------------------------------


_HISTORY_COLUMNS = (
    "b.id, b.user_id, b.event_id, b.seats, b.status, b.version, b.job_id,"
    " b.created_at, b.confirmed_at, b.updated_at, b.persisted_at,"
    " e.name AS event_name, e.venue AS event_venue, e.time AS event_time,"
    " e.capacity AS event_capacity"
)

# One query per history page when Redis still holds records of the user that Postgres may not
# ($2: their ids): 'row' rows are a window of Postgres's bookings wide enough for the page
# whatever those records turn out to be; 'known' rows say which of those ids Postgres has;
# 'rank' rows give, per id, how many of the user's rows in Postgres have a higher id (in the
# `version` column); 'event' rows give the display fields of their events ($5).
HISTORY = f"""
(SELECT 'row' AS kind, {_HISTORY_COLUMNS} FROM bookings b JOIN events e ON e.id = b.event_id
 WHERE b.user_id = $1 ORDER BY b.id DESC
 OFFSET GREATEST(0, $3 - cardinality($2::bigint[])) LIMIT $4 + cardinality($2::bigint[]))
UNION ALL
(SELECT 'known', {_HISTORY_COLUMNS} FROM bookings b JOIN events e ON e.id = b.event_id
 WHERE b.id = ANY($2::bigint[]))
UNION ALL
(SELECT 'rank', p.id, NULL, NULL, NULL, NULL,
        (SELECT count(*) FROM bookings b WHERE b.user_id = $1 AND b.id > p.id)::int,
        NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
 FROM unnest($2::bigint[]) AS p(id))
UNION ALL
(SELECT 'event', NULL, NULL, e.id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
        e.name, e.venue, e.time, e.capacity
 FROM events e WHERE e.id = ANY($5::bigint[]))
"""


async def history_page(
    pool: Any, user_id: int, pending: list[int], start: int, limit: int, events: list[int]
) -> list[Row]:
    """See HISTORY."""
    return list(await pool.fetch(HISTORY, user_id, pending, start, limit, events))


async def bookings_of_user(pool: Any, user_id: int, offset: int, limit: int) -> list[Row]:
    return list(
        await pool.fetch(
            f"SELECT {_HISTORY_COLUMNS}"
            " FROM bookings b JOIN events e ON e.id = b.event_id"
            " WHERE b.user_id = $1 ORDER BY b.id DESC OFFSET $2 LIMIT $3",
            user_id,
            offset,
            limit,
        )
    )


async def persisted_version(pool: Any, booking_id: int) -> int | None:
    """The version of a booking Postgres holds, or None if the write-behind has not reached it."""
    value = await pool.fetchval("SELECT version FROM bookings WHERE id = $1", booking_id)
    return None if value is None else int(value)


def record_of_row(row: Any) -> Record:
    """A bookings row as the engine's record (the version Postgres holds)."""
    return Record(
        id=row["id"],
        e=row["event_id"],
        u=row["user_id"],
        s=row["seats"],
        st=row["status"],
        v=row["version"],
        j=row["job_id"],
        t=int(row["confirmed_at"].timestamp() * 1000),
        ut=int(row["updated_at"].timestamp() * 1000),
        x=0 if row["expires_at"] is None else int(row["expires_at"].timestamp() * 1000),
    )


async def booking_with_event(pool: Any, booking_id: int) -> Row | None:
    """A booking with its event's display fields, in one query (the status of a booking
    Redis no longer holds)."""
    return await pool.fetchrow(
        "SELECT b.id, b.user_id, b.event_id, b.seats, b.status, b.version, b.job_id,"
        " b.confirmed_at, b.updated_at, b.expires_at,"
        " e.name AS event_name, e.venue AS event_venue, e.time AS event_time"
        " FROM bookings b JOIN events e ON e.id = b.event_id WHERE b.id = $1",
        booking_id,
    )


async def booking_record(pool: Any, booking_id: int) -> Record | None:
    row = await pool.fetchrow(
        "SELECT id, user_id, event_id, seats, status, version, job_id, confirmed_at,"
        " updated_at, expires_at FROM bookings WHERE id = $1",
        booking_id,
    )
    return None if row is None else record_of_row(row)


# -- analytics ---------------------------------------------------------------------------


async def popular_events(pool: Any, limit: int = 5) -> list[Row]:
    return list(
        await pool.fetch(
            "SELECT id, name, impressions FROM events WHERE status = 'OPEN'"
            " ORDER BY impressions DESC, id LIMIT $1",
            limit,
        )
    )


async def open_events(pool: Any) -> list[Row]:
    return list(
        await pool.fetch("SELECT id, name, capacity FROM events WHERE status = 'OPEN' ORDER BY id")
    )
