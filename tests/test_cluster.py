"""Redis Cluster (DESIGN §8): the engine, the persister and the API on a private three-master
cluster. Each event's keys share one hash tag, so every script runs on one node; events
spread over all three masters, and the invariants hold on each."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import RedisCluster

from api.app import init_app
from engine.booking import Engine
from engine.config import Config
from engine.errors import Code, EngineError, EngineUnavailable
from engine.keys import KeySpace
from engine.recovery import Recovery
from engine.redis_client import check_eviction_policy, connect, node_client
from persistence import queries
from persistence.persister import Persister
from tests.rediscluster import RedisCluster3, node_command
from tests.support import auth, insert_users, start_server, stop_and_drain
from tests.test_api_bookings import create_event
from tests.test_persister import make_event

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster3]:
    nodes = RedisCluster3(Path(tmp_path_factory.mktemp("cluster")))
    nodes.start()
    try:
        yield nodes
    finally:
        nodes.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def cluster_client(cluster: RedisCluster3) -> AsyncIterator[Any]:
    client = connect(cluster.url)
    assert isinstance(client, RedisCluster)
    await client.initialize()  # the slot map, for the tests' own get_node_from_key
    yield client
    await client.aclose()


@pytest.fixture
def ckeys() -> KeySpace:
    return KeySpace(f"cl{secrets.token_hex(3)}", 16)


@pytest.fixture
def cengine(cluster_client: Any, ckeys: KeySpace, pool: Any) -> Engine:
    engine = Engine(cluster_client, ckeys)
    engine.record_source = functools.partial(queries.booking_record, pool)
    return engine


async def _events_on_every_master(
    pool: Any, engine: Engine, client: Any, capacity: int, per_node: int = 2
) -> dict[int, str]:
    """Events until each master owns `per_node` of them; {event id: node name}."""
    placed: dict[int, str] = {}
    count: Counter[str] = Counter()
    while len(count) < 3 or min(count.values()) < per_node:
        event_id = await make_event(pool, engine, capacity=capacity)
        node = client.get_node_from_key(engine.keys.event(event_id).inventory).name
        placed[event_id] = node
        count[node] += 1
    return placed


async def test_each_events_keys_share_a_slot_and_shards_cover_all_masters(
    cluster_client: Any, ckeys: KeySpace
):
    await check_eviction_policy(cluster_client)  # every primary runs noeviction
    nodes = set()
    for shard in range(ckeys.shard_count):
        sk = ckeys.shard(shard)
        slots = {cluster_client.keyslot(k) for k in (sk.outbox, sk.inflight, sk.bookings)}
        assert len(slots) == 1
        nodes.add(cluster_client.get_node_from_key(sk.outbox).name)
    assert len(nodes) == 3


async def test_concurrent_bookings_never_oversell_on_three_masters(
    pool: Any, cengine: Engine, cluster_client: Any
):
    placed = await _events_on_every_master(pool, cengine, cluster_client, capacity=25)
    users = await insert_users(pool, 60, prefix=f"c{secrets.token_hex(3)}-")
    attempts = [(e, u) for e in placed for u in users]  # 60 users race for 25 seats each

    async def attempt(event_id: int, user_id: int) -> str:
        try:
            await cengine.book(event_id, user_id)
        except EngineError as exc:
            return exc.code.value
        return "CONFIRMED"

    outcomes = await asyncio.gather(*(attempt(e, u) for e, u in attempts))
    per_event: dict[int, Counter[str]] = {e: Counter() for e in placed}
    for (event_id, _), outcome in zip(attempts, outcomes, strict=True):
        per_event[event_id][outcome] += 1
    for event_id, counts in per_event.items():
        assert counts == Counter({"CONFIRMED": 25, Code.SOLD_OUT.value: 35}), event_id
        inventory = (await cengine.inventories([event_id]))[event_id]
        assert inventory is not None
        assert (inventory.sold, inventory.available, inventory.capacity) == (25, 0, 25)
    # The keys really live on their own node: ask each master directly.
    for event_id, node_name in placed.items():
        host, port = node_name.rsplit(":", 1)
        direct = node_client(cluster_client, host, int(port))
        try:
            assert await direct.exists(cengine.keys.event(event_id).inventory) == 1
        finally:
            await direct.aclose()


async def test_the_persister_drains_every_masters_outbox_into_postgres(
    pool: Any, cengine: Engine, cluster_client: Any, ckeys: KeySpace
):
    await pool.execute("TRUNCATE bookings, events, users, shard_marks RESTART IDENTITY CASCADE")
    placed = await _events_on_every_master(pool, cengine, cluster_client, capacity=10, per_node=1)
    users = await insert_users(pool, 5)
    booked = [(await cengine.book(e, u)).record for e in placed for u in users]
    for record in booked[::4]:
        await cengine.cancel(record.id, record.user_id)
    persister = Persister(cluster_client, pool, ckeys, batch_size=7)  # several batches each
    assert await persister.drain_once() == len(booked) + len(booked[::4])
    latest = {r.id: r for r in cengine.journal}
    rows = await pool.fetch("SELECT id, status, version FROM bookings")
    assert {(r["id"], r["status"], r["version"]) for r in rows} == {
        (r.id, r.status, r.version) for r in latest.values()
    }
    assert await cengine.get_booking(booked[0].id) == latest[booked[0].id]  # from Postgres now


async def test_the_api_books_checks_and_cancels_on_a_cluster(
    config: Config, cluster: RedisCluster3, accounts: Any
):
    config = dataclasses.replace(
        config,
        redis_url=cluster.url,
        rate_limits="on",
        rate_login_ip="3/minute",
        rate_book_user="3/minute",
    )
    async with TestClient(TestServer(init_app(config))) as client:
        _, admin = await accounts.admin()
        (_, token), (_, other) = await accounts.make(2)
        ready = await client.get("/readyz")
        assert ready.status == 200, await ready.text()
        # Register and login go through the rate limits (limits' cluster storage).
        body = {"name": "C", "email": "c@cluster.example", "password": "Cluster-Pw-123"}
        registered = await client.post("/api/auth/register", json=body)
        assert registered.status in (200, 201), await registered.text()
        login = await client.post(
            "/api/auth/login", json={"email": body["email"], "password": body["password"]}
        )
        assert login.status == 200, await login.text()
        wrong = {"email": body["email"], "password": "Wrong-Pw-123"}
        statuses = [(await client.post("/api/auth/login", json=wrong)).status for _ in range(3)]
        assert statuses[-1] == 429, statuses  # the 4th login from this IP in a minute
        event_id = await create_event(client, admin, capacity=1)
        page = await client.get(f"/api/events/{event_id}/view")  # the generation read apart
        assert page.status == 200, await page.text()
        assert (await page.json())["available"] == 1
        first = await client.post(f"/api/bookings/{event_id}/book", headers=auth(token))
        assert first.status == 202, await first.text()
        job = (await first.json())["jobId"]
        second = await client.post(f"/api/bookings/{event_id}/book", headers=auth(other))
        assert second.status == 409
        status = await client.get(f"/api/bookings/status/{job}")
        assert (await status.json())["status"] == "completed"
        booking_id = (await first.json())["booking"]["id"]

        async def history() -> list[tuple[int, str]]:
            got = await client.get("/api/bookings/history", headers=auth(token))
            assert got.status == 200, await got.text()
            return [(item["id"], item["status"]) for item in await got.json()]

        for _ in range(2):  # the second from the page this process keeps (one call per shard)
            assert await history() == [(booking_id, "CONFIRMED")]
        cancel = await client.delete(f"/api/bookings/{booking_id}/cancel", headers=auth(token))
        assert cancel.status == 200, await cancel.text()
        assert await history() == [(booking_id, "CANCELLED")]  # the cancel's mark, on its node
        again = await client.post(f"/api/bookings/{event_id}/book", headers=auth(other))
        assert again.status == 202, await again.text()
        # The per-user booking limit on a cluster: counted in Redis before the body (its key
        # is in another slot than the booking's), 3 attempts a minute.
        more = [
            (await client.post(f"/api/bookings/{event_id}/book", headers=auth(token))).status
            for _ in range(3)
        ]
        assert more == [409, 409, 429], more


async def test_a_stopped_master_fails_only_its_own_events_and_never_with_a_500(
    pool: Any, tmp_path: Path
):
    nodes = RedisCluster3(tmp_path / "cluster")
    nodes.start()
    client = connect(nodes.url)
    try:
        engine = Engine(client, KeySpace(f"cs{secrets.token_hex(3)}", 16))
        placed = await _events_on_every_master(pool, engine, client, capacity=10, per_node=1)
        users = await insert_users(pool, 2, prefix=f"s{secrets.token_hex(3)}-")
        doomed = nodes.ports[1]
        nodes.procs[1].kill()
        nodes.procs[1].wait(10)
        for event_id, node_name in placed.items():
            if node_name.endswith(f":{doomed}"):
                with pytest.raises(EngineUnavailable):
                    await engine.book(event_id, users[0])
            else:
                assert (await engine.book(event_id, users[1])).record.status == "CONFIRMED"
    finally:
        await client.aclose()
        nodes.stop()


async def test_two_api_processes_and_a_persister_on_a_cluster_sell_exactly_each_capacity(
    config: Config, cluster: RedisCluster3, cluster_client: Any, pool: Any, accounts: Any, tmp
):
    """`boxoffice serve` twice and `boxoffice persist`, all on REDIS_URL=redis+cluster://..."""
    config = dataclasses.replace(config, redis_url=cluster.url)
    _, admin = await accounts.admin()
    users = await accounts.make(120)
    servers = [await start_server(config, tmp, "ca"), await start_server(config, tmp, "cb")]
    try:
        async with aiohttp.ClientSession() as session:
            events: list[int] = []
            nodes: set[str] = set()
            keys = KeySpace(config.key_prefix, config.shard_count)
            while len(nodes) < 3:  # one event on each master at least
                created = await session.post(
                    f"{servers[0][1]}/api/events/create",
                    json={
                        "name": "F",
                        "venue": "A",
                        "time": "2030-01-01T00:00:00Z",
                        "capacity": 20,
                    },
                    headers=auth(admin),
                )
                events.append(int((await created.json())["id"]))
                nodes.add(cluster_client.get_node_from_key(keys.event(events[-1]).inventory).name)

            async def attempt(index: int, event_id: int, token: str) -> tuple[int, int]:
                base = servers[index % 2][1]
                url = f"{base}/api/bookings/{event_id}/book"
                async with session.post(url, headers=auth(token)) as response:
                    return event_id, response.status

            tries = [(e, t) for e in events for _, t in users]
            outcomes = Counter(
                await asyncio.gather(*(attempt(i, e, t) for i, (e, t) in enumerate(tries)))
            )
        for event_id in events:
            assert (outcomes[(event_id, 202)], outcomes[(event_id, 409)]) == (20, 100), event_id
    finally:
        stop_and_drain(servers, config, tmp)
    rows = await pool.fetch(
        "SELECT event_id, count(*) AS n FROM bookings WHERE status = 'CONFIRMED' GROUP BY event_id"
    )
    assert {r["event_id"]: r["n"] for r in rows} == dict.fromkeys(events, 20)
    engine = Engine(cluster_client, keys)
    for event_id, inventory in (await engine.inventories(events)).items():
        assert inventory is not None and (inventory.available, inventory.sold) == (0, 20), event_id


