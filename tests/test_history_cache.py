"""History pages kept in an API process (api/history_cache.py) are never stale: a change made
anywhere (this process, another one, the write-behind, a rename, a recovery) shows in the next
request. The dangerous case is a booking made *and persisted* between two reads: Redis's
pending index looks the same before and after it, so only the change marks tell."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from aiohttp.test_utils import TestClient, TestServer

from api.app import init_app
from api.context import SERVICES
from engine.booking import CHANGE_MARK_USERS
from engine.config import Config
from engine.recovery import Recovery
from engine.scripts import script_source
from persistence.persister import Persister
from tests.support import app_on_private_postgres, auth
from tests.test_api_bookings import create_event


async def history(client: Any, token: str, query: str = "") -> list[dict[str, Any]]:
    response = await client.get(f"/api/bookings/history{query}", headers=auth(token))
    assert response.status == 200, await response.text()
    return list(await response.json())


def seen(items: list[dict[str, Any]]) -> list[tuple[int, str]]:
    return [(i["id"], i["status"]) for i in items]


async def book(client: Any, token: str, event_id: int) -> int:
    response = await client.post(f"/api/bookings/{event_id}/book", headers=auth(token))
    assert response.status == 202, await response.text()
    return int((await response.json())["booking"]["id"])


@contextlib.asynccontextmanager
async def second_process(config: Config) -> AsyncIterator[TestClient[Any, Any]]:
    """Another API app on the same Redis and Postgres: its own memory, its own kept pages."""
    async with TestClient(TestServer(init_app(config))) as other:
        yield other


async def test_a_booking_made_and_persisted_between_two_reads_shows(client, accounts, persister):
    _, admin = await accounts.admin()
    _, user = await accounts.user()
    event_id, other_event = await create_event(client, admin), await create_event(client, admin)
    first = await book(client, user, event_id)
    await persister.drain_once()
    assert seen(await history(client, user)) == [(first, "CONFIRMED")]  # kept: nothing pending
    second = await book(client, user, other_event)
    await persister.drain_once()  # the pending index is empty again, as when the page was kept
    assert seen(await history(client, user)) == [(second, "CONFIRMED"), (first, "CONFIRMED")]


async def test_a_cancel_made_in_another_process_and_persisted_shows(
    client, config, accounts, persister
):
    _, admin = await accounts.admin()
    _, user = await accounts.user()
    event_id = await create_event(client, admin)
    booking_id = await book(client, user, event_id)
    await persister.drain_once()
    assert seen(await history(client, user)) == [(booking_id, "CONFIRMED")]
    async with second_process(config) as other:
        cancel = await other.delete(f"/api/bookings/{booking_id}/cancel", headers=auth(user))
        assert cancel.status == 200
        assert seen(await history(other, user)) == [(booking_id, "CANCELLED")]
    await persister.drain_once()
    assert seen(await history(client, user)) == [(booking_id, "CANCELLED")]


async def test_every_page_of_a_polling_user_follows_each_stage_of_their_bookings(
    client, config, accounts, persister
):
    """Two processes poll pages 1 and 2 (limit 1) after every step of a booking's life: only
    in Redis, persisted, cancelled, cancelled and persisted; each answer is the truth."""
    _, admin = await accounts.admin()
    _, user = await accounts.user()
    events = [await create_event(client, admin) for _ in range(3)]
    truth: list[tuple[int, str]] = []

    async def check(apps: list[Any]) -> None:
        for app in apps:
            for _ in range(2):  # the second read is answered from the kept page
                assert seen(await history(app, user)) == truth
                assert seen(await history(app, user, "?limit=1")) == truth[:1]
                assert seen(await history(app, user, "?limit=1&page=2")) == truth[1:2]

    async with second_process(config) as other:
        apps = [client, other]
        for round_ in range(3):
            booking_id = await book(apps[round_ % 2], user, events[round_])
            truth.insert(0, (booking_id, "CONFIRMED"))
            await check(apps)
            await persister.drain_once()
            await check(apps)
            cancel = await apps[1 - round_ % 2].delete(
                f"/api/bookings/{booking_id}/cancel", headers=auth(user)
            )
            assert cancel.status == 200
            truth[0] = (booking_id, "CANCELLED")
            await check(apps)
            await persister.drain_once()
            await check(apps)


async def test_holds_confirmed_released_and_expired_show_in_every_process(
    client, config, accounts, persister
):
    """A hold's life over two processes, each step read twice (the second from the kept page)
    on both: held, confirmed elsewhere, persisted; held, persisted, released elsewhere;
    held, lapsed and expired by the write-behind's expirer."""
    _, admin = await accounts.admin()
    _, user = await accounts.user()
    events = [await create_event(client, admin) for _ in range(3)]
    truth: dict[int, str] = {}

    async def check(apps: list[Any]) -> None:
        expected = sorted(truth.items(), reverse=True)
        for app in apps:
            for _ in range(2):
                assert seen(await history(app, user)) == expected

    async def hold(app: Any, event_id: int, ttl: int = 600) -> dict[str, Any]:
        url = f"/api/bookings/{event_id}/hold"
        response = await app.post(url, json={"ttlSeconds": ttl}, headers=auth(user))
        assert response.status == 201, await response.text()
        held: dict[str, Any] = await response.json()
        truth[held["bookingId"]] = "HELD"
        return held

    async with second_process(config) as other:
        apps = [client, other]
        held = await hold(client, events[0])
        await check(apps)
        url = f"/api/bookings/holds/{held['holdId']}/confirm"
        assert (await other.post(url, headers=auth(user))).status == 202
        truth[held["bookingId"]] = "CONFIRMED"
        await check(apps)
        await persister.drain_once()
        await check(apps)

        held = await hold(other, events[1])
        await persister.drain_once()
        await check(apps)
        url = f"/api/bookings/holds/{held['holdId']}"
        assert (await client.delete(url, headers=auth(user))).status == 200
        truth[held["bookingId"]] = "RELEASED"
        await check(apps)
        await persister.drain_once()
        await check(apps)

        held = await hold(client, events[2], ttl=1)
        await persister.drain_once()
        await check(apps)
        await asyncio.sleep(1.2)
        await persister.drain_once()  # the expirer returns the lapsed hold, then it persists
        truth[held["bookingId"]] = "EXPIRED"
        await check(apps)


