"""Is this token's account still what the token says? Postgres decides; this process keeps
a cache that Postgres itself invalidates.

A JWT cannot be taken back, so every authenticated request compares the token's user
version and id with the account's current state (role, token_version, revoked token ids),
the system of record's answer. Asking Postgres on every booking would cost a query per
request on the hot path, so states are cached here, and the cache is kept honest by push,
not by a short TTL: migration 0010's triggers NOTIFY `boxoffice_accounts` with the user id
on any change to a user row (role, password, token_version, deletion), however it is made
(the API, `boxoffice create-admin`, plain SQL), and on every logout; the listener evicts
that user at once. A demotion, deletion, logout or password change therefore bites within
the NOTIFY's delivery, milliseconds.

The bound when the listener is not heard: the cache is only used while the LISTEN
connection is known live. It is pinged every HEARTBEAT_SECONDS with a HEARTBEAT_SECONDS
timeout (Postgres delivers notifications in order ahead of the reply, so a ping answered
means every change committed before it has been applied); a ping that fails or times out
empties the cache and every request asks Postgres until the listener is back. Worst case,
a change bites 2 × HEARTBEAT_SECONDS = 2 s after its commit (documented limit: 5 s).
Entries also age out after `max_age` (BOXOFFICE_ACCOUNT_CACHE_SECONDS) as a backstop.
Admin requests never use the cache (`fresh=True`): admin rights are read on every call."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any, Final

import asyncpg
import structlog

from persistence import accounts as sql
from persistence.db import POSTGRES_DOWN

log = structlog.get_logger("accounts")

HEARTBEAT_SECONDS = 1.0
APPLICATION_NAME = "boxoffice-account-listener"  # so operators see it in pg_stat_activity
_RETRY_SECONDS = 1.0
OUTAGE_PAUSE_SECONDS = 1.0  # after a failed lookup, Postgres is not asked for this long
LOOKUP_TIMEOUT_SECONDS = 1.0  # a hung Postgres must not hold a booking for long
PURGE_SECONDS = 600.0  # revoked_tokens rows of expired tokens go this often (any process)


@dataclass(frozen=True, slots=True)
class AccountState:
    role: str
    token_version: int
    revoked: frozenset[str]


class Miss:
    """Not cached (or the cache cannot be trusted now): ask Postgres."""


class Unverified:
    """Postgres cannot be reached and this process has never seen the account: the token's
    own claims stand (seat routes only; admin routes answer 503 instead)."""


MISS: Final = Miss()
UNVERIFIED: Final = Unverified()
# None: the account does not exist (deleted); cached like any other state.
Cached = AccountState | None | Miss
Loaded = AccountState | None | Unverified


class AccountStates:
    def __init__(
        self, dsn: str, pool: Any, max_age_seconds: float = 60.0, size: int = 200_000
    ) -> None:
        self._dsn = dsn
        self._pool = pool
        self._max_age = max_age_seconds
        self._size = size
        self._entries: dict[int, tuple[float, AccountState | None]] = {}
        self._changes = 0  # bumped on every eviction: a load that straddles one is not kept
        self._waiting: dict[int, asyncio.Future[AccountState | None]] = {}
        self._batches: set[asyncio.Task[None]] = set()
        self.listening = False
        self._down_until = 0.0

    def cached(self, user_id: int) -> Cached:
        """The cached state, without a coroutine (the booking path calls this first)."""
        if not self.listening:
            return MISS
        entry = self._entries.get(user_id)
        if entry is None or entry[0] < time.monotonic():
            return MISS
        return entry[1]

    async def load(self, user_id: int, *, fresh: bool = False) -> Loaded:
        """Ask Postgres. Every miss of one event-loop tick shares one query (a cold cache
        under load would otherwise queue a pool connection per request).

        Postgres down (DESIGN §4: bookings go on through an outage): nothing can change an
        account while the system of record is down, so the last state this process knew
        stands, or, for an account it never saw, the token's own claims (UNVERIFIED); a
        failed lookup keeps Postgres from being asked again for OUTAGE_PAUSE_SECONDS.
        `fresh` (admin rights) never falls back: 503."""
        if time.monotonic() >= self._down_until:
            future = self._waiting.get(user_id)
            if future is None:
                future = asyncio.get_running_loop().create_future()
                self._waiting[user_id] = future
                if len(self._waiting) == 1:
                    asyncio.get_running_loop().call_soon(self._start_batch)
            try:
                return await asyncio.shield(future)
            except POSTGRES_DOWN:
                self._down_until = time.monotonic() + OUTAGE_PAUSE_SECONDS
                if fresh:
                    raise
        elif fresh:
            raise OSError("Postgres unreachable a moment ago")
        entry = self._entries.get(user_id)
        return UNVERIFIED if entry is None else entry[1]

    def _start_batch(self) -> None:
        batch, self._waiting = self._waiting, {}
        task = asyncio.ensure_future(self._load_batch(batch))
        self._batches.add(task)
        task.add_done_callback(self._batches.discard)

    async def _load_batch(self, batch: dict[int, asyncio.Future[AccountState | None]]) -> None:
        changes = self._changes
        try:
            async with asyncio.timeout(LOOKUP_TIMEOUT_SECONDS), self._pool.acquire() as conn:
                found = await sql.states(conn, list(batch))
        except Exception as exc:  # each waiter raises it (503 by the middleware)
            for future in batch.values():
                if not future.done():
                    future.set_exception(exc)
            return
        keep = changes == self._changes  # no change arrived meanwhile
        if keep and len(self._entries) + len(batch) > self._size:
            self._entries.clear()  # rare; each entry is one cheap query to get back
        expires = time.monotonic() + self._max_age
        for user_id, future in batch.items():
            state = AccountState(*found[user_id]) if user_id in found else None
            if keep:
                self._entries[user_id] = (expires, state)
            if not future.done():
                future.set_result(state)

    def forget(self, user_id: int) -> None:
        self._changes += 1
        self._entries.pop(user_id, None)

    def _forget_all(self) -> None:
        self._changes += 1
        self._entries.clear()

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            self.forget(int(payload))
        except ValueError:
            self._forget_all()

    async def run(self, stop: asyncio.Event) -> None:
        """LISTEN and ping until `stop`; reconnect after any failure, cache off meanwhile."""
        while not stop.is_set():
            conn: Any = None
            try:
                conn = await asyncpg.connect(
                    self._dsn, timeout=5, server_settings={"application_name": APPLICATION_NAME}
                )
                await conn.add_listener(sql.CHANNEL, self._on_notify)
                self._forget_all()  # whatever changed while nobody listened
                self.listening = True
                purged = 0.0
                while not stop.is_set():
                    await conn.fetchval("SELECT 1", timeout=HEARTBEAT_SECONDS)
                    if time.monotonic() - purged > PURGE_SECONDS:  # logouts past expiry
                        await sql.purge_expired(conn)
                        purged = time.monotonic()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), HEARTBEAT_SECONDS)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("account_listener_lost", error=type(exc).__name__)
            finally:
                # Not trusted without the listener (cached() misses), but kept: the last
                # known states while Postgres is down. Cleared again on reconnect.
                self.listening = False
                if conn is not None:
                    conn.terminate()  # no goodbye on a connection that may be dead
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), _RETRY_SECONDS)
