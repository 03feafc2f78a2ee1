"""What the dashboard's charts show, read from the store: a connection's delivery attempts and
vendor answer times per hour, and the backlog samples (written here, once a minute, by
``workers/sampler.py``).

Each chart is one grouped query bounded by an indexed timestamp: ``deliveries`` by
``(connection_id, created_at)``, ``chart_samples`` by ``(tenant_id, taken_at)``. Hours are
whole UTC hours, numbered from the epoch in SQL (the same in SQLite and PostgreSQL, whatever
the session's time zone). The statuses mean what they mean in ``journeyhub.health``.
"""

from __future__ import annotations

import builtins
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Connection,
    Float,
    Integer,
    case,
    cast,
    func,
    insert,
    literal_column,
    select,
)
from sqlalchemy.sql.elements import ColumnElement

from journeyhub.store.tables import ChartSample, ConnectionRow, Delivery, TaskRow, table_of

if TYPE_CHECKING:
    from journeyhub.store.store import Store

SUCCESS = ("delivered", "skipped")
ERRORS = ("failed", "rate_limited", "dead", "needs_reauth")
HUB = "*"  # the tenant of the hub-wide samples
TASKS_SERIES = "tasks"
BUS_SERIES = "bus:"  # + the durable consumer's name

SAMPLES = table_of(ChartSample)
TASKS = table_of(TaskRow)
CONNECTIONS = table_of(ConnectionRow)


@dataclass(frozen=True)
class HourCounts:
    """A connection's attempts in the UTC hour starting at ``hour``."""

    hour: datetime
    succeeded: int
    failed: int


@dataclass(frozen=True)
class HourLatency:
    """Answer times of a connection's successful calls in the UTC hour starting at ``hour``
    (nearest-rank percentiles, as ``journeyhub.health``)."""

    hour: datetime
    calls: int
    p50_ms: float
    p95_ms: float
    max_ms: float


@dataclass(frozen=True)
class BacklogSample:
    """One sampling round: the tenant's pending deliveries, and the messages the hub's bus
    consumers have not finished (all tenants; None when the bus did not answer)."""

    taken_at: datetime
    pending: int
    bus: int | None


