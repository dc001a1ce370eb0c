"""The ceiling: redis-benchmark running our real book.lua by EVALSHA, the fastest any client
could book on this Redis. One event with a huge capacity and limit; `__rand_int__` as the user
id, so the per-user limit never answers instead of booking. Every reply is checked the only
way redis-benchmark allows: the seats sold must equal the requests sent."""

from __future__ import annotations

import asyncio
import csv
import io
import shutil
from urllib.parse import urlsplit

from redis.asyncio import Redis

from engine.keys import SHARD_SPACE, KeySpace
from engine.scripts import script_source
from loadtest.measure import CpuMeter, Measure
from loadtest.stage import CAPACITY

EVENT = 1


def available() -> bool:
    return shutil.which("redis-benchmark") is not None


def _connection_args(redis_url: str) -> list[str]:
    url = urlsplit(redis_url)
    if url.scheme == "unix":
        return ["-s", url.path]
    args = ["-h", url.hostname or "127.0.0.1", "-p", str(url.port or 6379)]
    if url.password:
        args += ["-a", url.password]
    db = url.path.strip("/")
    if db and db != "0":
        args += ["--dbnum", db]
    return args


async def measure_ceiling(
    redis: Redis, redis_url: str, prefix: str, requests: int, pipeline: int
) -> Measure:
    keys = KeySpace(prefix, 16)
    ek = keys.event(EVENT)
    sk = ek.shard_keys
    await redis.hset(
        ek.inventory,
        mapping={"cap": CAPACITY, "avail": CAPACITY, "sold": 0, "held": 0, "mpu": CAPACITY},
    )
    await redis.hset(ek.inventory, "open", "1")
    sha = await redis.script_load(script_source("book"))
    key_args = [ek.inventory, ek.users, sk.bookings, sk.outbox, sk.pending, f"{sk.tag}:idem:x"]
    key_args += [sk.stats, sk.changed]
    argv = [str(EVENT), "__rand_int__", "1", str(ek.shard), "abcdef", "", "86400"]
    argv += [str(SHARD_SPACE), "0"]
    once = [a.replace("__rand_int__", "1") for a in argv]
    first = await redis.evalsha(sha, len(key_args), *key_args, *once)
    if first[0] != b"ok":
        raise RuntimeError(f"book.lua answered {first!r}, not ok: the ceiling would be wrong")
    sold_before = int(await redis.hget(ek.inventory, "sold") or 0)
    meter = CpuMeter({}, await _redis_cpu(redis)).start()
    args = ["-n", str(requests), "-c", "50", "-r", "100000000", "-P", str(pipeline), "--csv"]
    proc = await asyncio.create_subprocess_exec(
        "redis-benchmark",
        *_connection_args(redis_url),
        *args,
        "EVALSHA",
        sha,
        str(len(key_args)),
        *key_args,
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"redis-benchmark failed: {err.decode(errors='replace')}")
    cpu = meter.stop(await _redis_cpu(redis))
    rows = list(csv.DictReader(io.StringIO(out.decode())))
    row = rows[-1]
    sold = int(await redis.hget(ek.inventory, "sold") or 0) - sold_before
    rate = float(row["rps"])
    # UNLINK: freeing 400,000 records in the call itself outlasted the client timeout here.
    await redis.unlink(*key_args)
    piped = f" -P {pipeline}" if pipeline > 1 else ""
    return Measure(
        name=f"ceiling: redis-benchmark EVALSHA book.lua{piped or ', not pipelined'}",
        generator=f"redis-benchmark (-c 50 -n {requests}{piped})",
        ok=sold,
        seconds=requests / rate,
        p50=float(row["p50_latency_ms"]),
        p99=float(row["p99_latency_ms"]),
        not_ok={"not booked": requests - sold} if sold != requests else {},
        cpu=cpu,
    )


async def _redis_cpu(redis: Redis) -> float:
    info = await redis.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
