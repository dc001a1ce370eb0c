"""A private redis-server for tests that must stop, restart or wipe one (never the shared one).
The same class `boxoffice run` uses for its embedded default."""

from __future__ import annotations

from api.embedded import RedisServer

__all__ = ["RedisServer"]