def hour_of(moment: datetime) -> datetime:
    """The start of ``moment``'s UTC hour."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _hour_number(column: Any, dialect: str) -> ColumnElement[int]:
    """Whole hours since the epoch of a timestamp column, in SQL."""
    # Constants, not bound values: GROUP BY repeats the expression, which must be the same.
    hour = literal_column("3600", Integer)
    if dialect == "postgresql":
        return cast(func.floor(func.extract("epoch", column) / hour), Integer)
    # SQLite keeps UTC text; strftime('%s') reads it (fractions too) as seconds.
    return cast(func.strftime(literal_column("'%s'"), column), Integer) // hour


def _hour_at(number: int) -> datetime:
    return datetime.fromtimestamp(int(number) * 3600, UTC)


def _rank(ordered: builtins.list[float], percent: int) -> float:
    """Nearest-rank percentile of ascending, non-empty values (``percentile_disc``)."""
    index = max(1, -(-percent * len(ordered) // 100))  # ceil(percent / 100 * n), in integers
    return ordered[min(index, len(ordered)) - 1]


class ActivityRepo:
    def __init__(self, store: Store) -> None:
        self.store = store

    @property
    def _dialect(self) -> str:
        return self.store.engine.dialect.name

    async def deliveries_per_hour(
        self, connection_id: str, since: datetime
    ) -> builtins.list[HourCounts]:
        """Successful and failed attempts per hour since ``since`` (hours with none left
        out); replay markers are not attempts."""
        hour = _hour_number(Delivery.created_at, self._dialect).label("hour")
        query = (
            select(
                hour,
                func.sum(case((Delivery.status.in_(SUCCESS), 1), else_=0)),
                func.sum(case((Delivery.status.in_(ERRORS), 1), else_=0)),
            )
            .where(Delivery.connection_id == connection_id, Delivery.created_at >= since)
            .group_by(hour)
            .order_by(hour)
        )
        async with self.store.session() as s:
            rows = (await s.execute(query)).all()
        counts = [HourCounts(_hour_at(r[0]), int(r[1] or 0), int(r[2] or 0)) for r in rows]
        return [c for c in counts if c.succeeded or c.failed]

    async def latency_per_hour(
        self, connection_id: str, since: datetime
    ) -> builtins.list[HourLatency]:
        """p50, p95 and the slowest answer time of the successful calls per hour since
        ``since`` (hours without one left out)."""
        hour = _hour_number(Delivery.created_at, self._dialect).label("hour")
        latency = Delivery.latency_ms
        where = (
            Delivery.connection_id == connection_id,
            Delivery.created_at >= since,
            Delivery.status.in_(SUCCESS),
            latency.is_not(None),
        )
        if self._dialect == "postgresql":
            query = (
                select(
                    hour,
                    func.count(),
                    func.percentile_disc(0.5).within_group(latency),
                    func.percentile_disc(0.95).within_group(latency),
                    func.max(latency),
                )
                .where(*where)
                .group_by(hour)
                .order_by(hour)
            )
            async with self.store.session() as s:
                rows = (await s.execute(query)).all()
            return [
                HourLatency(_hour_at(r[0]), int(r[1]), float(r[2]), float(r[3]), float(r[4]))
                for r in rows
            ]
        # SQLite has no percentile aggregate: the same grouping over the ordered values.
        query = select(hour, cast(latency, Float)).where(*where).order_by(hour, latency)
        async with self.store.session() as s:
            rows = (await s.execute(query)).all()
        by_hour: dict[int, builtins.list[float]] = defaultdict(builtins.list)
        for number, value in rows:
            by_hour[int(number)].append(float(value))
        return [
            HourLatency(_hour_at(n), len(v), _rank(v, 50), _rank(v, 95), v[-1])
            for n, v in sorted(by_hour.items())
        ]

    async def backlog(self, tenant_id: str, since: datetime) -> builtins.list[BacklogSample]:
        """The sampling rounds since ``since``, oldest first: the tenant's pending deliveries
        (0 when the round wrote none for it) and the bus consumers' unfinished messages."""
        mine = (SAMPLES.c.tenant_id == tenant_id) & (SAMPLES.c.series == TASKS_SERIES)
        bus = (SAMPLES.c.tenant_id == HUB) & SAMPLES.c.series.startswith(BUS_SERIES)
        query = (
            select(
                SAMPLES.c.taken_at,
                func.sum(case((mine, SAMPLES.c.value), else_=0)),
                func.sum(case((bus, SAMPLES.c.value), else_=0)),
                func.sum(case((bus, 1), else_=0)),
            )
            .where(SAMPLES.c.tenant_id.in_([tenant_id, HUB]), SAMPLES.c.taken_at >= since)
            .group_by(SAMPLES.c.taken_at)
            # A round is a round when the hub's marker is in it (the tenant's own row alone
            # would be a round another process is writing right now: not possible in one
            # transaction, but cheap to be sure of).
            .having(func.sum(case((SAMPLES.c.tenant_id == HUB, 1), else_=0)) > 0)
            .order_by(SAMPLES.c.taken_at)
        )
        async with self.store.session() as s:
            rows = (await s.execute(query)).all()
        return [
            BacklogSample(_aware(r[0]), int(r[1] or 0), int(r[2] or 0) if r[3] else None)
            for r in rows
        ]


def record_samples(conn: Connection, taken_at: datetime, bus: dict[str, int] | None) -> int:
    """Write one sampling round in the caller's transaction: each tenant's pending tasks (when
    not zero), the hub's (always: the round's marker) and each bus consumer's unfinished
    messages (``bus`` by durable; None when the bus did not answer). The rows written.

    The counts are read, then written in one insert: an ``INSERT … SELECT``'s row count is
    not reported on PostgreSQL through psycopg (-1)."""
    pending = TASKS.c.state == literal_column("'pending'")
    per_tenant = (
        select(CONNECTIONS.c.tenant_id, func.count())
        .select_from(TASKS.join(CONNECTIONS, CONNECTIONS.c.id == TASKS.c.connection_id))
        .where(pending)
        .group_by(CONNECTIONS.c.tenant_id)
    )
    counts = [(tenant_id, int(n)) for tenant_id, n in conn.execute(per_tenant).all()]
    counts.append((HUB, int(conn.execute(select(func.count()).where(pending)).scalar_one())))
    rows = [{"tenant_id": t, "series": TASKS_SERIES, "value": n} for t, n in counts]
    rows += [
        {"tenant_id": HUB, "series": BUS_SERIES + name, "value": n}
        for name, n in sorted((bus or {}).items())
    ]
    conn.execute(insert(SAMPLES), [{"taken_at": taken_at, **row} for row in rows])
    return len(rows)


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
