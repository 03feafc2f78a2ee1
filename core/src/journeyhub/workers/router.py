"""The routers: a journey event (or a trigger) → one delivery task per matching connection on
``jh.push.<connection_id>``, each with a deterministic id (the vendor idempotency key).

A connection matches when it is enabled, outbound or bidirectional, its plugin pushes that type
(``ConnectorInfo.push_event_types``, ``*`` for all) and its ``event_types`` filter (empty: all)
has it. A trigger never goes back to the connection it came from.

Per-client order: a task is recorded as pending (with the event's bus sequence) before it is
published; the push worker holds a task back while an earlier one for the same client on the
same connection is pending. Events of one client in a batch are routed one after the other.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

import msgspec
from nats.aio.msg import Msg

from journeyhub.hub import Hub
from journeyhub.logs import correlation_scope, get_logger
from journeyhub.model import Connection, DeliveryTask, JourneyEvent, Trigger, stable_id, utcnow
from journeyhub.workers.consumer import backoff_delay, consume
from journeyhub.workers.deadletter import dead_letter

log = get_logger(__name__)
CORRELATION_HEADER = "Journeyhub-Correlation-Id"


def correlation_of(msg: Msg) -> str | None:
    """The correlation id the publisher put on a message, if any."""
    return (msg.headers or {}).get(CORRELATION_HEADER) or None


def accepts(hub: Hub, connection: Connection, kind: str, type_: str) -> bool:
    if not connection.enabled or connection.direction == "inbound":
        return False
    loaded = hub.registry.connectors.get(connection.vendor)
    if loaded is None or "push" not in loaded.info.capabilities:
        return False
    pushes = loaded.info.push_event_types
    if pushes and "*" not in pushes and type_ not in pushes:
        return False
    return not connection.event_types or type_ in connection.event_types


async def publish_tasks(hub: Hub, tasks: list[DeliveryTask]) -> None:
    deliveries = hub.store.deliveries
    # Every task is pending before any is published: the push worker may take one at once.
    await deliveries.add_pending_many(
        [(t.id, t.connection_id, t.order_key, t.sequence) for t in tasks]
    )
    # An event routed again after its tasks finished (the router's ack lost to a NATS node
    # going down, the event redelivered) must not put them back in the order: the bus drops
    # the republished task as a duplicate, and its pending row would hold the client's later
    # tasks back for ever. Asked after the insert, so a task finishing meanwhile removes the
    # row itself (its success, or its dead letter, and the removal are one write).
    finished = await deliveries.finished_among([t.id for t in tasks])
    for task_id in finished:
        await deliveries.finish_pending(task_id)
    tasks = [t for t in tasks if t.id not in finished]
    await asyncio.gather(
        *(
            hub.bus.publish(
                hub.bus.subjects.push(task.connection_id),
                msgspec.json.encode(task),
                msg_id=task.id,
                headers={CORRELATION_HEADER: task.correlation_id or task.id},
            )
            for task in tasks
        )
    )


async def route_event(hub: Hub, tenant_id: str, event: JourneyEvent, sequence: int,
                      correlation_id: str | None) -> list[DeliveryTask]:  # fmt: skip
    connections = await hub.connections.for_tenant(tenant_id)
    now = utcnow()
    tasks = [
        DeliveryTask(
            id=stable_id("dlv", tenant_id, event.id, connection.id),
            tenant_id=tenant_id,
            connection_id=connection.id,
            vendor=connection.vendor,
            kind="event",
            order_key=event.client.id,
            sequence=sequence,
            event=event,
            correlation_id=correlation_id or event.id,
            enqueued_at=now,
        )
        for connection in connections
        if accepts(hub, connection, "event", event.type)
    ]
    await publish_tasks(hub, tasks)
    return tasks


async def route_trigger(
    hub: Hub, trigger: Trigger, sequence: int, correlation_id: str | None = None
) -> list[DeliveryTask]:
    connections = await hub.connections.for_tenant(trigger.tenant_id)
    now = utcnow()
    tasks = [
        DeliveryTask(
            id=stable_id("dlv", trigger.tenant_id, trigger.id, connection.id),
            tenant_id=trigger.tenant_id,
            connection_id=connection.id,
            vendor=connection.vendor,
            kind="trigger",
            order_key=f"trigger:{trigger.client_id or trigger.id}",
            sequence=sequence,
            trigger=trigger,
            correlation_id=correlation_id or trigger.id,
            enqueued_at=now,
        )
        for connection in connections
        if connection.id != trigger.connection_id
        and accepts(hub, connection, "trigger", trigger.type)
    ]
    await publish_tasks(hub, tasks)
    return tasks


def _tenant_of(subject: str) -> str:
    return subject.rsplit(".", 1)[-1]


async def _route_group(hub: Hub, messages: list[Msg], route_one) -> None:  # type: ignore[no-untyped-def]
    """Route one client's messages in order; after a failure, hold the rest back too."""
    for index, msg in enumerate(messages):
        attempt = msg.metadata.num_delivered or 1
        try:
            await route_one(msg)
            await msg.ack()
        except Exception as exc:
            delay = backoff_delay(attempt)
            with correlation_scope(correlation_of(msg)):
                log.warning("route_failed_will_retry", error=repr(exc), retry_in=delay)
            for later in messages[index:]:
                await later.nak(delay=delay)
            return


