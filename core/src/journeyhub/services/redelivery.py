"""Resend and backfill: a connection's kept journey events pushed again, or for the first time.

The router keeps every journey event it routes (``store/journey_events.py``) until the
retention purge removes it: that is the window a resend or a backfill can reach. Both make
ordinary delivery tasks, each put in the ``tasks`` table before it is published, with the
event's own bus sequence: the task gate keeps each client's order, the breakers, rate limits
and retries apply as to any push.

The two differ only in the task ids, which are the vendors' idempotency keys:

- A **backfill** gives each event the id the router gives it (tenant, event, connection).
  Backfilling again, or an event the connection already had, finds that task finished and
  pushes nothing: each kept event reaches the vendor once.
- A **resend** is asked for, so it is a new effect where the vendor allows one: its tasks get
  ids of their own, derived from the resend's ``key`` (a new one per request unless the caller
  names it). The same key again is a duplicate and pushes nothing twice; a new key resends.

Each run is an operation: its id is the tasks' correlation id, so the deliveries (and log
lines) of one run can be followed, and it is written to the audit log.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Annotated, Literal

import msgspec

from journeyhub.hub import Hub
from journeyhub.model import EVENT_TYPES, Connection, DeliveryTask, stable_id, utcnow
from journeyhub.services.errors import InvalidInput
from journeyhub.store.journey_events import EventQuery, Kept
from journeyhub.store.tables import Delivery
from journeyhub.workers.router import CORRELATION_HEADER, accepts

PAGE = 500  # events per transaction and publish round
Kind = Literal["resend", "backfill"]
Progress = Callable[[int, int], None]  # (events done, events matched)


class RedeliveryFilter(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Which kept events to push: every field narrows; none at all is refused for a resend."""

    client_id: str | None = None
    types: list[str] = []
    since: Annotated[datetime, msgspec.Meta(tz=True)] | None = None  # received at or after
    until: Annotated[datetime, msgspec.Meta(tz=True)] | None = None  # received before
    event_ids: list[str] = []
    task_id: str | None = None  # one delivery, by the task id /v1/deliveries shows
    key: str | None = None  # a resend's own key: the same key again pushes nothing twice


class Operation(msgspec.Struct):
    """What a resend or a backfill did: ``matched`` kept events, ``queued`` tasks published
    (events the connection does not take are matched, not queued)."""

    id: str
    kind: str
    connection_id: str
    matched: int
    queued: int


@dataclass(frozen=True)
class Plan:
    connection: Connection
    query: EventQuery
    kind: Kind
    key: str
    operation_id: str
    matched: int


def _check(kind: Kind, wanted: RedeliveryFilter) -> None:
    for index, type_ in enumerate(wanted.types):
        if type_ not in EVENT_TYPES:
            raise InvalidInput(f"unknown event type {type_!r}", field=f"$.types[{index}]")
    if wanted.since and wanted.until and wanted.since >= wanted.until:
        raise InvalidInput("until must be later than since", field="$.until")
    if kind == "backfill":
        if wanted.since is None:
            raise InvalidInput("a backfill needs since", field="$.since")
        if wanted.key is not None:
            raise InvalidInput("a backfill keeps the original keys: no key", field="$.key")
    elif not (
        wanted.client_id or wanted.types or wanted.since or wanted.event_ids or wanted.task_id
    ):
        raise InvalidInput(
            "a resend needs a filter: client_id, types, since, event_ids or task_id", field="$"
        )
    if wanted.key is not None and not 0 < len(wanted.key) <= 200:
        raise InvalidInput("key must be 1 to 200 characters", field="$.key")


async def _event_of_task(hub: Hub, tenant_id: str, connection_id: str, task_id: str) -> str:
    """The event a delivery of this connection delivered; 422 when there is none."""
    rows = await hub.store.deliveries.last_attempts(tenant_id, [task_id])
    row: Delivery | None = rows.get(task_id)
    if row is None or row.connection_id != connection_id:
        raise InvalidInput("no such delivery on this connection", field="$.task_id")
    return row.source_id


