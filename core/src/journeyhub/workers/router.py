"""The routers: a journey event (or a trigger) → one delivery task per matching connection on
``jh.push.<connection_id>``, each with a deterministic id (the vendor idempotency key).

A connection matches when it is enabled, outbound or bidirectional, its plugin pushes that type
(``ConnectorInfo.push_event_types``, ``*`` for all) and its ``event_types`` filter (empty: all)
has it. A trigger never goes back to the connection it came from.

Per-client order: a task is put in the ``tasks`` table, in its client's order (the event's bus
sequence), before it is published; the task gate holds a task back while an earlier one of
the same client on the same connection is unfinished. That needs every earlier event routed
before a later one is, so one router at a time routes each stream, across all processes: the
holder of a lease in the store. Its routing transaction renews the lease too, so a router
that lost it (stalled past its lease, and another took over) cannot commit. It routes a batch
in stream order, and a batch that cannot be routed (the store or the bus away) is retried in
place, never passed by a later one. A router that takes over from one that died waits until
that one's unacknowledged messages are offered again before it routes anything new.

Per fetched batch: one store transaction, the batch's tasks published concurrently, then the
batch acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import uuid
from dataclasses import dataclass
from typing import Any, Literal

import msgspec
from nats.aio.msg import Msg
from opentelemetry.trace import Span
from sqlalchemy import Connection as StoreConnection

from journeyhub import tracing
from journeyhub.hub import Hub
from journeyhub.logs import correlation_scope, get_logger
from journeyhub.model import Connection, DeliveryTask, JourneyEvent, Trigger, stable_id, utcnow
from journeyhub.store.journey_events import kept_row
from journeyhub.workers.consumer import backoff_delay, consume
from journeyhub.workers.deadletter import dead_letter

log = get_logger(__name__)
CORRELATION_HEADER = "Journeyhub-Correlation-Id"
LEASE_SECONDS = 10.0  # a router that stops renewing is replaced after this


class LeaseLost(Exception):
    """Another process routes this stream now."""


def correlation_of(msg: Msg) -> str | None:
    """The correlation id the publisher put on a message, if any."""
    return (msg.headers or {}).get(CORRELATION_HEADER) or None


def accepts(hub: Hub, connection: Connection, type_: str) -> bool:
    if not connection.enabled or connection.direction == "inbound":
        return False
    loaded = hub.registry.connectors.get(connection.vendor)
    if loaded is None or "push" not in loaded.info.capabilities:
        return False
    pushes = loaded.info.push_event_types
    if pushes and "*" not in pushes and type_ not in pushes:
        return False
    return not connection.event_types or type_ in connection.event_types


def tenant_of(subject: str) -> str:
    return subject.rsplit(".", 1)[-1]


async def tasks_for_event(
    hub: Hub, tenant_id: str, event: JourneyEvent, sequence: int, correlation_id: str | None
) -> list[DeliveryTask]:
    now = utcnow()
    return [
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
        for connection in await hub.connection_cache.for_tenant(tenant_id)
        if accepts(hub, connection, event.type)
    ]


async def tasks_for_trigger(
    hub: Hub, trigger: Trigger, sequence: int, correlation_id: str | None
) -> list[DeliveryTask]:
    now = utcnow()
    return [
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
        for connection in await hub.connection_cache.for_tenant(trigger.tenant_id)
        if connection.id != trigger.connection_id and accepts(hub, connection, trigger.type)
    ]


@dataclass(frozen=True)
class Stream:
    """What a router routes: its stream, durable consumer, and how one message becomes tasks."""

    kind: str  # the stream kind: events | triggers
    durable: str
    stage: str  # the dead letters' stage for a message that cannot be decoded


EVENTS = Stream("events", "router", "event")
TRIGGERS = Stream("triggers", "trigger-router", "trigger")


class Router:
    def __init__(self, hub: Hub, stream: Stream) -> None:
        self.hub = hub
        self.stream = stream
        # One lease per stream: hubs sharing a store with their own subject prefix route apart.
        self.lease = f"router:{hub.bus.subjects.stream(stream.kind)}"
        self.holder = f"{os.uname().nodename}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.stopping: asyncio.Event = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        """Route while this process holds the stream's lease; wait for it otherwise."""
        leases = self.hub.store.leases
        while not stop.is_set():
            if not await leases.claim(self.lease, self.holder, LEASE_SECONDS):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), LEASE_SECONDS / 4)
                continue
            log.info("router_lease_taken", stream=self.stream.kind)
            lost = asyncio.Event()
            self.stopping = Either(stop, lost)
            renewing = asyncio.create_task(self.keep_lease(lost))
            try:
                await self.wait_for_predecessor(self.stopping)
                await consume(
                    self.hub,
                    self.stopping,
                    durable=self.stream.durable,
                    stream_kind=self.stream.kind,
                    handle_batch=self.route_batch,
                    batch=200,
                )
            except LeaseLost:
                lost.set()
            finally:
                renewing.cancel()
                if not lost.is_set():
                    with contextlib.suppress(Exception):
                        await leases.release(self.lease, self.holder)

    async def keep_lease(self, lost: asyncio.Event) -> None:
        """Renew the lease while idle (a routing transaction renews it too)."""
        while not lost.is_set():
            await asyncio.sleep(LEASE_SECONDS / 3)
            try:
                held = await self.hub.store.run(
                    lambda conn: self.hub.store.leases.renew(
                        conn, self.lease, self.holder, LEASE_SECONDS
                    )
                )
            except Exception as exc:  # the store away: the routing waits for it too
                log.warning("router_lease_not_renewed", error=repr(exc))
                continue
            if not held:
                log.warning("router_lease_lost", stream=self.stream.kind)
                lost.set()

    async def wait_for_predecessor(self, stop: asyncio.Event) -> None:
        """A router that died holds messages until its ack wait ends, and JetStream then offers
        them before newer ones. Routing newer events first could put a client's later task in
        the order before its earlier one: wait for them."""
        try:
            info = await self.hub.bus.js.consumer_info(
                self.hub.bus.subjects.stream(self.stream.kind), self.stream.durable
            )
        except Exception as exc:
            log.warning("router_predecessor_unknown", error=repr(exc))
            return
        if info.num_ack_pending:
            wait = float(self.hub.settings.ack_wait_seconds) + 1.0
            log.info(
                "router_waits_for_predecessor", unacknowledged=info.num_ack_pending, seconds=wait
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)

    # --- one batch --------------------------------------------------------------------------------

    async def route_batch(self, messages: list[Msg], spans: dict[int, Span] | None = None) -> None:
        if tracing.ENABLED and spans is None:
            await self.route_traced(messages)
            return
        messages = sorted(messages, key=lambda m: m.metadata.sequence.stream)
        routed = [found for msg in messages if (found := await self.tasks_of(msg)) is not None]
        tasks = [task for found in routed for task in found.tasks]
        kept = [found.kept for found in routed if found.kept is not None]
        attempt = 1
        while True:  # in place: a later batch must not pass this one
            try:
                await self.commit(tasks, kept)
                if spans is None:
                    await asyncio.gather(*(self.publish(task) for task in tasks))
                else:  # each message's tasks published inside its span
                    await asyncio.gather(
                        *(
                            tracing.within(spans[id(found.msg)], self.publish(task))
                            for found in routed
                            for task in found.tasks
                        )
                    )
                break
            except LeaseLost:
                log.warning("router_lease_lost_mid_batch", messages=len(routed))
                for found in routed:  # to the router that holds the lease now
                    await found.msg.nak()
                raise
            except Exception as exc:
                if self.stopping.is_set():  # shutting down: the next router routes them
                    for found in routed:
                        await found.msg.nak()
                    return
                delay = backoff_delay(attempt, cap=10.0)
                log.warning(
                    "route_failed_will_retry",
                    error=repr(exc),
                    retry_in=round(delay, 2),
                    messages=len(routed),
                )
                await asyncio.sleep(delay)
                attempt += 1
        for found in routed:
            await found.msg.ack()
        self.log_routed(routed)

    async def route_traced(self, messages: list[Msg]) -> None:
        """``route_batch`` with a span per message, child of its publisher's."""
        prefix = self.hub.bus.subjects.prefix
        spans = {id(m): tracing.process_span(prefix, m, self.stream.durable) for m in messages}
        try:
            await self.route_batch(messages, spans)
        finally:
            for span in spans.values():
                tracing.end(span, sys.exc_info()[1])

    def log_routed(self, routed: list[Routed]) -> None:
        """One line per batch: each message's correlation id, and beside it the connections
        its tasks went to (none: no connection takes it). A line per message, at debug."""
        for found in routed:
            with correlation_scope(found.correlation_id, **found.about):
                log.debug(
                    f"{self.stream.stage}_routed",
                    connections=[t.connection_id for t in found.tasks],
                )
        log.info(
            "routed",
            stream=self.stream.kind,
            correlation_ids=[found.correlation_id for found in routed],
            connections=[[t.connection_id for t in found.tasks] for found in routed],
        )

    async def commit(self, tasks: list[DeliveryTask], kept: list[dict[str, Any]]) -> None:
        """Put the tasks in their clients' order and keep the events (for resends and
        backfills, ``services/redelivery.py``), fenced by the lease: one transaction."""
        store = self.hub.store

        def write(conn: StoreConnection) -> None:
            if not store.leases.renew(conn, self.lease, self.holder, LEASE_SECONDS):
                raise LeaseLost(self.lease)
            store.tasks.add(conn, tasks)
            store.journey_events.keep(conn, kept)

        await store.run(write)

    async def publish(self, task: DeliveryTask) -> None:
        await self.hub.bus.publish(
            self.hub.bus.subjects.push(task.connection_id),
            msgspec.json.encode(task),
            msg_id=task.id,
            headers={CORRELATION_HEADER: task.correlation_id or task.id},
        )

    async def tasks_of(self, msg: Msg) -> Routed | None:
        """The tasks of one message; None (and a dead letter) when it cannot be decoded."""
        sequence = msg.metadata.sequence.stream
        try:
            if self.stream is EVENTS:
                event = msgspec.json.decode(msg.data, type=JourneyEvent, strict=True)
                correlation_id = correlation_of(msg) or event.id
                tasks = await tasks_for_event(
                    self.hub, tenant_of(msg.subject), event, sequence, correlation_id
                )
                return Routed(
                    msg,
                    tasks,
                    correlation_id,
                    {"event_id": event.id, "event_type": event.type},
                    kept_row(tenant_of(msg.subject), event, msg.data, sequence, correlation_id),
                )
            trigger = msgspec.json.decode(msg.data, type=Trigger)
            correlation_id = correlation_of(msg) or trigger.id
            tasks = await tasks_for_trigger(self.hub, trigger, sequence, correlation_id)
            return Routed(
                msg, tasks, correlation_id, {"trigger_id": trigger.id, "trigger_type": trigger.type}
            )
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            # Only a direct NATS publisher can send this: the gateway validates.
            with correlation_scope(correlation_of(msg)):
                await dead_letter(
                    self.hub,
                    msg,
                    tenant_id=tenant_of(msg.subject),
                    connection_id="-",
                    vendor="-",
                    stage=self.stream.stage,
                    error=f"invalid {self.stream.stage}: {exc}",
                    attempts=1,
                )
            return None


@dataclass(frozen=True)
class Routed:
    """One message's tasks, and what its log line says of it."""

    msg: Msg
    tasks: list[DeliveryTask]
    correlation_id: str
    about: dict[str, str]
    kept: dict[str, Any] | None = None  # a journey event's row in the kept events


class Either(asyncio.Event):
    """Set as soon as either of two events is (a router stops on shutdown or on losing its
    lease)."""

    def __init__(self, first: asyncio.Event, second: asyncio.Event) -> None:
        super().__init__()
        self._events = (first, second)

    def is_set(self) -> bool:
        return any(event.is_set() for event in self._events)

    async def wait(self) -> Literal[True]:
        waits = [asyncio.ensure_future(event.wait()) for event in self._events]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()
        return True


async def run_events(hub: Hub, stop: asyncio.Event) -> None:
    await Router(hub, EVENTS).run(stop)


async def run_triggers(hub: Hub, stop: asyncio.Event) -> None:
    await Router(hub, TRIGGERS).run(stop)
