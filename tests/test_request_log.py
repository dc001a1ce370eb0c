"""The request log: one JSON line per request, with its request id, only when info is on."""

from __future__ import annotations

import json

import pytest
import structlog

from api.logs import configure_logging

pytestmark = pytest.mark.asyncio(loop_scope="session")


def _request_lines(text: str) -> list[dict[str, object]]:
    lines = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("event") == "request":
            lines.append(entry)
    return lines


def _configure(level: str) -> None:
    """The service's configuration, but printing to the stdout of the moment and caching no
    logger: a cached one would keep this test's captured stream after it closes."""
    configure_logging(level)
    structlog.configure(
        cache_logger_on_first_use=False, logger_factory=structlog.PrintLoggerFactory()
    )


async def test_request_lines_follow_the_log_level(client, capsys):
    try:
        _configure("info")
        capsys.readouterr()
        await client.get("/healthz", headers={"X-Request-Id": "rid-info-1"})
        logged = _request_lines(capsys.readouterr().out)
        assert [e["request_id"] for e in logged] == ["rid-info-1"]
        assert logged[0]["status"] == 200 and logged[0]["route"] == "/healthz"

        _configure("warning")
        await client.get("/healthz", headers={"X-Request-Id": "rid-warning-1"})
        assert _request_lines(capsys.readouterr().out) == []
    finally:
        configure_logging("info")
        structlog.reset_defaults()
