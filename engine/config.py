"""One configuration object, read once from the environment at start-up and passed down.

The original's variable names (DATABASE_URL, REDIS_URL, JWT_SECRET, PORT) are kept; everything
else is BOXOFFICE_*. A missing or bad value raises ConfigError with one line that names it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/boxoffice"
# BOXOFFICE_DURABILITY=wait:N:MS bounds: two WAITs in line stay under the 2 s Redis timeout.
MIN_WAIT_MS, MAX_WAIT_MS = 1, 500
# The placeholders of the original's README and ours: never a real secret.
PLACEHOLDER_SECRETS = frozenset(
    {"replace-with-a-long-random-string", "replace-with-a-long-random-string-of-32-bytes-or-more"}
)


class ConfigError(ValueError):
    """A configuration value is missing or malformed; the message is one line for an operator."""


@dataclass(frozen=True)
class Setting:
    """How one field is read: its variable name, what it means, and whether it is required."""

    env: str
    doc: str
    required: bool = False


def _setting(default: Any, env: str, doc: str, required: bool = False) -> Any:
    return field(default=default, metadata={"setting": Setting(env, doc, required)})


@dataclass(frozen=True)
class Config:
    """Every tunable of the service. Field metadata drives parsing and the docs reference."""

    database_url: str = _setting(DEFAULT_DATABASE_URL, "DATABASE_URL", "Postgres DSN (asyncpg).")
    redis_url: str = _setting(
        DEFAULT_REDIS_URL,
        "REDIS_URL",
        "Redis URL: redis://, rediss:// or unix://; redis+cluster://host:port for a Redis Cluster.",
    )
    jwt_secret: str = _setting("", "JWT_SECRET", "HS256 signing secret for access tokens.", True)
    port: int = _setting(3000, "PORT", "HTTP port of `boxoffice serve`.")
    host: str = _setting("127.0.0.1", "BOXOFFICE_HOST", "HTTP bind address.")
    key_prefix: str = _setting("bo", "BOXOFFICE_KEY_PREFIX", "Prefix of every Redis key.")
    shard_count: int = _setting(16, "BOXOFFICE_SHARDS", "Outbox/inventory shards (1..1024).")
    jwt_ttl_seconds: int = _setting(
        900,
        "BOXOFFICE_JWT_TTL",
        "Access token lifetime, seconds (renew with POST /api/auth/refresh).",
    )
    refresh_ttl_seconds: int = _setting(
        1_209_600,
        "BOXOFFICE_REFRESH_TTL",
        "Refresh token lifetime, seconds (14 days); each refresh rotates it.",
    )
    account_cache_seconds: int = _setting(
        60,
        "BOXOFFICE_ACCOUNT_CACHE_SECONDS",
        "Backstop age of a cached account state (role, token version, logouts); changes"
        " evict at once by Postgres NOTIFY, or within 2 s if that listener is lost.",
    )
    argon2_memory_kib: int = _setting(19456, "BOXOFFICE_ARGON2_MEMORY_KIB", "argon2id memory.")
    argon2_time_cost: int = _setting(2, "BOXOFFICE_ARGON2_TIME_COST", "argon2id iterations.")
    argon2_parallelism: int = _setting(1, "BOXOFFICE_ARGON2_PARALLELISM", "argon2id lanes.")
    idempotency_ttl_seconds: int = _setting(
        86400, "BOXOFFICE_IDEMPOTENCY_TTL", "How long an Idempotency-Key replays its answer."
    )
    hold_ttl_seconds: int = _setting(
        600, "BOXOFFICE_HOLD_TTL_SECONDS", "How long a hold keeps its seats unless told otherwise."
    )
    hold_ttl_max_seconds: int = _setting(
        1800, "BOXOFFICE_HOLD_TTL_MAX_SECONDS", "The longest `ttlSeconds` a client may ask for."
    )
    hold_rate_user: str = _setting(
        "10/minute", "BOXOFFICE_HOLD_RATE_USER", "Hold requests per user (429 beyond)."
    )
    hold_rate_ip: str = _setting(
        "30/minute", "BOXOFFICE_HOLD_RATE_IP", "Hold requests per client IP (429 beyond)."
    )
    hold_max_seats_user: int = _setting(
        6, "BOXOFFICE_HOLD_MAX_SEATS_USER", "Seats one user may hold at once, all events."
    )
    hold_max_seats_ip: int = _setting(
        12, "BOXOFFICE_HOLD_MAX_SEATS_IP", "Seats one client IP may hold at once, all events."
    )
    hold_cooldown_seconds: int = _setting(
        300,
        "BOXOFFICE_HOLD_COOLDOWN_SECONDS",
        "After a hold is released or lapses, its user waits this long to hold that event again.",
    )
    max_body_bytes: int = _setting(65536, "BOXOFFICE_MAX_BODY_BYTES", "Request body cap (413).")
    keepalive_seconds: int = _setting(
        15,
        "BOXOFFICE_KEEPALIVE_SECONDS",
        "A connection idle this long, or whose request headers have not all arrived in this"
        " long, is closed (aiohttp's keep-alive timer; its default was an hour).",
    )
    body_deadline_seconds: int = _setting(
        10,
        "BOXOFFICE_BODY_DEADLINE_SECONDS",
        "Whole request body read deadline, seconds (408 and the connection closed).",
    )
    events_cache_seconds: int = _setting(
        60, "BOXOFFICE_EVENTS_CACHE_SECONDS", "TTL of the cached event list."
    )
    batch_size: int = _setting(1000, "BOXOFFICE_BATCH_SIZE", "Persister records per batch.")
    batch_wait_ms: int = _setting(
        50,
        "BOXOFFICE_BATCH_WAIT_MS",
        "Persister pause between rounds that found no full batch, milliseconds (lets "
        "records gather: fewer, larger writes; adds up to this much confirm-to-Postgres lag).",
    )
    persister_nice: int = _setting(
        10,
        "BOXOFFICE_PERSISTER_NICE",
        "CPU niceness `boxoffice persist` gives itself (0-19; 0 leaves it): write-behind "
        "yields the CPU to API processes on the same host.",
    )
    persister_parallel: int = _setting(
        4,
        "BOXOFFICE_PERSISTER_PARALLEL",
        "Shard groups written at once, a transaction and a connection each.",
    )
    evict_persisted: bool = _setting(
        True,
        "BOXOFFICE_EVICT_PERSISTED",
        "Drop a booking's record from Redis once Postgres has it (reads fall back to Postgres).",
    )
    lease_ttl_ms: int = _setting(5000, "BOXOFFICE_LEASE_TTL_MS", "Persister shard lease TTL.")
    db_pool_size: int = _setting(10, "BOXOFFICE_DB_POOL_SIZE", "asyncpg pool max size.")
    auto_rebuild: bool = _setting(
        True, "BOXOFFICE_AUTO_REBUILD", "Rebuild missing inventory from Postgres by itself."
    )
    epoch_check_ms: int = _setting(
        500, "BOXOFFICE_EPOCH_CHECK_MS", "How often each API process checks Redis is whole."
    )
    rebuild_grace_ms: int = _setting(
        2000,
        "BOXOFFICE_REBUILD_GRACE_MS",
        "Wait after noticing Redis data loss before rebuilding (other processes flush first).",
    )
    durability: str = _setting(
        "none",
        "BOXOFFICE_DURABILITY",
        "`none`, or `wait:N[:MS]`: after each booking script, WAIT for N replicas"
        " (MS timeout, 1-500, default 100).",
    )
    rate_limits: str = _setting(
        "on", "BOXOFFICE_RATE_LIMITS", "`on` or `off` (benchmarks turn them off)."
    )
    rate_login_ip: str = _setting(
        "20/minute", "BOXOFFICE_RATE_LOGIN_IP", "Login attempts per client IP."
    )
    rate_login_email: str = _setting(
        "50/15 minutes",
        "BOXOFFICE_RATE_LOGIN_EMAIL",
        "Failed logins per email from all networks that mark the account as under attack:"
        " then every network that failed for it is refused (clean networks never are).",
    )
    rate_login_network: str = _setting(
        "10/15 minutes",
        "BOXOFFICE_RATE_LOGIN_NETWORK",
        "Failed logins per (email, client /24 or /64) before that network is refused for"
        " that email, until the window has passed since its last failure.",
    )
    login_free_failures: int = _setting(
        3,
        "BOXOFFICE_LOGIN_FREE_FAILURES",
        "Failures per (email, network) before each attempt waits 2^(n-free) s (max 60 s).",
    )
    rate_register_ip: str = _setting(
        "10/minute", "BOXOFFICE_RATE_REGISTER_IP", "Registrations per client IP."
    )
    rate_book_user: str = _setting(
        "60/minute", "BOXOFFICE_RATE_BOOK_USER", "Booking attempts per user."
    )
    metrics_token: str = _setting(
        "",
        "BOXOFFICE_METRICS_TOKEN",
        "Bearer token /metrics on the API port asks for; unset: /metrics answers 404 there"
        " (except with BOXOFFICE_ENV=dev).",
    )
    metrics_port: int = _setting(
        0, "BOXOFFICE_METRICS_PORT", "Serve /metrics, without a token, on this port (0: no)."
    )
    metrics_host: str = _setting(
        "127.0.0.1", "BOXOFFICE_METRICS_HOST", "Bind address of BOXOFFICE_METRICS_PORT."
    )
    cors_origins: str = _setting(
        "*", "BOXOFFICE_CORS_ORIGINS", "Comma-separated allowed origins; `*` any; `none` off."
    )
    redis_timeout_ms: int = _setting(
        1000, "BOXOFFICE_REDIS_TIMEOUT_MS", "Timeout of every Redis call (then 503)."
    )
    db_timeout_ms: int = _setting(
        3000, "BOXOFFICE_DB_TIMEOUT_MS", "Timeout of every Postgres call (then 503)."
    )
    log_level: str = _setting("info", "BOXOFFICE_LOG_LEVEL", "debug, info, warning or error.")
    env: str = _setting("prod", "BOXOFFICE_ENV", "`dev` relaxes secret checks.")

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        require_secret: bool = True,
        **overrides: Any,
    ) -> Config:
        """Read every field from `environ` (default os.environ); `overrides` win over both.
        Commands that issue no tokens (migrate, persist, create-admin) pass require_secret=False."""
        source = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            setting: Setting = f.metadata["setting"]
            if f.name in overrides:
                values[f.name] = overrides[f.name]
                continue
            raw = source.get(setting.env)
            if raw is None or raw == "":
                continue
            values[f.name] = _parse(setting.env, raw, f.default)
        config = cls(**values)
        config.validate(require_secret)
        return config

    def validate(self, require_secret: bool = True) -> None:
        if require_secret:
            self._validate_secret()
        if not 1 <= self.shard_count <= 1024:
            raise ConfigError(f"BOXOFFICE_SHARDS must be 1..1024, got {self.shard_count}")
        if not 1 <= self.port <= 65535:
            raise ConfigError(f"PORT must be 1..65535, got {self.port}")
        if not 0 <= self.persister_nice <= 19:
            raise ConfigError(f"BOXOFFICE_PERSISTER_NICE must be 0..19, got {self.persister_nice}")
        for name in (
            "batch_size",
            "lease_ttl_ms",
            "db_pool_size",
            "jwt_ttl_seconds",
            "refresh_ttl_seconds",
            "body_deadline_seconds",
            "keepalive_seconds",
            "hold_max_seats_user",
            "hold_max_seats_ip",
            "account_cache_seconds",
            "persister_parallel",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{_env_of(name)} must be positive")
        if not 1 <= self.hold_ttl_seconds <= self.hold_ttl_max_seconds:
            raise ConfigError(
                "BOXOFFICE_HOLD_TTL_SECONDS must be 1..BOXOFFICE_HOLD_TTL_MAX_SECONDS"
                f" ({self.hold_ttl_max_seconds}), got {self.hold_ttl_seconds}"
            )
        _ = self.wait_replicas
        if self.rate_limits not in {"on", "off"}:
            raise ConfigError(f"BOXOFFICE_RATE_LIMITS must be on or off, got {self.rate_limits!r}")
        if not self.key_prefix or "{" in self.key_prefix or "}" in self.key_prefix:
            raise ConfigError("BOXOFFICE_KEY_PREFIX must be non-empty and contain no braces")

    @property
    def wait_replicas(self) -> tuple[int, int] | None:
        """(replicas, timeout ms) for `wait:N[:MS]`, None for `none`."""
        if self.durability == "none":
            return None
        parts = self.durability.split(":")
        try:
            if parts[0] != "wait" or len(parts) not in (2, 3):
                raise ValueError
            replicas = int(parts[1])
            timeout = int(parts[2]) if len(parts) == 3 else 100
            # WAIT 0 blocks forever, and a WAIT longer than the engine's Redis timeout (2 s)
            # would fail every call queued behind it on the wire.
            if replicas < 1 or not MIN_WAIT_MS <= timeout <= MAX_WAIT_MS:
                raise ValueError
        except ValueError:
            raise ConfigError(
                f"BOXOFFICE_DURABILITY must be none or wait:N[:MS] (N >= 1, MS from"
                f" {MIN_WAIT_MS} to {MAX_WAIT_MS}), got {self.durability!r}"
            ) from None
        return replicas, timeout

    def _validate_secret(self) -> None:
        if not self.jwt_secret:
            raise ConfigError("JWT_SECRET is not set: export a long random string")
        if self.env == "dev":
            return
        if len(self.jwt_secret.encode()) < 32:
            raise ConfigError(
                "JWT_SECRET is shorter than 32 bytes (set BOXOFFICE_ENV=dev to allow)"
            )
        if self.jwt_secret in PLACEHOLDER_SECRETS:
            raise ConfigError("JWT_SECRET is the documented placeholder: set a random one")

    @staticmethod
    def reference() -> list[Setting]:
        """Every setting, in declaration order (used by the docs and the README table)."""
        return [f.metadata["setting"] for f in fields(Config)]


def _env_of(name: str) -> str:
    for f in fields(Config):
        if f.name == name:
            setting: Setting = f.metadata["setting"]
            return setting.env
    raise KeyError(name)


def _parse(env: str, raw: str, default: Any) -> Any:
    if isinstance(default, bool):
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    if isinstance(default, int):
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{env} must be an integer, got {raw!r}") from None
    return raw