async def _booked_on_master(
    pool: Any, client: Any, nodes: RedisCluster3, index: int
) -> tuple[Engine, list[str], int, list[int]]:
    """An engine on `client` whose restart listeners are recorded, an event on master
    `index` with one seat booked, and three users (the first booked it)."""
    engine = Engine(client, KeySpace(f"cr{secrets.token_hex(3)}", 16))
    heard: list[str] = []
    engine.on_redis_restart(lambda: heard.append("restart"))
    placed = await _events_on_every_master(pool, engine, client, capacity=10, per_node=1)
    users = await insert_users(pool, 3, prefix=f"r{secrets.token_hex(3)}-")
    port = nodes.ports[index]
    victim = next(e for e, name in placed.items() if name.endswith(f":{port}"))
    await engine.book(victim, users[0])
    return engine, heard, victim, users


async def test_a_master_restarted_empty_is_noticed_before_anything_sells_there(
    pool: Any, tmp_path: Path
):
    """Its wire sees a new run_id: the calls waiting fail (503), the engine's restart
    listeners hear of it (the API's watcher then stops selling until it has reconciled),
    and the cluster's combined run_id changes for the watcher's own check."""
    nodes = RedisCluster3(tmp_path / "cluster")
    nodes.start()
    client = connect(nodes.url)
    try:
        engine, heard, victim, users = await _booked_on_master(pool, client, nodes, 2)
        before = await Recovery(engine).run_id()
        nodes.restart_empty(2)
        for _ in range(3):  # the first may go out on the dead connection: it fails too
            with pytest.raises(EngineUnavailable):
                await engine.book(victim, users[1])
            if heard:
                break
        assert heard == ["restart"]
        assert await Recovery(engine).run_id() != before
    finally:
        await client.aclose()
        nodes.stop()


