"""One settings object, read from ``JOURNEYHUB_*`` environment variables.

A wrong value fails at start-up with a message that names the variable, never later.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import msgspec

from journeyhub.delivery.retry_policy import (
    DEFAULT_JITTER,
    DEFAULT_SCHEDULE,
    PolicyError,
    make_policy,
    parse_duration,
)

ENV_PREFIX = "JOURNEYHUB_"


class SettingsError(ValueError):
    """A setting has a value we cannot use; the message names the variable."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    data_dir: Path = Path(".journeyhub")
    database_url: str | None = None
    nats_url: str | None = None  # one URL, or a comma-separated list of a cluster's servers
    stream_replicas: int = 1  # JetStream replicas of every stream: 3 on a 3-node cluster
    secret_keys: tuple[str, ...] = ()
    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str | None = None  # how vendors reach the gateway; default http://host:port
    plugins: tuple[str, ...] | None = None
    trace_hooks: bool = False
    log_format: str | None = None  # json | console; None picks console on a TTY
    log_level: str = "info"
    subject_prefix: str = "jh"
    webhook_max_bytes: int = 1024 * 1024
    max_deliver: int = 8  # a received webhook's deliveries before its dead letter
    # A push's default retry policy (a connection's ``config.retry`` overrides it): the waits
    # before the 2nd, 3rd, … attempt, one attempt more than waits (delivery/retry_policy.py).
    retry_schedule: tuple[float, ...] = DEFAULT_SCHEDULE
    retry_jitter: float = DEFAULT_JITTER
    ack_wait_seconds: int = 30
    sync_tick_seconds: int = 2
    breaker_threshold: int = 5
    breaker_cooldown_seconds: int = 30
    dedupe_window_seconds: int = 600
    webhook_tolerance_seconds: int = 300
    events_rate_per_second: int = 1000  # per tenant and gateway process; 0 turns it off
    events_burst: int = 2000  # events a tenant may send at once above the rate
    # Retention, in days per kind of data; 0 keeps that kind for ever (``workers/retention.py``).
    retention_deliveries_days: int = 30  # delivery attempts
    retention_triggers_days: int = 30
    retention_audit_days: int = 365
    retention_dead_letters_days: int = 30  # replayed dead letters, from their replay
    retention_tasks_days: int = 7  # finished (delivered or dropped) tasks, from their end
    retention_events_days: int = 30  # journey events kept for resends and backfills
    retention_chart_samples_days: int = 2  # the backlog samples of the dashboard's charts
    chart_sample_seconds: int = 60  # one backlog sample per interval across all workers
    retention_interval_seconds: int = 3600  # one purge per interval across all workers
    # Incidents (``workers/incidents.py``): one evaluation per interval across all workers; a
    # connection's backlog has stalled when its oldest pending task waited this long; a sync
    # keeps failing after this many failed runs in a row; a condition gone this long resolves.
    incident_interval_seconds: int = 30
    incident_backlog_stall_seconds: int = 900
    incident_sync_failures: int = 3
    incident_resolve_after_seconds: int = 120
    retention_batch_size: int = 5000  # rows per delete transaction

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'journeyhub.db').resolve()}"

    @property
    def effective_public_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")