async def plan(
    hub: Hub, tenant_id: str, connection_id: str, kind: Kind, wanted: RedeliveryFilter
) -> Plan:
    """Check the request and count what it matches; ``LookupError`` for a connection that is
    not the tenant's, ``InvalidInput`` naming the field for a bad filter."""
    connection = await hub.store.connections.get(connection_id, tenant_id)
    if connection is None:
        raise LookupError(f"no connection {connection_id}")
    _check(kind, wanted)
    if connection.direction == "inbound" or not connection.enabled:
        raise InvalidInput("the connection does not take pushes", field="$.connection_id")
    event_ids = list(wanted.event_ids)
    if wanted.task_id:
        event_ids.append(await _event_of_task(hub, tenant_id, connection_id, wanted.task_id))
    query = EventQuery(
        client_id=wanted.client_id,
        types=wanted.types,
        since=wanted.since,
        until=wanted.until,
        event_ids=event_ids,
    )
    key = wanted.key or uuid.uuid4().hex
    operation_id = stable_id("op", tenant_id, connection_id, kind, key)
    matched = await hub.store.journey_events.count(tenant_id, query)
    return Plan(connection, query, kind, key, operation_id, matched)


async def publish(hub: Hub, task: DeliveryTask) -> None:
    await hub.bus.publish(
        hub.bus.subjects.push(task.connection_id),
        msgspec.json.encode(task),
        msg_id=task.id,
        headers={CORRELATION_HEADER: task.correlation_id or task.id},
    )


def task_for(plan: Plan, kept: Kept) -> DeliveryTask:
    connection, event = plan.connection, kept.event
    if plan.kind == "backfill":  # the router's id: the vendor sees the original key
        task_id = stable_id("dlv", connection.tenant_id, event.id, connection.id)
    else:
        task_id = stable_id("dlv", connection.tenant_id, event.id, connection.id, plan.key)
    return DeliveryTask(
        id=task_id,
        tenant_id=connection.tenant_id,
        connection_id=connection.id,
        vendor=connection.vendor,
        kind="event",
        order_key=event.client.id,
        sequence=kept.sequence,
        event=event,
        correlation_id=plan.operation_id,
        enqueued_at=utcnow(),
    )


async def run(hub: Hub, plan: Plan, actor: str, progress: Progress | None = None) -> Operation:
    """Queue the plan's tasks a page at a time, in bus order: a page's tasks are all in the
    order before any of them is published, and pages go oldest first, so each client's tasks
    enter the order in sequence."""
    tenant_id, connection = plan.connection.tenant_id, plan.connection
    done = queued = 0
    after: tuple[int, str] | None = None
    while True:
        page = await hub.store.journey_events.page(tenant_id, plan.query, after=after, limit=PAGE)
        if not page:
            break
        after = (page[-1].sequence, page[-1].event.id)
        tasks = [task_for(plan, k) for k in page if accepts(hub, connection, k.event.type)]
        await hub.store.run(partial(hub.store.tasks.add, tasks=tasks))
        await asyncio.gather(*(publish(hub, task) for task in tasks))
        done += len(page)
        queued += len(tasks)
        if progress is not None:
            progress(done, plan.matched)
    await hub.store.audit.record(
        tenant_id=tenant_id,
        actor=actor,
        action=f"connection.{plan.kind}",
        connection_id=connection.id,
        after={"operation_id": plan.operation_id, "matched": done, "queued": queued},
    )
    return Operation(plan.operation_id, plan.kind, connection.id, done, queued)


async def redeliver(
    hub: Hub,
    tenant_id: str,
    connection_id: str,
    kind: Kind,
    wanted: RedeliveryFilter,
    actor: str,
    progress: Progress | None = None,
) -> Operation:
    """Plan and run a resend or a backfill: what the API, the CLI and the dashboard call."""
    return await run(hub, await plan(hub, tenant_id, connection_id, kind, wanted), actor, progress)
