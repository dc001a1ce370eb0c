"""A private PostgreSQL server for tests that must stop and start the real thing.

Built from the system binaries (initdb, pg_ctl) in a temporary directory, on a free port,
listening on 127.0.0.1 only, with fsync off. Postgres refuses to run as root, so when the tests
run as root every server command runs as the `postgres` OS user.

    server = PgServer.create()      # raises PgUnavailable when it cannot be built here
    server.start(); server.dsn      # postgresql://postgres@127.0.0.1:<port>/postgres
    server.stop()                   # pg_ctl stop -m fast (the data directory stays)
    server.cleanup()                # stop and remove the directory

Tests get one through a fixture in their own module, e.g.:

    @pytest.fixture
    def private_pg():
        with pg_server_or_skip() as server:
            yield server
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import free_port

SERVER_USER = "postgres"
# Speed over durability: the server lives for one test.
SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "50",
    "shared_buffers": "32MB",
}


class PgUnavailable(RuntimeError):
    """A private server cannot be built on this machine (no binaries, no server user...)."""


def find_bindir() -> Path:
    """PG_BINDIR, else the newest /usr/lib/postgresql/<version>/bin, else pg_ctl on PATH."""
    candidates: list[str] = []
    if os.environ.get("PG_BINDIR"):
        candidates.append(os.environ["PG_BINDIR"])
    versions = glob.glob("/usr/lib/postgresql/*/bin")
    candidates.extend(sorted(versions, key=_version_of, reverse=True))
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(str(Path(on_path).parent))
    for candidate in candidates:
        bindir = Path(candidate)
        if all(os.access(bindir / tool, os.X_OK) for tool in ("initdb", "pg_ctl", "postgres")):
            return bindir
    raise PgUnavailable(
        "no PostgreSQL server binaries (initdb, pg_ctl) in PG_BINDIR, /usr/lib/postgresql/*/bin"
        " or PATH"
    )


def _version_of(bindir: str) -> tuple[int, ...]:
    version = Path(bindir).parent.name
    return tuple(int(p) for p in version.split(".") if p.isdigit())


class PgServer:
    """One private cluster: data directory, socket directory and log under `root`."""

    def __init__(self, bindir: Path, root: Path, port: int, run_as: str | None) -> None:
        self.bindir = bindir
        self.root = root
        self.port = port
        self.run_as = run_as
        self.data = root / "data"
        self.sockets = root / "sockets"
        self.log = root / "postgres.log"
        self.running = False

    @classmethod
    def create(cls, bindir: Path | None = None) -> PgServer:
        """initdb a new cluster in a temporary directory (not started yet)."""
        bindir = bindir or find_bindir()
        run_as = None
        if os.geteuid() == 0:
            try:
                user = pwd.getpwnam(SERVER_USER)
            except KeyError:
                raise PgUnavailable(
                    f"running as root and there is no {SERVER_USER!r} OS user to run postgres"
                ) from None
            if shutil.which("runuser") is None:
                raise PgUnavailable("running as root and `runuser` is missing")
            run_as = SERVER_USER
        root = Path(tempfile.mkdtemp(prefix="bo-pg-"))
        server = cls(bindir, root, free_port(), run_as)
        try:
            server.sockets.mkdir()
            if run_as is not None:
                for path in (root, server.sockets):
                    os.chown(path, user.pw_uid, user.pw_gid)
            server._run(
                "initdb",
                "-D",
                str(server.data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
                timeout=120,
            )
            server._write_settings()
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        return server

    @property
    def dsn(self) -> str:
        return self.dsn_for("postgres")

    def dsn_for(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self, timeout: int = 60) -> None:
        """Start and wait until it accepts connections. A port taken meanwhile by someone
        else is replaced by a new free one (only before the first start)."""
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
        """pg_ctl stop -m <mode>, waiting until the server is gone."""
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
        settings = {
            **SETTINGS,
            "port": str(self.port),
            "unix_socket_directories": f"'{self.sockets}'",
        }
        # Later lines win in postgresql.conf, so appending again (new port) is fine.
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("\n# tests/pgserver.py\n")
            conf.writelines(f"{k} = {v}\n" for k, v in settings.items())

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


@contextlib.contextmanager
def pg_server_or_skip() -> Iterator[PgServer]:
    """A started private server, cleaned up afterwards. Skips the test when one cannot be built
    here, except under CI (env CI set), where that is a failure."""
    try:
        server = PgServer.create()
    except PgUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"private PostgreSQL server unavailable under CI: {exc}")
        pytest.skip(f"private PostgreSQL server unavailable: {exc}")
    try:
        server.start()
        yield server
    finally:
        server.cleanup()
