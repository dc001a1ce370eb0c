"""The per-user booking limit (BOXOFFICE_RATE_BOOK_USER) on one Redis server: counted inside
the booking's own script (no round trip of its own), over every API process, and still
answered before the body once a process knows the user is over it (issue 16)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from api.app import init_app
from api.context import SERVICES
from engine.config import Config
from tests.support import auth
from tests.test_api_bookings import available, create_event
from tests.test_deadlines import send_head, status_of


@contextlib.asynccontextmanager
async def limited_apps(
    config: Config, accounts: Any, rate: str, count: int = 2, **settings: Any
) -> AsyncIterator[tuple[list[TestClient[Any, Any]], str, str]]:
    """`count` API processes (apps) with the booking limit `rate`, an admin's token and a
    user's."""
    config = dataclasses.replace(config, rate_limits="on", rate_book_user=rate, **settings)
    async with contextlib.AsyncExitStack() as stack:
        apps = [
            await stack.enter_async_context(TestClient(TestServer(init_app(config))))
            for _ in range(count)
        ]
        svc = apps[0].app[SERVICES]
        admin_id = (await accounts.make(1, "ADMIN"))[0][0]
        _, user = (await accounts.make(1))[0]
        yield apps, svc.tokens.issue(admin_id, "a@x.io", "ADMIN"), user


async def test_the_limit_counts_every_process_and_refused_attempts_change_nothing(config, accounts):
    async with limited_apps(config, accounts, "4/minute") as ((a, b), admin, user):
        assert a.app[SERVICES].limits.booking_in_script

        def no_round_trip_of_its_own(*args: object, **kwargs: object) -> None:
            raise AssertionError("the booking limit took a round trip of its own")

        for app in (a, b):  # every booking below is counted by book.lua alone
            app.app[SERVICES].limits.scripts.ratelimit = no_round_trip_of_its_own  # type: ignore
        events = [await create_event(a, admin) for _ in range(6)]
        statuses = []
        for i, event_id in enumerate(events):
            app = (a, b)[i % 2]
            response = await app.post(f"/api/bookings/{event_id}/book", headers=auth(user))
            statuses.append(response.status)
            if response.status == 429:
                payload = await response.json()
                assert payload["code"] == "RATE_LIMITED" and payload["details"]["retryAfter"] >= 1
                assert int(response.headers["Retry-After"]) >= 1
        assert statuses == [202, 202, 202, 202, 429, 429]  # 4 a minute over both processes
        assert [await available(a, e) for e in events] == [9, 9, 9, 9, 10, 10]


async def test_a_burst_over_two_processes_books_exactly_the_limit(config, accounts):
    """40 attempts at once on 40 events, half on each process: exactly the limit's 5 book."""
    async with limited_apps(config, accounts, "5/minute") as ((a, b), admin, user):
        events = [await create_event(a, admin) for _ in range(40)]

        async def attempt(i: int, event_id: int) -> int:
            app = (a, b)[i % 2]
            return (await app.post(f"/api/bookings/{event_id}/book", headers=auth(user))).status

        statuses = await asyncio.gather(*(attempt(i, e) for i, e in enumerate(events)))
        assert sorted(statuses).count(202) == 5 and set(statuses) == {202, 429}
        assert sum([10 - await available(a, e) for e in events]) == 5


async def test_a_process_that_saw_the_limit_refuses_before_the_body(config, accounts):
    """Process B learns from Redis's count (attempts made on A) that the user is over the
    limit; its next attempt, with no body sent at all, is answered 429 at once."""
    async with limited_apps(config, accounts, "2/minute") as ((a, b), admin, user):
        event_id = await create_event(a, admin, capacity=10, maxPerUser=10)
        path = f"/api/bookings/{event_id}/book"
        for _ in range(2):
            assert (await a.post(path, headers=auth(user))).status == 202
        assert (await b.post(path, headers=auth(user))).status == 429  # Redis's count
        reader, writer = await send_head(b, path, user, 100)  # a body that never comes
        try:
            assert await status_of(reader) == 429
        finally:
            writer.close()


async def test_a_flood_of_bodiless_attempts_is_refused_past_the_limit(config, accounts):
    """Before any body arrives nothing reaches Redis; this process's own count still lets
    only the limit's attempts wait for their bodies (they end 408 at the body deadline); the
    others are answered 429 without waiting."""
    settings = {"count": 1, "body_deadline_seconds": 1}
    async with limited_apps(config, accounts, "3/minute", **settings) as ((client,), admin, user):
        event_id = await create_event(client, admin)
        path = f"/api/bookings/{event_id}/book"
        opened = [await send_head(client, path, user, 100) for _ in range(7)]
        try:
            statuses = await asyncio.gather(*(status_of(reader) for reader, _ in opened))
        finally:
            for _, writer in opened:
                writer.close()
        assert sorted(statuses) == [408] * 3 + [429] * 4
        assert await available(client, event_id) == 10