async def test_a_renamed_event_shows_in_the_kept_page_at_once(client, config, accounts, persister):
    _, admin = await accounts.admin()
    _, user = await accounts.user()
    event_id = await create_event(client, admin)
    await book(client, user, event_id)
    await persister.drain_once()
    assert [i["event"]["name"] for i in await history(client, user)] == ["Show"]
    async with second_process(config) as other:
        body = {"name": "Encore"}
        renamed = await other.put(f"/api/events/{event_id}/update", json=body, headers=auth(admin))
        assert renamed.status == 200, await renamed.text()
    assert [i["event"]["name"] for i in await history(client, user)] == ["Encore"]


async def test_a_kept_page_answers_while_postgres_is_down_and_only_while_young(config, private_pg):
    """The page is served from memory (with Postgres stopped, a fresh read could only show
    what Redis holds: nothing here), and no longer than MAX_AGE_S."""
    async with app_on_private_postgres(config, private_pg) as (client, admin, user):
        svc = client.app[SERVICES]
        event_id = await create_event(client, admin)
        booking_id = await book(client, user, event_id)
        await Persister(svc.redis, svc.pool, svc.keys).drain_once()
        assert seen(await history(client, user)) == [(booking_id, "CONFIRMED")]
        await asyncio.to_thread(private_pg.stop, "fast")
        try:
            assert seen(await history(client, user)) == [(booking_id, "CONFIRMED")]
            svc.history.max_age_s = 0.0  # as if the page had aged past MAX_AGE_S
            assert seen(await history(client, user)) == []  # Redis alone: nothing pending
        finally:
            await asyncio.to_thread(private_pg.start)


