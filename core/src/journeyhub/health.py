"""The health of a connection, computed from the store: what ``GET /v1/connections/{id}/health``
answers, and what a dashboard shows. Everything here reads shared state (the store), so any
process (gateway, worker, dashboard) gives the same answer.

Definitions (each row of the ``deliveries`` table is one push attempt):

- **attempts**: every row of the window except ``replayed`` (a marker written when a dead
  letter is put back on the bus, not a call);
- **succeeded**: ``delivered`` + ``skipped`` (the plugin answered and nothing more is to be done);
- **errors**: every other attempt: ``failed`` (retryable, will be retried), ``rate_limited``
  (a 429 from the vendor), ``dead`` (given up: in the dead letters), ``needs_reauth`` (the
  vendor refused the credentials);
- **success_rate**: succeeded / attempts, ``None`` when there was no attempt;
- windows: the last hour and the last 24 hours before ``checked_at``;
- **latency**: p50 and p95 (nearest rank) of ``latency_ms`` of the successful attempts of the
  last 24 hours: the time of the vendor call itself, as ``journeyhub_vendor_call_seconds``;
- **last_success_at**: the last successful vendor call: a successful push, or the last sync
  when its result is ``ok`` (the store keeps the result of a connection's last sync only, so a
  failed sync hides the earlier good ones); **last_error_at**: the last error attempt of the
  last 24 hours;
- **connected**: enabled, not waiting for re-authorisation, breaker not open, and at least one
  successful vendor call;
- **endpoint_gone**: the endpoint answered 410 Gone, so the connection was disabled and nothing
  more is sent until a person re-enables it (the audit log has the answer);
- **pending_deliveries**: tasks routed to the connection and not finished (delivered, skipped
  or dead); **dead_letters**: its dead letters not replayed yet;
- **next_retry_at**: when the connection's oldest task waiting for a retry (given back after a
  failed attempt, a 429 or a refused login, as its retry policy says) is offered again, or
  later when the breaker is open or a 429 pause holds the connection until later; ``None``
  when no task waits for a retry. A time in the past: it is overdue (no worker is running).
"""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime, timedelta

import msgspec

from journeyhub.hub import Hub
from journeyhub.model import Connection, utcnow
from journeyhub.resilience.breaker import Breakers

SUCCESS_STATUSES = ("delivered", "skipped")
ERROR_STATUSES = ("failed", "rate_limited", "dead", "needs_reauth")
MARKER_STATUSES = ("replayed",)
HOUR = timedelta(hours=1)
DAY = timedelta(hours=24)


class BreakerHealth(msgspec.Struct, kw_only=True):
    state: str  # closed | open | half_open
    failures: int  # failures in a row
    opened_at: datetime | None
    reopens_at: datetime | None  # when an open breaker lets one probe through
    paused_until: datetime | None  # a vendor's Retry-After still in force


class SyncHealth(msgspec.Struct, kw_only=True):
    last_sync_at: datetime | None
    last_result: str | None
    ok: bool


class WindowStats(msgspec.Struct, kw_only=True):
    window_seconds: int
    attempts: int
    succeeded: int
    errors: int
    success_rate: float | None
    by_status: dict[str, int]


class LatencyStats(msgspec.Struct, kw_only=True):
    window_seconds: int
    samples: int
    p50_ms: float | None
    p95_ms: float | None


