"""Issue 16: slow bodies are timed out, and the per-user limit is decided before a body is
read. Raw sockets: an HTTP client library would not send a body this badly. The socket
timeouts below only stop a hang on a broken build; no test asserts on elapsed time."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from api.app import init_app
from api.context import SERVICES
from engine.config import Config
from tests.test_api_bookings import create_event

GUARD_SECONDS = 30  # far beyond any deadline here: reaching it means none fired


async def send_head(client: Any, path: str, token: str, length: int, body: bytes = b"") -> Any:
    reader, writer = await asyncio.open_connection(client.host, client.port)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    )
    writer.write(head.encode() + body)
    await writer.drain()
    return reader, writer


async def status_of(reader: asyncio.StreamReader) -> int:
    line = await asyncio.wait_for(reader.readline(), GUARD_SECONDS)
    return int(line.split()[1])


async def test_a_body_that_trickles_is_cut_off_with_408(config: Config, accounts):
    config = dataclasses.replace(config, body_deadline_seconds=1)
    async with TestClient(TestServer(init_app(config))) as client:
        svc = client.app[SERVICES]
        admin_id = (await accounts.make(1, "ADMIN"))[0][0]
        admin = svc.tokens.issue(admin_id, "a@x.io", "ADMIN")
        event_id = await create_event(client, admin)
        _, user = (await accounts.make(1))[0]
        reader, writer = await send_head(client, f"/api/bookings/{event_id}/book", user, 100, b"{")
        try:
            assert await status_of(reader) == 408
            rest = await asyncio.wait_for(reader.read(), GUARD_SECONDS)  # then EOF: closed
            assert b"REQUEST_TIMEOUT" in rest
        finally:
            writer.close()


async def test_the_per_user_limit_answers_before_the_body_is_read(config: Config, accounts):
    config = dataclasses.replace(config, rate_limits="on", rate_book_user="1/minute")
    async with TestClient(TestServer(init_app(config))) as client:
        svc = client.app[SERVICES]
        admin_id = (await accounts.make(1, "ADMIN"))[0][0]
        admin = svc.tokens.issue(admin_id, "a@x.io", "ADMIN")
        event_id = await create_event(client, admin)
        _, user = (await accounts.make(1))[0]
        path = f"/api/bookings/{event_id}/book"
        first = await client.post(path, headers={"Authorization": f"Bearer {user}"})
        assert first.status == 202
        for route in (path, f"/api/bookings/{event_id}/hold"):
            reader, writer = await send_head(client, route, user, 100)  # no body at all
            try:
                assert await status_of(reader) == 429, route
            finally:
                writer.close()


async def test_headers_that_trickle_are_cut_off_by_the_served_process(config: Config, tmp):
    """`boxoffice serve` itself (its keep-alive timer, started when the connection opens, is
    the header-read deadline): a request line sent a byte at a time is dropped."""
    from api.embedded import free_port
    from tests.support import Proc, env_of, wait_http

    port = free_port()
    env = env_of(config, BOXOFFICE_KEEPALIVE_SECONDS="1")
    proc = Proc(["serve", "--port", str(port)], env, tmp / "serve.log")
    try:
        await wait_http(f"http://127.0.0.1:{port}/healthz", proc)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        closed = False
        for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 60:
            try:
                writer.write(bytes([byte]))
                await writer.drain()
            except ConnectionError:
                closed = True
                break
            if reader.at_eof():
                closed = True
                break
            await asyncio.sleep(0.1)  # 60+ bytes: over 6 s, far past the 1 s deadline
        if not closed:
            closed = await asyncio.wait_for(reader.read(), GUARD_SECONDS) == b""
        assert closed
        writer.close()
    finally:
        proc.terminate()
