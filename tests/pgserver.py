"""A private PostgreSQL server for tests that must stop and start the real thing.

Built from the system binaries (initdb, pg_ctl) in a temporary directory, on a free port,
listening on 127.0.0.1 only, with fsync off. Postgres refuses to run as root, so when the tests
run as root every server command runs as the `postgres` OS user.

    server = PgServer.create(root, FAST_SETTINGS)  # PgUnavailable when it cannot be built
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
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.embedded import PgServer, Unavailable

__all__ = ["PgServer", "PgUnavailable", "pg_server_or_skip"]

# Speed over durability: the server lives for one test.
FAST_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "50",
    "shared_buffers": "32MB",
}
PgUnavailable = Unavailable


@contextlib.contextmanager
def pg_server_or_skip() -> Iterator[PgServer]:
    """A started private server, cleaned up afterwards. Skips the test when one cannot be built
    here, except under CI (env CI set), where that is a failure."""
    try:
        server = PgServer.create(Path(tempfile.mkdtemp(prefix="bo-pg-")), FAST_SETTINGS)
    except PgUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"private PostgreSQL server unavailable under CI: {exc}")
        pytest.skip(f"private PostgreSQL server unavailable: {exc}")
    try:
        server.start()
        yield server
    finally:
        server.cleanup()
