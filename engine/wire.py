"""The engine's lean path to Redis: script calls written on ONE connection borrowed from the
client's pool, packed and parsed by hiredis in C, one write per event-loop tick, one timer
per connection instead of one per command.

Why: py-spy on the booking path showed redis-py's pipeline machinery (per-command packing,
per-reply parsing under its own timeout) at ~22% of the API server's CPU. Replies on one
connection come back in the order the commands were written, so each caller's future is
matched first-in first-out.

The connection comes from redis-py's pool, so its handshake (AUTH, SELECT, TLS, Unix
sockets) and its lifetime are redis-py's: closing the client closes it, and this reader ends.
A command unanswered after `timeout` seconds fails the connection (everyone waiting on it
hears TimeoutError) and the next call borrows a fresh one: a stuck Redis answers fast."""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import hiredis
from redis import exceptions as redis_errors
from redis._parsers.base import BaseParser
from redis.asyncio import Redis
from redis.commands.core import AsyncScript

# (future, the script to load on NOSCRIPT or None, its keys, its args)
Entry = tuple["asyncio.Future[Any]", AsyncScript | None, Sequence[Any], Sequence[Any]]

READ_SIZE = 65536
_WIRES: weakref.WeakKeyDictionary[Redis, Wire] = weakref.WeakKeyDictionary()