async def test_a_replica_promoted_at_another_address_is_noticed_before_it_sells(
    pool: Any, tmp_path: Path
):
    """A failover: the master dies, its replica takes its slots over from its own address.
    Replication is asynchronous, so the replica may lack the last bookings its master
    confirmed; selling there before the watcher has reconciled could sell those seats again.
    The wire of a primary that was not one when the engine first read the slot map treats
    its first connection as a changed server: the calls waiting fail (503) and the restart
    listeners hear of it, as for a restarted one; the calls after it sell there."""
    nodes = RedisCluster3(tmp_path / "cluster")
    nodes.start()
    client = connect(nodes.url)
    try:
        replica = nodes.add_replica(2)
        engine, heard, victim, users = await _booked_on_master(pool, client, nodes, 2)
        nodes.synced(2, replica)
        nodes.fail_over(2, replica)
        deadline = time.monotonic() + 10
        while not heard and time.monotonic() < deadline:
            # The dead master's calls fail (and refresh the map), then the new primary's.
            with pytest.raises(EngineUnavailable):
                await engine.book(victim, users[1])
            await asyncio.sleep(0.1)
        assert heard == ["restart"]
        record = (await engine.book(victim, users[2])).record
        assert record.status == "CONFIRMED"
        assert client.get_node_from_key(engine.keys.event(victim).inventory).port == replica
    finally:
        await client.aclose()
        nodes.stop()