def _parse_bool(name: str, raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise SettingsError(f"{name}={raw!r} is not a boolean (use 1/0, true/false, yes/no)")


def _parse_int(name: str, raw: str, *, low: int, high: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not an integer") from None
    if not low <= value <= high:
        raise SettingsError(f"{name}={value} is out of range ({low}..{high})")
    return value


def _parse_list(raw: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in raw.split(",") if item.strip())


_INT_RANGES = {
    "port": (1, 65535),
    "webhook_max_bytes": (1024, 64 * 1024 * 1024),
    "max_deliver": (1, 1000),
    "ack_wait_seconds": (1, 3600),
    "sync_tick_seconds": (1, 3600),
    "breaker_threshold": (1, 1000),
    "breaker_cooldown_seconds": (1, 3600),
    "dedupe_window_seconds": (1, 7 * 24 * 3600),
    "stream_replicas": (1, 5),  # JetStream allows at most 5
    "webhook_tolerance_seconds": (1, 24 * 3600),
    "events_rate_per_second": (0, 10_000_000),
    "events_burst": (1, 100_000_000),
    "retention_interval_seconds": (1, 7 * 24 * 3600),
    "incident_interval_seconds": (1, 3600),
    "incident_backlog_stall_seconds": (1, 7 * 24 * 3600),
    "incident_sync_failures": (1, 1000),
    "incident_resolve_after_seconds": (0, 24 * 3600),
    "retention_batch_size": (1, 1_000_000),
    "chart_sample_seconds": (1, 3600),
}
# Days, or ``off`` (also 0): that kind of data is kept for ever.
_RETENTION_DAYS = (
    "retention_deliveries_days",
    "retention_triggers_days",
    "retention_audit_days",
    "retention_dead_letters_days",
    "retention_tasks_days",
    "retention_events_days",
    "retention_chart_samples_days",
)


def _parse_schedule(name: str, raw: str) -> tuple[float, ...]:
    """``5s,30s,2m,…``: the default retry waits, checked as a connection's would be."""
    try:
        schedule = tuple(parse_duration(item, name) for item in _parse_list(raw))
        if not schedule:
            raise PolicyError("must list at least one wait, e.g. 5s,30s,2m", name)
        make_policy(schedule, None, 0.0, name)
    except PolicyError as exc:
        raise SettingsError(f"{name}={raw!r}: {exc.message}") from None
    return schedule


def _parse_jitter(name: str, raw: str) -> float:
    try:
        jitter = float(raw)
    except ValueError:
        jitter = -1.0
    if not 0 <= jitter < 1:
        raise SettingsError(f"{name}={raw!r} must be a number from 0 up to (not including) 1")
    return jitter


def load_settings(env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Build settings from the environment (or ``env``), then apply explicit overrides
    (CLI options). Raises :class:`SettingsError` naming the variable on a bad value."""
    env = os.environ if env is None else env
    values: dict[str, object] = {}

    def get(key: str) -> tuple[str, str] | None:
        name = ENV_PREFIX + key.upper()
        raw = env.get(name)
        return None if raw is None else (name, raw)

    if found := get("data_dir"):
        values["data_dir"] = Path(found[1])
    if found := get("database_url"):
        name, raw = found
        if raw and not raw.startswith(("sqlite", "postgresql")):
            raise SettingsError(
                f"{name} must be a sqlite+aiosqlite:// or postgresql+psycopg:// URL, "
                f"not a {raw.split(':', 1)[0]!r} URL"
            )
        values["database_url"] = raw or None
    if found := get("nats_url"):
        name, raw = found
        urls = _parse_list(raw)
        for url in urls:
            if not url.startswith(("nats://", "tls://", "ws://", "wss://")):
                raise SettingsError(
                    f"{name}: {url!r} must start with nats://, tls://, ws:// or wss://"
                )
        values["nats_url"] = ",".join(urls) or None
    if found := get("secret_keys"):
        values["secret_keys"] = _parse_list(found[1])
    if found := get("host"):
        values["host"] = found[1]
    if found := get("public_url"):
        name, raw = found
        if not raw.startswith(("http://", "https://")):
            raise SettingsError(f"{name} must start with http:// or https://")
        values["public_url"] = raw
    for key, (low, high) in _INT_RANGES.items():
        if found := get(key):
            values[key] = _parse_int(found[0], found[1], low=low, high=high)
    for key in _RETENTION_DAYS:
        if found := get(key):
            name, raw = found
            off = raw.strip().lower() == "off"
            values[key] = 0 if off else _parse_int(name, raw, low=0, high=100 * 365)
    if found := get("retry_schedule"):
        values["retry_schedule"] = _parse_schedule(*found)
    if found := get("retry_jitter"):
        values["retry_jitter"] = _parse_jitter(*found)
    if found := get("plugins"):
        values["plugins"] = _parse_list(found[1]) or None
    if found := get("trace_hooks"):
        values["trace_hooks"] = _parse_bool(*found)
    if found := get("log_format"):
        name, raw = found
        if raw not in {"json", "console"}:
            raise SettingsError(f"{name}={raw!r} must be 'json' or 'console'")
        values["log_format"] = raw
    if found := get("log_level"):
        name, raw = found
        if raw.lower() not in {"debug", "info", "warning", "error"}:
            raise SettingsError(f"{name}={raw!r} must be debug, info, warning or error")
        values["log_level"] = raw.lower()
    if found := get("subject_prefix"):
        name, raw = found
        if not raw or any(c in raw for c in " .*>"):
            raise SettingsError(f"{name}={raw!r} must be one NATS token (no spaces, '.', '*', '>')")
        values["subject_prefix"] = raw
    values.update({k: v for k, v in overrides.items() if v is not None})
    replicas = values.get("stream_replicas", 1)
    if isinstance(replicas, int) and replicas > 1 and not values.get("nats_url"):
        raise SettingsError(
            f"{ENV_PREFIX}STREAM_REPLICAS={replicas} needs a NATS cluster in "
            f"{ENV_PREFIX}NATS_URL: the embedded nats-server is a single node"
        )
    return Settings(**values)  # type: ignore[arg-type]
