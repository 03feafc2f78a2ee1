"""What a dashboard page shows, read from the store for one tenant: its connections with their
health and state, dead letters (pending, and recently replayed with what became of them),
recent failures with the vendor's answer, recent deliveries and the last triggers."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from datetime import datetime

import msgspec

from journeyhub.gateway.dashboard.assessment import SEVERITY, Assessment, assess
from journeyhub.gateway.dashboard.formatting import humanize
from journeyhub.gateway.dashboard.pictures import (
    BacklogCharts,
    ConnectionCharts,
    backlog_charts,
    connection_charts,
)
from journeyhub.gateway.dashboard.sessions import Viewer
from journeyhub.health import ERROR_STATUSES, ConnectionHealth, connection_health
from journeyhub.hub import Hub
from journeyhub.model import Connection, utcnow
from journeyhub.store.tables import DeadLetter, Delivery, Incident, TriggerRow

LIST_DEAD = 50  # pending dead letters on the page
LIST_REPLAYED = 10  # recently replayed ones under them
LIST_FAILURES = 20
LIST_DELIVERIES = 15
LIST_TRIGGERS = 15


@dataclass
class ConnectionView:
    connection: Connection
    health: ConnectionHealth
    state: Assessment
    vendor_name: str


@dataclass
class EventSummary:
    what: str  # "journey started", "payment received trigger", "inbound webhook"
    event_id: str | None = None
    client: str | None = None


@dataclass
class DeadView:
    row: DeadLetter
    reason: str  # "Permanent error", "Gave up after 4 attempts"
    message: str  # the vendor's error
    vendor_status: int | None
    summary: EventSummary
    after_replay: Delivery | None  # the newest attempt since it was replayed

    @property
    def replayed(self) -> bool:
        return self.row.replayed_at is not None


@dataclass
class Page:
    viewer: Viewer
    now: datetime
    connections: list[ConnectionView]
    dead: list[DeadView]
    replayed: list[DeadView]
    failures: list[Delivery]
    deliveries: list[Delivery]
    triggers: list[TriggerRow]
    names: dict[str, str] = field(default_factory=dict)  # connection id -> its name
    vendors: dict[str, str] = field(default_factory=dict)  # connection id -> vendor's name
    flash: dict[str, str] | None = None
    # The charts (``pictures.py``): a connection's on its page, the backlog on the overview.
    connection_charts: ConnectionCharts | None = None
    backlog_charts: BacklogCharts | None = None
    incidents: list[Incident] = field(default_factory=list)  # open ones, on the overview


def summarize(row: DeadLetter) -> EventSummary:
    try:
        payload = msgspec.json.decode(row.payload)
    except msgspec.DecodeError:
        payload = None
    if row.stage != "push" or not isinstance(payload, dict):
        return EventSummary(what=f"webhook from {row.vendor}")
    event = payload.get("event")
    if isinstance(event, dict):
        client = event.get("client")
        if not isinstance(client, dict):
            client = {}
        who = client.get("name") or client.get("email") or client.get("id")
        if client.get("name") and client.get("email"):
            who = f"{client['name']} <{client['email']}>"
        return EventSummary(
            what=humanize(str(event.get("type", "event"))),
            event_id=str(event.get("id")) if event.get("id") else None,
            client=who,
        )
    trigger = payload.get("trigger")
    if isinstance(trigger, dict):
        return EventSummary(
            what=f"{humanize(str(trigger.get('type', 'trigger')))} trigger",
            event_id=str(trigger.get("id")) if trigger.get("id") else None,
            client=trigger.get("client_id"),
        )
    return EventSummary(what="delivery task")


_REASON = re.compile(r"^(permanent error|\d+ failed attempts): ", re.IGNORECASE)


def replayed_since(row: DeadLetter, attempt: Delivery | None) -> bool:
    """Whether ``attempt`` was made after the dead letter was (last) replayed."""
    return (
        attempt is not None
        and row.replayed_at is not None
        and attempt.created_at >= row.replayed_at
    )


def dead_view(row: DeadLetter, failed: Delivery | None, latest: Delivery | None) -> DeadView:
    match = _REASON.match(row.error)
    if match is None:
        reason, message = "Failed", row.error
    else:
        head = match.group(1)
        reason = "Permanent error" if head.lower() == "permanent error" else f"Gave up after {head}"
        message = row.error[match.end() :]
    return DeadView(
        row=row,
        reason=reason,
        message=message,
        vendor_status=failed.vendor_status if failed is not None else None,
        summary=summarize(row),
        after_replay=latest if replayed_since(row, latest) else None,
    )


def vendor_name(hub: Hub, vendor: str) -> str:
    loaded = hub.registry.connectors.get(vendor)
    return loaded.info.display_name if loaded is not None else vendor


async def connection_views(hub: Hub, connections: list[Connection]) -> list[ConnectionView]:
    now = utcnow()
    semaphore = asyncio.Semaphore(8)

    async def one(connection: Connection) -> ConnectionView:
        async with semaphore:
            health = await connection_health(hub, connection, now=now)
        return ConnectionView(
            connection, health, assess(health), vendor_name(hub, connection.vendor)
        )

    views = list(await asyncio.gather(*(one(c) for c in connections)))
    views.sort(key=lambda v: (SEVERITY[v.state.key], v.connection.name.lower()))
    return views


async def dead_views(
    hub: Hub, tenant_id: str, connection_id: str | None = None
) -> tuple[list[DeadView], list[DeadView]]:
    deliveries = hub.store.deliveries
    pending = await deliveries.list_dead(
        tenant_id, limit=LIST_DEAD, connection_id=connection_id, pending_only=True
    )
    recent = await deliveries.list_dead(
        tenant_id, limit=LIST_DEAD + LIST_REPLAYED, connection_id=connection_id
    )
    replayed = [r for r in recent if r.replayed_at is not None][:LIST_REPLAYED]
    replayed.sort(key=lambda r: r.replayed_at or r.created_at, reverse=True)
    tasks = [r.msg_id for r in pending + replayed]
    failed = await deliveries.last_attempts(tenant_id, tasks, ERROR_STATUSES)
    latest = await deliveries.last_attempts(tenant_id, [r.msg_id for r in replayed])
    return (
        [dead_view(r, failed.get(r.msg_id), None) for r in pending],
        [dead_view(r, failed.get(r.msg_id), latest.get(r.msg_id)) for r in replayed],
    )


async def build_page(
    hub: Hub,
    viewer: Viewer,
    connections: list[Connection],
    *,
    one: bool = False,
    flash: dict[str, str] | None = None,
) -> Page:
    """What a page shows: the tenant's connections, or one connection (``one``) and only its
    dead letters, failures, deliveries and triggers."""
    tenant_id = viewer.principal.tenant_id
    only = connections[0].id if one else None
    store = hub.store
    views = await connection_views(hub, connections)
    dead, replayed = await dead_views(hub, tenant_id, connection_id=only)
    failures = await store.deliveries.list_statuses(
        tenant_id, ERROR_STATUSES, connection_id=only, limit=LIST_FAILURES
    )
    deliveries = await store.deliveries.list(
        tenant_id, connection_id=only, limit=LIST_DELIVERIES * (2 if one else 1)
    )
    triggers = await store.triggers.list(tenant_id, connection_id=only, limit=LIST_TRIGGERS)
    now = utcnow()
    return Page(
        viewer=viewer,
        now=now,
        connections=views,
        dead=dead,
        replayed=replayed,
        failures=failures,
        deliveries=deliveries,
        triggers=triggers,
        names={c.id: c.name for c in connections},
        vendors={c.id: vendor_name(hub, c.vendor) for c in connections},
        flash=flash,
        connection_charts=await connection_charts(hub, only, now) if only else None,
        backlog_charts=None if one else await backlog_charts(hub, tenant_id, now),
        incidents=[] if one else await store.incidents.list(tenant_id, status="open", limit=20),
    )
