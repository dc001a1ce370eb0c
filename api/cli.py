"""The `boxoffice` command: serve, persist, migrate, create-admin, run."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import getpass
import os
import secrets
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import prometheus_client
from aiohttp import web
from tqdm import tqdm

from api.app import init_app
from api.devrun import announce, prepare, start_local_servers
from api.emails import canonical_email
from api.embedded import LocalStack, Unavailable
from api.logs import configure_logging
from api.passwords import Passwords
from api.seeding import seed_events
from api.watch import InventoryWatcher
from api.workers import supervise
from engine.booking import Engine
from engine.config import Config, ConfigError
from engine.keys import KeySpace
from engine.recovery import Recovery
from engine.redis_client import connect
from persistence import queries
from persistence.db import create_pool, ensure_database, migrate_dsn
from persistence.reconcile import Reconciler
from persistence.runner import open_persister, run_persister
from persistence.writer import prepare_connection

DATA_DIR = Path(os.environ.get("BOXOFFICE_DATA_DIR", ".boxoffice"))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="boxoffice", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP API")
    serve.add_argument("--host", default=None, help="bind address (BOXOFFICE_HOST)")
    serve.add_argument("--port", type=int, default=None, help="port (PORT, default 3000)")
    serve.add_argument(
        "--workers", type=int, default=1, help="API processes sharing the port (SO_REUSEPORT)"
    )
    serve.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    persist = sub.add_parser("persist", help="run the write-behind persister")
    persist.add_argument("--once", action="store_true", help="drain every shard once and exit")
    persist.add_argument(
        "--metrics-port", type=int, default=0, help="serve Prometheus metrics on this port"
    )
    sub.add_parser("migrate", help="create the database if needed and apply migrations")
    admin = sub.add_parser("create-admin", help="create or promote an ADMIN user")
    admin.add_argument("email")
    admin.add_argument("--password", help="password (else BOXOFFICE_ADMIN_PASSWORD or a prompt)")
    admin.add_argument("--name", default="Admin")
    reconcile = sub.add_parser(
        "reconcile", help="report drift between Redis and Postgres; --repair fixes it"
    )
    reconcile.add_argument(
        "--repair", action="store_true", help="repair drifted events, rebuild missing inventory"
    )
    seed = sub.add_parser("seed", help="create demo or load-test events (with inventory)")
    seed.add_argument("--events", type=int, default=10, help="how many events (default 10)")
    seed.add_argument("--capacity", type=int, default=100, help="seats each (default 100)")
    seed.add_argument("--max-per-user", type=int, default=1, help="seats per user (default 1)")
    run = sub.add_parser("run", help="API and persister in one process (development)")
    run.add_argument("--host", default=None)
    run.add_argument("--port", type=int, default=None)
    run.add_argument(
        "--embedded",
        choices=["auto", "always", "never"],
        default="auto",
        help="private Redis/Postgres under the data folder: when nothing else is there (auto)",
    )
    return parser


def _dev_secret() -> str:
    """`run` is for development: without JWT_SECRET it keeps a generated one in the data dir."""
    path = DATA_DIR / "jwt-secret"
    if not path.exists():
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


def load_config(command: str, args: argparse.Namespace) -> Config:
    overrides: dict[str, Any] = {}
    if getattr(args, "host", None):
        overrides["host"] = args.host
    if getattr(args, "port", None):
        overrides["port"] = args.port
    if command == "run" and not os.environ.get("JWT_SECRET"):
        overrides["jwt_secret"] = _dev_secret()
    return Config.from_env(require_secret=command in {"serve", "run"}, **overrides)


def _serve(config: Config, with_persister: bool, reuse_port: bool = False) -> int:
    _install_uvloop()
    asyncio.run(ensure_database(config.database_url))
    app = init_app(config)
    if with_persister:
        app.cleanup_ctx.append(_persister_ctx(config))
    app.on_startup.append(_freeze_startup_objects)
    print(f"boxoffice listening on http://{config.host}:{config.port}", file=sys.stderr)
    web.run_app(
        app,
        host=config.host,
        port=config.port,
        access_log=None,
        print=None,
        reuse_port=reuse_port or None,
        keepalive_timeout=config.keepalive_seconds,  # also the header-read deadline
    )
    return 0


async def _freeze_startup_objects(app: web.Application) -> None:
    """What start-up built (modules, routes, pools) lives as long as the process: move it out
    of the collector's view so full collections under load walk only request garbage."""
    gc.collect()
    gc.freeze()


def _without_workers(argv: list[str]) -> list[str]:
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--workers":
            skip = True
        elif not arg.startswith("--workers="):
            out.append(arg)
    return out


def _run(args: argparse.Namespace) -> int:
    stack = LocalStack(DATA_DIR)
    try:
        urls = start_local_servers(stack, args.embedded, os.environ)
        config = dataclasses.replace(
            load_config("run", args),
            redis_url=urls["redis_url"],
            database_url=urls["database_url"],
        )
        login = prepare(config, DATA_DIR)
        announce(config, login, stack)
        return _serve(config, with_persister=True)
    finally:
        stack.stop()


def _persister_ctx(config: Config):  # type: ignore[no-untyped-def]
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        persister, redis, pool = await open_persister(config)
        stop = asyncio.Event()
        task = asyncio.create_task(persister.run(stop))
        yield
        stop.set()
        await task
        await pool.close()
        await redis.aclose()

    return ctx


def _install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - optional on platforms without it
        return
    uvloop.install()