class ConnectionHealth(msgspec.Struct, kw_only=True):
    connection_id: str
    tenant_id: str
    vendor: str
    name: str
    enabled: bool
    status: str  # the connection's status: active | needs_reauth | gone
    connected: bool
    needs_reauth: bool
    endpoint_gone: bool = False
    last_success_at: datetime | None
    last_error_at: datetime | None
    breaker: BreakerHealth
    last_sync: SyncHealth | None  # None: never synced
    last_hour: WindowStats
    last_24h: WindowStats
    latency: LatencyStats
    pending_deliveries: int
    dead_letters: int
    next_retry_at: datetime | None = None
    checked_at: datetime


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..1) of ascending values; None when empty."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def _utc(moment: datetime | None) -> datetime | None:
    """SQLite hands timestamps back naive; they were written in UTC."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _iso(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value).astimezone(UTC) if value else None


def window(by_status: dict[str, int], seconds: float) -> WindowStats:
    attempts = sum(n for status, n in by_status.items() if status not in MARKER_STATUSES)
    succeeded = sum(by_status.get(status, 0) for status in SUCCESS_STATUSES)
    return WindowStats(
        window_seconds=int(seconds),
        attempts=attempts,
        succeeded=succeeded,
        errors=attempts - succeeded,
        success_rate=round(succeeded / attempts, 4) if attempts else None,
        by_status={status: n for status, n in sorted(by_status.items()) if n},
    )


def _breakers(hub: Hub) -> Breakers:
    # Breaker state lives in the store; this instance only reads it.
    return Breakers(
        hub.store,
        holder="health",
        threshold=hub.settings.breaker_threshold,
        cooldown=hub.settings.breaker_cooldown_seconds,
        cache_ttl=0.0,
    )


async def connection_health(
    hub: Hub, connection: Connection, *, now: datetime | None = None
) -> ConnectionHealth:
    """The health of one connection (see the module's docstring for the definitions)."""
    now = now or utcnow()
    deliveries = hub.store.deliveries
    counts = await deliveries.status_counts(connection.id, since=now - DAY, recent_since=now - HOUR)
    day = {c.status: c.count for c in counts}
    hour = {c.status: c.recent for c in counts}
    success_times = [_utc(c.last_at) for c in counts if c.status in SUCCESS_STATUSES]
    error_times = [
        _utc(c.last_at)
        for c in counts
        if c.status not in SUCCESS_STATUSES and c.status not in MARKER_STATUSES
    ]
    last_push = max((t for t in success_times if t), default=None)
    if last_push is None:  # older than the window, perhaps
        last_push = _utc(await deliveries.last_at(connection.id, SUCCESS_STATUSES))

    cursor = await hub.store.sync.cursor(connection.id)
    last_sync = None
    if cursor is not None and cursor.last_sync_at is not None:
        result = cursor.last_result
        last_sync = SyncHealth(
            last_sync_at=_utc(cursor.last_sync_at),
            last_result=result,
            ok=bool(result and result.startswith("ok")),
        )
    candidates = [last_push, last_sync.last_sync_at if last_sync and last_sync.ok else None]
    last_success = max((t for t in candidates if t), default=None)

    breakers = _breakers(hub)
    snapshot = await breakers.snapshot(connection.id)
    state = await breakers.state(connection.id)
    paused = (
        datetime.fromtimestamp(state.paused_until, UTC)
        if state.paused_until > now.timestamp()
        else None
    )
    breaker = BreakerHealth(
        state=snapshot["state"],
        failures=snapshot["failures"],
        opened_at=_iso(snapshot["opened_at"]),
        reopens_at=_iso(snapshot["reopens_at"]),
        paused_until=paused,
    )

    latencies = await deliveries.latencies_ms(
        connection.id, since=now - DAY, statuses=SUCCESS_STATUSES
    )
    pending = await hub.store.tasks.pending_count(connection.id)
    next_retry = _utc(await hub.store.tasks.next_retry_at(connection.id))
    if next_retry is not None:  # nothing is tried before the breaker lets it through
        held_until = [breaker.reopens_at if breaker.state == "open" else None, paused]
        next_retry = max([next_retry, *(t for t in held_until if t)])
    dead = await deliveries.count_dead(
        connection.tenant_id, connection_id=connection.id, pending_only=True
    )
    needs_reauth = connection.status == "needs_reauth"
    return ConnectionHealth(
        connection_id=connection.id,
        tenant_id=connection.tenant_id,
        vendor=connection.vendor,
        name=connection.name,
        enabled=connection.enabled,
        status=connection.status,
        connected=connection.enabled
        and not needs_reauth
        and breaker.state != "open"
        and last_success is not None,
        needs_reauth=needs_reauth,
        endpoint_gone=connection.status == "gone",
        last_success_at=last_success,
        last_error_at=max((t for t in error_times if t), default=None),
        breaker=breaker,
        last_sync=last_sync,
        last_hour=window(hour, HOUR.total_seconds()),
        last_24h=window(day, DAY.total_seconds()),
        latency=LatencyStats(
            window_seconds=int(DAY.total_seconds()),
            samples=len(latencies),
            p50_ms=percentile(latencies, 0.50),
            p95_ms=percentile(latencies, 0.95),
        ),
        pending_deliveries=pending,
        dead_letters=dead,
        next_retry_at=next_retry,
        checked_at=now,
    )


async def tenant_health(
    hub: Hub, tenant_id: str, *, now: datetime | None = None, concurrency: int = 8
) -> list[ConnectionHealth]:
    """The health of every connection of a tenant, in the order they were created."""
    now = now or utcnow()
    semaphore = asyncio.Semaphore(concurrency)

    async def one(connection: Connection) -> ConnectionHealth:
        async with semaphore:
            return await connection_health(hub, connection, now=now)

    connections = await hub.store.connections.list(tenant_id)
    return list(await asyncio.gather(*(one(c) for c in connections)))


__all__ = [
    "ERROR_STATUSES",
    "SUCCESS_STATUSES",
    "BreakerHealth",
    "ConnectionHealth",
    "LatencyStats",
    "SyncHealth",
    "WindowStats",
    "connection_health",
    "percentile",
    "tenant_health",
]