class Wire:
    """One pipelined connection for many concurrent callers."""

    def __init__(self, redis: Redis, timeout: float) -> None:
        self.redis = redis
        self.timeout = timeout
        self._link: _Link | None = None
        self._opening: asyncio.Task[_Link] | None = None
        self._outgoing: list[bytes] = []
        self._entries: list[Entry] = []
        self._scheduled = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self.run_id: str | None = None  # of the Redis server the last connection reached
        # A server that appeared after start (a replica promoted at its own address) may hold
        # older data than the one it replaced: then its first run counts as a change too.
        self.first_run_is_change = False
        self._pending_wait: tuple[tuple[int, int], asyncio.Future[Any]] | None = None
        self.restart_listeners: list[Callable[[], None]] = []

    @classmethod
    def for_client(cls, redis: Redis) -> Wire:
        """The one wire over `redis`'s pool: engines sharing a client share its wire, so
        they hold one connection, not one each."""
        pool = getattr(redis, "connection_pool", None)
        if pool is None or not hasattr(pool, "get_connection"):
            raise TypeError("the engine needs a pooled redis.asyncio client (engine.redis_client)")
        wire = _WIRES.get(redis)
        if wire is None:
            timeout = pool.connection_kwargs.get("socket_timeout") or 5.0
            wire = _WIRES[redis] = cls(redis, float(timeout))
        return wire

    def call(
        self, script: AsyncScript, keys: Sequence[Any], args: Sequence[Any]
    ) -> asyncio.Future[Any]:
        """EVALSHA `script`; the reply (or the error) arrives on the returned future. On
        NOSCRIPT (a restarted Redis, SCRIPT FLUSH) the script is loaded and the call sent
        again, on this same connection."""
        return self._send(_evalsha(script, keys, args), script, keys, args)

    def _send(
        self,
        command: tuple[Any, ...],
        script: AsyncScript | None = None,
        keys: Sequence[Any] = (),
        args: Sequence[Any] = (),
    ) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._outgoing.append(hiredis.pack_command(command))
        self._entries.append((future, script, keys, args))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return future

    def call_asking(
        self, script: AsyncScript, keys: Sequence[Any], args: Sequence[Any]
    ) -> asyncio.Future[Any]:
        """ASKING, then the script, on this connection: this node is importing the keys' slot
        (a cluster's ASK redirect), and ASKING lets exactly the next command run here. EVAL
        carries the script's text: a node that has not cached it runs it all the same, where
        a NOSCRIPT reload would be sent without the ASKING. Both go out in one write, so no
        other caller's command comes between them."""
        asking = self._send(("ASKING",))
        asking.add_done_callback(_consume)  # a failed ASKING fails the EVAL behind it too
        return self._send(("EVAL", script.script, len(keys), *keys, *args))

    def wait(self, replicas: int, timeout_ms: int, key: Any = None) -> asyncio.Future[Any]:
        """WAIT on this connection: Redis counts the replicas that have every write sent on
        it so far, the scripts just answered included. Sent on any other connection, WAIT
        covers none of them and answers at once. (`key` routes it on a cluster.)

        Callers in one loop tick share one WAIT (it covers all their writes alike): WAIT
        holds the connection until it returns, and one per caller would queue up to a
        timeout each behind a stalled replica."""
        pending = self._pending_wait
        if pending is not None and pending[0] == (replicas, timeout_ms):
            return pending[1]
        future = self._send(("WAIT", replicas, timeout_ms))
        self._pending_wait = ((replicas, timeout_ms), future)
        return future

    def ping(self) -> asyncio.Future[Any]:
        """PING down the same path the scripts take (readiness probes: a restarted Redis is
        noticed here, not only by the next booking)."""
        return self._send(("PING",))

    async def _load_and_call(
        self, script: AsyncScript, keys: Sequence[Any], args: Sequence[Any]
    ) -> Any:
        await self._send(("SCRIPT", "LOAD", script.script))
        return await self._send(_evalsha(script, keys, args))

    def _flush(self) -> None:
        data, entries = b"".join(self._outgoing), self._entries
        self._outgoing, self._entries, self._scheduled = [], [], False
        self._pending_wait = None  # a later caller's writes need a WAIT sent after them
        link = self._link
        if link is not None and link.open:
            link.send(data, entries)
        else:
            self._spawn(self._send_when_linked(data, entries))

    async def _send_when_linked(self, data: bytes, entries: list[Entry]) -> None:
        try:
            link = await self._linked()
        except Exception as exc:
            _fail(entries, _as_redis_error(exc))
            return
        link.send(data, entries)

    async def _linked(self) -> _Link:
        link = self._link
        if link is not None and link.open:
            return link
        if self._opening is None or self._opening.done():
            self._opening = asyncio.ensure_future(self._open())
        return await asyncio.shield(self._opening)

    async def _open(self) -> _Link:
        """Borrow a connection and learn which server it reached. A different server than
        last time (a restart, a failover) may hold older data: its listeners hear of it and
        the calls waiting for this connection fail, so none of them runs there before the
        inventory watcher has reconciled it."""
        pool: Any = self.redis.connection_pool
        connection = await pool.get_connection()
        try:
            run_id = await _run_id_of(connection)
            reader = getattr(connection, "_reader", None)
            writer = getattr(connection, "_writer", None)
            if reader is None or writer is None:
                raise redis_errors.ConnectionError("the pooled connection has no stream")
        except BaseException:
            await connection.disconnect()
            await pool.release(connection)
            raise
        link = self._link = _Link(reader, writer, self.timeout, self._reload)
        self._spawn(self._serve(link, connection))
        previous, self.run_id = self.run_id, run_id
        changed = previous != run_id if previous is not None else self.first_run_is_change
        self.first_run_is_change = False
        if changed:
            for listener in self.restart_listeners:
                listener()
            raise RedisRestarted(f"Redis restarted (run_id {previous} -> {run_id})")
        return link

    async def _serve(self, link: _Link, connection: Any) -> None:
        """Read replies until the connection ends; then hand it back to the pool, which
        reconnects it when someone next borrows it."""
        try:
            await link.read_replies()
        finally:
            if self._link is link:
                self._link = None
            try:
                # Best effort: the link is over either way, and a close that times out (a
                # stopped server that reads nothing more) must not end this task in an
                # exception nobody awaits.
                with contextlib.suppress(redis_errors.RedisError, OSError):
                    await connection.disconnect()
            finally:
                await self.redis.connection_pool.release(connection)

    def _reload(self, future: asyncio.Future[Any], entry: Entry) -> None:
        _, script, keys, args = entry
        assert script is not None
        self._spawn(settle_future(future, self._load_and_call(script, keys, args)))

    def _spawn(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


class _Link:
    """The borrowed connection's streams, the callers waiting on it, and its one timer."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        timeout: float,
        reload: Callable[[asyncio.Future[Any], Entry], None],
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.timeout = timeout
        self.reload = reload
        # Error replies typed as redis-py types them (its hiredis parser does the same):
        # LOADING, TRYAGAIN, CLUSTERDOWN... arrive as the classes the engine answers with 503
        # (engine.booking.UNAVAILABLE_ERRORS), MOVED/ASK as the ones engine.cluster_wire follows.
        self.parser = hiredis.Reader(replyError=BaseParser.parse_error)
        self.waiting: deque[Entry] = deque()
        self.sent = 0
        self.answered = 0
        self.deadlines: deque[tuple[int, float]] = deque()  # (last entry's number, deadline)
        self.timer: asyncio.TimerHandle | None = None
        self.failure: BaseException | None = None

    @property
    def open(self) -> bool:
        return self.failure is None and not self.writer.is_closing()

    def send(self, data: bytes, entries: list[Entry]) -> None:
        if not self.open:  # lost between being handed out and now
            _fail(entries, self.failure or redis_errors.ConnectionError("Connection closed"))
            return
        loop = asyncio.get_running_loop()
        self.waiting.extend(entries)
        self.sent += len(entries)
        self.deadlines.append((self.sent, loop.time() + self.timeout))
        self.writer.write(data)
        if self.timer is None:
            self.timer = loop.call_later(self.timeout, self._check_deadline)

    async def read_replies(self) -> None:
        try:
            while True:
                data = await self.reader.read(READ_SIZE)
                if not data:
                    raise redis_errors.ConnectionError("Connection closed by Redis")
                self.parser.feed(data)
                while (reply := self.parser.gets()) is not False:
                    self.answered += 1
                    self._answer(self.waiting.popleft(), reply)
        except BaseException as exc:
            self._fail_all(self.failure or _as_redis_error(exc))
            if not isinstance(exc, Exception | asyncio.CancelledError):
                raise

    def _answer(self, entry: Entry, reply: Any) -> None:
        future, script = entry[0], entry[1]
        if future.done():  # the caller gave up (cancelled); the command ran all the same
            return
        if isinstance(reply, redis_errors.RedisError):
            if script is not None and isinstance(reply, redis_errors.NoScriptError):
                self.reload(future, entry)  # Redis lost its script cache: load, call again
            else:
                future.set_exception(reply)
            return
        future.set_result(reply)

    def _check_deadline(self) -> None:
        self.timer = None
        while self.deadlines and self.deadlines[0][0] <= self.answered:
            self.deadlines.popleft()
        if not self.deadlines:
            return
        loop = asyncio.get_running_loop()
        deadline = self.deadlines[0][1]
        if deadline <= loop.time():
            self.failure = redis_errors.TimeoutError("Timeout reading from Redis")
            self.writer.transport.abort()  # the reader then fails everyone waiting
            return
        self.timer = loop.call_at(deadline, self._check_deadline)

    def _fail_all(self, error: BaseException) -> None:
        self.failure = self.failure or error
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        waiting, self.waiting = list(self.waiting), deque()
        _fail(waiting, error)


def _consume(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _evalsha(script: AsyncScript, keys: Sequence[Any], args: Sequence[Any]) -> tuple[Any, ...]:
    return ("EVALSHA", script.sha, len(keys), *keys, *args)


class RedisRestarted(redis_errors.ConnectionError):
    """The connection reached a different Redis server run than the last one."""


async def _run_id_of(connection: Any) -> str:
    await connection.send_command("INFO", "server")
    info = await connection.read_response()
    text = info.decode() if isinstance(info, bytes) else str(info)
    for line in text.splitlines():
        if line.startswith("run_id:"):
            return line.removeprefix("run_id:").strip()
    return ""


def _as_redis_error(exc: BaseException) -> BaseException:
    if isinstance(exc, redis_errors.RedisError):
        return exc
    return redis_errors.ConnectionError(f"Redis connection lost: {exc!r}")


def _fail(entries: Sequence[Entry], error: BaseException) -> None:
    for future, *_ in entries:
        if not future.done():
            future.set_exception(error)


async def settle_future(future: asyncio.Future[Any], work: Any) -> None:
    """Put what `work` returns or raises on `future`, unless its caller gave up."""
    try:
        result = await work
    except Exception as exc:
        if not future.done():
            future.set_exception(exc)
        return
    if not future.done():
        future.set_result(result)