async def run_events(hub: Hub, stop: asyncio.Event) -> None:
    async def handle_batch(messages: list[Msg]) -> None:
        groups: dict[tuple[str, str], list[tuple[Msg, JourneyEvent]]] = defaultdict(list)
        for msg in messages:
            try:
                event = msgspec.json.decode(msg.data, type=JourneyEvent, strict=True)
            except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                # Only a direct NATS publisher can send this: the gateway validates.
                with correlation_scope(correlation_of(msg)):
                    await dead_letter(
                        hub,
                        msg,
                        tenant_id=_tenant_of(msg.subject),
                        connection_id="-",
                        vendor="-",
                        stage="event",
                        error=f"invalid journey event: {exc}",
                        attempts=1,
                    )
                continue
            groups[(_tenant_of(msg.subject), event.client.id)].append((msg, event))

        async def route_one(msg: Msg) -> None:
            event = decoded[id(msg)]
            correlation_id = correlation_of(msg) or event.id
            with correlation_scope(correlation_id, event_id=event.id):
                tasks = await route_event(
                    hub,
                    _tenant_of(msg.subject),
                    event,
                    msg.metadata.sequence.stream,
                    correlation_id,
                )
                log.info(
                    "event_routed",
                    event_type=event.type,
                    tasks=len(tasks),
                    connections=[t.connection_id for t in tasks],
                )

        decoded = {id(m): e for group in groups.values() for m, e in group}
        await asyncio.gather(
            *(_route_group(hub, [m for m, _ in group], route_one) for group in groups.values())
        )

    await consume(hub, stop, durable="router", stream_kind="events", handle_batch=handle_batch,
                  batch=200)  # fmt: skip


async def run_triggers(hub: Hub, stop: asyncio.Event) -> None:
    async def handle_batch(messages: list[Msg]) -> None:
        groups: dict[str, list[Msg]] = defaultdict(list)
        decoded: dict[int, Trigger] = {}
        for msg in messages:
            try:
                trigger = msgspec.json.decode(msg.data, type=Trigger)
            except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                with correlation_scope(correlation_of(msg)):
                    await dead_letter(
                        hub,
                        msg,
                        tenant_id=_tenant_of(msg.subject),
                        connection_id="-",
                        vendor="-",
                        stage="trigger",
                        error=f"invalid trigger: {exc}",
                        attempts=1,
                    )
                continue
            decoded[id(msg)] = trigger
            groups[trigger.client_id or trigger.id].append(msg)

        async def route_one(msg: Msg) -> None:
            trigger = decoded[id(msg)]
            correlation_id = correlation_of(msg) or trigger.id
            with correlation_scope(correlation_id, trigger_id=trigger.id):
                tasks = await route_trigger(
                    hub, trigger, msg.metadata.sequence.stream, correlation_id
                )
                log.info(
                    "trigger_routed",
                    trigger_type=trigger.type,
                    tasks=len(tasks),
                    connections=[t.connection_id for t in tasks],
                )

        await asyncio.gather(*(_route_group(hub, group, route_one) for group in groups.values()))

    await consume(hub, stop, durable="trigger-router", stream_kind="triggers",
                  handle_batch=handle_batch, batch=200)  # fmt: skip