async def test_no_page_is_kept_or_served_while_the_gate_is_closed(client, accounts, persister):
    _, admin = await accounts.admin()
    _, user = await accounts.user()
    svc = client.app[SERVICES]
    event_id = await create_event(client, admin)
    booking_id = await book(client, user, event_id)
    await persister.drain_once()
    svc.engine.fence.ready = False
    try:
        assert seen(await history(client, user)) == [(booking_id, "CONFIRMED")]
        assert len(svc.history) == 0
    finally:
        svc.engine.fence.ready = True
    assert seen(await history(client, user)) == [(booking_id, "CONFIRMED")]
    assert len(svc.history) == 1
    # What a recovery may do behind the pending index's back (a journal flushed straight to
    # Postgres): the kept page must not outlive the gate's closing and opening.
    await svc.pool.execute(
        "UPDATE bookings SET status = 'CANCELLED', version = version + 1 WHERE id = $1",
        booking_id,
    )
    assert seen(await history(client, user)) == [(booking_id, "CONFIRMED")]  # kept, as it was
    openings = svc.engine.fence.openings
    svc.engine.fence.ready = False
    svc.engine.fence.ready = True
    assert svc.engine.fence.openings == openings + 1
    assert seen(await history(client, user)) == [(booking_id, "CANCELLED")]


async def test_every_change_marks_its_user_and_the_persister_trims_the_marks(
    client, accounts, persister
):
    """book, the write-behind's ack and a recovery's restore each mark the user (cancel, hold,
    confirm and release are covered by the pages above and by test_races' lives)."""
    _, admin = await accounts.admin()
    (first, first_token), (second, _) = await accounts.make(2)
    engine = client.app[SERVICES].engine
    keys = engine.keys
    event_id = await create_event(client, admin)
    sk = keys.shard(keys.shard_of_event(event_id))
    await book(client, first_token, event_id)
    booked_at = await engine.redis.zscore(sk.changed, first // CHANGE_MARK_USERS)
    assert booked_at is not None  # the booking marked the user
    await asyncio.sleep(0.002)
    await persister.drain_once()
    acked_at = await engine.redis.zscore(sk.changed, first // CHANGE_MARK_USERS)
    assert acked_at is not None and acked_at > booked_at  # and so did the ack

    record = (await engine.book(event_id, second)).record
    assert await engine.redis.zscore(sk.pending, record.id) == second
    await engine.redis.zrem(sk.changed, second // CHANGE_MARK_USERS)
    # As after a rollback: Postgres holds a later version than Redis's pending one.
    later = msgspec.structs.replace(record, v=record.version + 1)
    assert await Recovery(engine).restore_records([later]) == 1
    assert await engine.redis.zscore(sk.pending, record.id) is None
    restored_mark = await engine.redis.zscore(sk.changed, second // CHANGE_MARK_USERS)
    assert restored_mark is not None  # the restore marked them

    shard = keys.shard_of_event(event_id)
    await persister.trim_change_marks([shard])  # younger than CHANGE_MARKS_KEEP_MS: kept
    marks = {first // CHANGE_MARK_USERS, second // CHANGE_MARK_USERS}
    assert await engine.redis.zcard(sk.changed) == len(marks)
    await asyncio.sleep(0.005)
    await persister.trim_change_marks([shard], keep_ms=1)  # as if the keep had passed
    assert await engine.redis.zcard(sk.changed) == 0


def test_every_script_shares_the_change_marks_width():
    """Scripts cannot import: each one that sets or reads a change mark declares MARK_USERS,
    and all must agree with engine.booking.CHANGE_MARK_USERS (else a mark set for one
    neighbourhood would be looked for under another: a stale page)."""
    names = ["book", "hold", "confirm", "release", "cancel", "ack", "restore", "changes"]
    for name in names:
        assert f"local MARK_USERS = {CHANGE_MARK_USERS}\n" in script_source(name), name


def test_endless_empty_pages_cannot_grow_the_kept_pages_past_their_bound():
    """`?page=N` for every N answers `[]` (2 bytes); each kept page still costs its entry."""
    from api.history_cache import ENTRY_OVERHEAD, HistoryCache
    from engine.reads import UserChanges

    cache = HistoryCache(max_bytes=100 * (ENTRY_OVERHEAD + 2))
    changes = UserChanges(1, ((1_000, -1),))
    for page in range(1, 10_001):
        cache.keep(7, page, 50, changes, 1, b"[]")
    assert len(cache) == 100
    assert cache.get(7, 10_000, 50, changes, 1) == b"[]"  # the newest stay
    assert cache.get(7, 1, 50, changes, 1) is None