async def test_node_clients_keep_the_clusters_tls_and_credentials():
    """rediss+cluster:// means TLS to every node the engine's wires open, not only to the
    ones redis-py's own client talks to."""
    from redis.asyncio.connection import SSLConnection

    tls = connect("rediss+cluster://alice:s3cret@127.0.0.1:7000")  # connects lazily
    assert isinstance(tls, RedisCluster)
    pool: Any = node_client(tls, "127.0.0.1", 7001).connection_pool
    assert pool.connection_class is SSLConnection
    assert pool.connection_kwargs["username"] == "alice"
    assert pool.connection_kwargs["password"] == "s3cret"
    plain: Any = node_client(connect("redis+cluster://127.0.0.1:7000"), "127.0.0.1", 7001)
    assert plain.connection_pool.connection_class is not SSLConnection


async def test_a_slot_being_migrated_follows_ask_and_then_moved(
    pool: Any, cengine: Engine, cluster_client: Any, cluster: RedisCluster3
):
    """Live resharding, as `redis-cli --cluster reshard` does it: the slot is marked
    importing/migrating, its keys MIGRATE to the new master, then the slot is assigned. Once
    a script's keys have all moved, the old owner answers ASK: the engine sends it once to
    the importing node behind ASKING (a cancel here) instead of answering 503 until the end.
    A booking names a key that does not exist yet (its idempotency key), so Redis answers it
    TRYAGAIN throughout the move (503, retry). After the move, MOVED; nothing oversold."""
    event_id = await make_event(pool, cengine, capacity=5)
    users = await insert_users(pool, 8)
    booked = [(await cengine.book(event_id, u)).record for u in users[:3]]
    inventory = cengine.keys.event(event_id).inventory
    slot = cluster_client.keyslot(inventory)
    ports = {f"127.0.0.1:{p}": p for p in cluster.ports}
    source_port = ports[cluster_client.get_node_from_key(inventory).name]
    target_port = next(p for p in cluster.ports if p != source_port)
    source_id = node_command(source_port, "CLUSTER", "MYID").decode()
    target_id = node_command(target_port, "CLUSTER", "MYID").decode()
    node_command(target_port, "CLUSTER", "SETSLOT", str(slot), "IMPORTING", source_id)
    node_command(source_port, "CLUSTER", "SETSLOT", str(slot), "MIGRATING", target_id)
    try:
        keys = node_command(source_port, "CLUSTER", "GETKEYSINSLOT", str(slot), "1000")
        node_command(source_port, "MIGRATE", "127.0.0.1", str(target_port), "", "0", "5000",
                     "KEYS", *[k.decode() for k in keys])  # fmt: skip
        cancelled = await cengine.cancel(booked[0].id, booked[0].user_id)  # ASK -> target
        assert cancelled.status == "CANCELLED"
        with pytest.raises(EngineUnavailable):  # TRYAGAIN: its idempotency key exists nowhere
            await cengine.book(event_id, users[3])
    finally:
        for port in cluster.ports:  # the move ends: the target owns the slot everywhere
            node_command(port, "CLUSTER", "SETSLOT", str(slot), "NODE", target_id)
    outcomes = await asyncio.gather(*(_outcome(cengine, event_id, u) for u in users[3:]))
    assert sorted(outcomes) == ["CONFIRMED"] * 3 + ["SOLD_OUT"] * 2  # 5 - 3 + 1 cancelled
    inventory_now = (await cengine.inventories([event_id]))[event_id]
    assert inventory_now is not None and (inventory_now.sold, inventory_now.available) == (5, 0)
    assert node_command(source_port, "CLUSTER", "COUNTKEYSINSLOT", str(slot)) == 0


async def _outcome(engine: Engine, event_id: int, user_id: int) -> str:
    try:
        return (await engine.book(event_id, user_id)).record.status
    except EngineError as exc:
        return exc.code.value