async def _create_admin(config: Config, email: str, password: str | None, name: str) -> str:
    await ensure_database(config.database_url)
    await migrate_dsn(config.database_url)
    pool = await create_pool(config.database_url, max_size=1)
    try:
        passwords = Passwords(
            config.argon2_memory_kib, config.argon2_time_cost, config.argon2_parallelism
        )
        email = canonical_email(email)  # the spelling the API registers and logs in with
        hashed = await passwords.hash(password) if password else None
        row = await queries.user_by_email(pool, email)
        if row is not None:
            await queries.set_role(pool, row["id"], "ADMIN", hashed)
            return f"promoted {email} to ADMIN"
        if hashed is None:
            raise ConfigError(
                "a new admin needs a password (--password or BOXOFFICE_ADMIN_PASSWORD)"
            )
        await queries.create_user(pool, email, name, hashed, "ADMIN")
        return f"created ADMIN {email}"
    finally:
        await pool.close()


async def _reconcile(config: Config, repair: bool) -> int:
    """Report (and repair) drift with a progress bar; exit 1 if drift remains unrepaired."""
    redis = connect(config.redis_url)
    pool = await create_pool(config.database_url, max_size=2, init=prepare_connection)
    try:
        engine = Engine(redis, KeySpace(config.key_prefix, config.shard_count))
        reconciler = Reconciler(pool, engine)
        total = len(await reconciler.events())
        with tqdm(total=total, unit="event", desc="reconcile", file=sys.stderr) as bar:
            if repair:
                # Redis lost data, came back older or is frozen: the whole recovery the API's
                # watcher runs (records, counters, ticks, epoch, thaw), then the repair.
                watcher = InventoryWatcher(config, pool, engine)
                current = await watcher.recovery.epoch()
                watcher.expected = await reconciler.stored_epoch() or (
                    await reconciler.store_epoch(current or Recovery.new_epoch())
                )
                if await watcher.trouble() is not None:
                    await watcher.recover()
                report, repaired = await reconciler.repair_all(progress=bar.update)
                recovered = {d.event_id for d in watcher.last_repaired}
                report = [
                    *watcher.last_repaired,
                    *(d for d in report if d.event_id not in recovered),
                ]
                repaired = [*watcher.last_repaired, *repaired]
            else:
                report, repaired = await reconciler.report(progress=bar.update), []
        drifted = [d for d in report if d.drifted]
        for d in drifted:
            print(
                f"event {d.event_id}: loaded={d.loaded} sold drift={d.sold_drift}"
                f" available drift={d.available_drift} capacity drift={d.capacity_drift}"
                f" users drifted={sum(1 for v in d.user_drift.values() if v)}"
            )
        print(f"{len(report)} events, {len(drifted)} drifted, {len(repaired)} repaired")
        return 0 if len(repaired) == len(drifted) else 1
    finally:
        await pool.close()
        await redis.aclose()


def _admin_password(args: argparse.Namespace) -> str | None:
    password: str | None = args.password or os.environ.get("BOXOFFICE_ADMIN_PASSWORD")
    if password is None and sys.stdin.isatty():
        password = getpass.getpass(f"Password for {args.email} (empty to only promote): ") or None
    return password


def _cmd_serve(args: argparse.Namespace, config: Config, argv: Sequence[str]) -> int:
    if args.workers > 1:
        passed = [a for a in argv if a != "serve"]
        return supervise(_without_workers(passed), args.workers)
    return _serve(config, with_persister=False, reuse_port=args.reuse_port)


def _cmd_persist(args: argparse.Namespace, config: Config, argv: Sequence[str]) -> int:
    _install_uvloop()
    if args.metrics_port:
        prometheus_client.start_http_server(args.metrics_port, addr=config.host)
    return asyncio.run(run_persister(config, once=args.once))


def _cmd_migrate(args: argparse.Namespace, config: Config, argv: Sequence[str]) -> int:
    asyncio.run(ensure_database(config.database_url))
    applied = asyncio.run(migrate_dsn(config.database_url))
    print("applied: " + (", ".join(applied) if applied else "nothing (up to date)"))
    return 0


def _cmd_seed(args: argparse.Namespace, config: Config, argv: Sequence[str]) -> int:
    if args.events < 1 or args.capacity < 0 or args.max_per_user < 1:
        raise ConfigError("seed needs --events >= 1, --capacity >= 0, --max-per-user >= 1")
    ids = asyncio.run(seed_events(config, args.events, args.capacity, args.max_per_user))
    print(f"created {len(ids)} events: ids {ids[0]}..{ids[-1]}")
    return 0


def _cmd_reconcile(args: argparse.Namespace, config: Config, argv: Sequence[str]) -> int:
    return asyncio.run(_reconcile(config, args.repair))


def _cmd_create_admin(args: argparse.Namespace, config: Config, argv: Sequence[str]) -> int:
    print(asyncio.run(_create_admin(config, args.email, _admin_password(args), args.name)))
    return 0


COMMANDS = {
    "serve": _cmd_serve,
    "run": lambda args, config, argv: _run(args),
    "persist": _cmd_persist,
    "migrate": _cmd_migrate,
    "seed": _cmd_seed,
    "reconcile": _cmd_reconcile,
    "create-admin": _cmd_create_admin,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = load_config(args.command, args)
        configure_logging(config.log_level)
        return int(COMMANDS[args.command](args, config, argv or sys.argv[1:]))
    except ConfigError as exc:
        print(f"boxoffice: configuration error: {exc}", file=sys.stderr)
        return 2
    except Unavailable as exc:
        print(f"boxoffice: cannot start a private server: {exc}", file=sys.stderr)
        return 3
    except (OSError, ConnectionError) as exc:
        print(f"boxoffice: cannot reach a dependency: {exc}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    raise SystemExit(main())
