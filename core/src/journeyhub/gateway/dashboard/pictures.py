"""Which charts a dashboard page shows, from the store's activity queries
(``store/activity.py``) to the SVG (``charts.py``): on a connection's page its deliveries and
failures per hour and its vendor answer times over the last 24 hours; on the overview the
backlog over the last hour."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from markupsafe import Markup

from journeyhub.gateway.dashboard.charts import (
    Sample,
    Series,
    Slot,
    bar_chart,
    line_chart,
    ms_text,
)
from journeyhub.hub import Hub
from journeyhub.store.activity import hour_of

HOURS = 24
BACKLOG_WINDOW = timedelta(hours=1)

DELIVERIES = (
    Series("delivered", "Delivered", "good"),
    Series("failed", "Failed", "bad"),
)
LATENCY = (
    Series("p95", "p95", "p95"),  # drawn first: the wider, lighter bar behind the median
    Series("p50", "Median", "p50"),
)
PENDING = (Series("pending", "Waiting", "accent"),)
BUS = (Series("bus", "On the bus", "accent-2"),)


@dataclass(frozen=True)
class ConnectionCharts:
    deliveries: Markup
    latency: Markup


@dataclass(frozen=True)
class BacklogCharts:
    pending: Markup
    bus: Markup
    sample_seconds: int


def hour_slots(now: datetime) -> list[datetime]:
    """The starts of the last 24 UTC hours, the current (partial) one last."""
    current = hour_of(now)
    return [current - timedelta(hours=HOURS - 1 - i) for i in range(HOURS)]


async def connection_charts(hub: Hub, connection_id: str, now: datetime) -> ConnectionCharts:
    starts = hour_slots(now)
    activity = hub.store.activity
    counts = {c.hour: c for c in await activity.deliveries_per_hour(connection_id, starts[0])}
    latencies = {x.hour: x for x in await activity.latency_per_hour(connection_id, starts[0])}
    hour = timedelta(hours=1)
    delivery_slots = []
    latency_slots = []
    for start in starts:
        end = min(start + hour, now)
        count = counts.get(start)
        delivery_slots.append(
            Slot(
                start,
                end,
                {
                    "delivered": count.succeeded if count else 0,
                    "failed": count.failed if count else 0,
                },
            )
        )
        latency = latencies.get(start)
        latency_slots.append(
            Slot(
                start,
                end,
                {
                    "p95": latency.p95_ms if latency else None,
                    "p50": latency.p50_ms if latency else None,
                    "slowest": latency.max_ms if latency else None,
                    "calls": latency.calls if latency else None,
                },
            )
        )
    return ConnectionCharts(
        deliveries=bar_chart(
            name="deliveries",
            caption="Deliveries per hour, last 24 h",
            slots=delivery_slots,
            series=DELIVERIES,
            stacked=True,
            y_label="calls per hour",
            x_label="hour (UTC)",
            empty="No deliveries in the last 24 h.",
        ),
        latency=bar_chart(
            name="latency",
            caption="Vendor answer time per hour, last 24 h",
            slots=latency_slots,
            series=LATENCY,
            stacked=False,
            y_label="answer time",
            x_label="hour (UTC)",
            empty="No successful vendor calls in the last 24 h.",
            fmt=ms_text,
            integer=False,
            describe=_latency_said,
        ),
    )


def _latency_said(slot: Slot) -> str:
    values = slot.values
    calls = values.get("calls")
    if not calls:
        return "no successful call"
    p50, p95, slowest = (values.get(k) or 0.0 for k in ("p50", "p95", "slowest"))
    return (
        f"median {ms_text(p50)}, p95 {ms_text(p95)}, slowest {ms_text(slowest)} "
        f"({int(calls)} call{'s' if calls != 1 else ''})"
    )


async def backlog_charts(hub: Hub, tenant_id: str, now: datetime) -> BacklogCharts:
    since = now - BACKLOG_WINDOW
    rounds = await hub.store.activity.backlog(tenant_id, since)
    seconds = hub.settings.chart_sample_seconds
    interval = timedelta(seconds=seconds)
    empty = f"No samples in the last hour: a running worker takes one every {seconds} s."
    pending = [Sample(r.taken_at, {"pending": r.pending}) for r in rounds]
    bus = [Sample(r.taken_at, {"bus": r.bus}) for r in rounds]
    return BacklogCharts(
        pending=line_chart(
            name="backlog-pending",
            caption="Deliveries waiting, your connections",
            samples=pending,
            series=PENDING,
            since=since,
            until=now,
            interval=interval,
            y_label="deliveries",
            x_label="time (UTC)",
            empty=empty,
        ),
        bus=line_chart(
            name="backlog-bus",
            caption="Messages queued on the bus, whole hub",
            samples=bus,
            series=BUS,
            since=since,
            until=now,
            interval=interval,
            y_label="messages",
            x_label="time (UTC)",
            empty=empty,
        ),
        sample_seconds=seconds,
    )
