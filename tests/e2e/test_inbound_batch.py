"""The inbound worker per fetched batch: one store transaction to read and one to write, each
trigger made once, a trigger recorded only after JetStream acknowledged it, and a webhook whose
trigger could not be published or recorded retried on its own.

Each test runs a hub of its own (same nats-server, same database) under a subject prefix of its
own, so that the session's workers never see its messages; it stores webhooks on its inbound
stream exactly as the gateway does, fetches them through the worker's durable consumer and
hands the batch to ``inbound.handle_batch``. Failures are real ones: JetStream refusing a
message larger than the stream allows, the database refusing a value its JSON column cannot
hold."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
import pytest_asyncio
from journeyhub.connection_cache import ConnectionCache
from journeyhub.hookspecs import hookimpl
from journeyhub.hub import Hub
from journeyhub.model import (
    Connection,
    ConnectorInfo,
    StoredWebhook,
    Trigger,
    TriggerDraft,
    WebhookReceipt,
    utcnow,
)
from journeyhub.testing.fixtures import eventually
from journeyhub.workers import inbound
from nats.aio.msg import Msg
from nats.js.api import StreamConfig
from sqlalchemy import event


@contextlib.asynccontextmanager
async def hub_of_its_own(hub: Hub, **settings: Any) -> AsyncIterator[Hub]:
    """A hub on the session's nats-server and database, under a subject prefix of its own."""
    prefix = "jhib" + secrets.token_hex(3)
    own = await Hub.start(
        msgspec.structs.replace(hub.settings, subject_prefix=prefix, **settings),
        run_migrations=False,
    )
    # Connections cached for the whole test: a cache refresh would be a transaction of its own
    # in the middle of a counted batch.
    own.connection_cache = ConnectionCache(own.store, ttl=3600)
    try:
        yield own
    finally:
        for kind in ("inbound", "events", "push", "triggers", "dlq"):
            with contextlib.suppress(Exception):  # a stream never made
                await own.bus.js.delete_stream(own.bus.subjects.stream(kind))
        await own.close()


@pytest_asyncio.fixture
async def own_hub(hub: Hub) -> AsyncIterator[Hub]:
    async with hub_of_its_own(hub) as own:
        yield own


class Recorder:
    """An observer plugin: every trigger ``journeyhub_trigger_emitted`` was called with."""

    def __init__(self) -> None:
        self.emitted: list[Trigger] = []

    @hookimpl
    def journeyhub_trigger_emitted(self, trigger: Trigger) -> None:
        self.emitted.append(trigger)


@pytest.fixture
def recorder(own_hub: Hub) -> Recorder:
    plugin = Recorder()
    own_hub.registry.pm.register(plugin, name="recorder")
    return plugin


class Sized:
    """A connector whose webhook ``{"id", "client", "size", "when"?}`` makes one trigger: a
    bounce of ``<client>@example.com`` (so it suppresses that address) with ``size`` bytes of
    data (and, with ``when``, a datetime in it, which a JSON column cannot hold)."""

    @hookimpl
    def journeyhub_connector(self) -> ConnectorInfo:
        return ConnectorInfo(
            vendor="sized",
            display_name="Sized",
            capabilities=frozenset({"webhook"}),
            auth_kind="none",
        )

    @hookimpl
    def journeyhub_verify_webhook(self, body: bytes) -> WebhookReceipt:
        data = msgspec.json.decode(body)
        return WebhookReceipt(event_id=data["id"], event_type="sized")

    @hookimpl
    def journeyhub_handle_webhook(self, webhook: StoredWebhook) -> list[TriggerDraft]:
        data = msgspec.json.decode(webhook.body)
        extra: dict[str, Any] = {
            "email": f"{data['client']}@example.com",
            "blob": "x" * data["size"],
        }
        if data.get("when"):
            extra["when"] = datetime(2026, 1, 1, tzinfo=UTC)
        draft = TriggerDraft(
            type="email_bounced", source_event_id=data["id"], client_id=data["client"], data=extra
        )
        return [draft]


async def connection(hub: Hub, tenant_id: str, vendor: str) -> Connection:
    return await hub.store.connections.create(
        tenant_id=tenant_id,
        vendor=vendor,
        name=vendor,
        direction="inbound",
        enabled=True,
        config={},
        credentials={"webhook_secret": "whsec_" + secrets.token_urlsafe(18)},
        event_types=[],
        field_mappings=[],
        actor="test",
    )


async def store_webhook(hub: Hub, conn: Connection, body: dict[str, Any], msg_id: str) -> None:
    """What the gateway stores for an accepted webhook."""
    stored = StoredWebhook(
        vendor=conn.vendor,
        connection_id=conn.id,
        tenant_id=conn.tenant_id,
        event_id=body["id"],
        event_type=body.get("type"),
        received_at=utcnow(),
        headers={"content-type": "application/json"},
        body=json.dumps(body).encode(),
        correlation_id=f"req-{msg_id}",
    )
    ack = await hub.bus.publish(
        hub.bus.subjects.inbound(conn.vendor, conn.id), msgspec.json.encode(stored), msg_id=msg_id
    )
    assert not ack.duplicate


def stripe_event(intent: dict[str, Any]) -> dict[str, Any]:
    from journeyhub_stripe.sandbox import StripeSandbox

    return StripeSandbox().emit("payment_intent.succeeded", intent)


async def fetch(hub: Hub, count: int, timeout: float = 10) -> list[Msg]:
    """``count`` messages from the inbound worker's durable consumer, as one batch (nats.py's
    own pull subscription: the test hands the batch to the worker itself)."""
    subscription = await hub.bus.js.pull_subscribe_bind(
        durable="inbound-worker", stream=hub.bus.subjects.stream("inbound")
    )
    messages: list[Msg] = []
    deadline = asyncio.get_running_loop().time() + timeout
    try:
        while len(messages) < count:
            left = deadline - asyncio.get_running_loop().time()
            assert left > 0, f"got {len(messages)} of {count} messages"
            try:
                messages += await subscription.fetch(count - len(messages), timeout=min(1, left))
            except TimeoutError:
                continue
    finally:
        await subscription.unsubscribe()
    return messages


async def consumer_backlog(hub: Hub) -> int:
    """The inbound consumer's messages not yet acknowledged (not yet delivered, delivered and
    not settled, or handed back to be delivered again)."""
    info = await hub.bus.js.consumer_info(hub.bus.subjects.stream("inbound"), "inbound-worker")
    return info.num_pending + info.num_ack_pending


async def backlog_becomes(hub: Hub, expected: int) -> None:
    """Acks and naks are sent without waiting for an answer: the server counts them a moment
    later."""

    async def reached() -> bool:
        return await consumer_backlog(hub) == expected

    await eventually(reached, timeout=5)


async def triggers_on_bus(hub: Hub) -> list[Trigger]:
    stream = hub.bus.subjects.stream("triggers")
    state = (await hub.bus.js.stream_info(stream)).state
    found = []
    for seq in range(state.first_seq, state.last_seq + 1) if state.messages else ():
        raw = await hub.bus.js.get_msg(stream, seq)
        found.append(msgspec.json.decode(raw.data, type=Trigger))
    return found


class StoreCalls:
    """Transactions begun and statements sent on one hub's engine."""

    def __init__(self, hub: Hub) -> None:
        self.transactions = 0
        self.statements = 0
        self.engine = hub.store.engine.sync_engine
        event.listen(self.engine, "begin", self._begin)
        event.listen(self.engine, "before_cursor_execute", self._statement)

    def _begin(self, *_: Any) -> None:
        self.transactions += 1

    def _statement(self, *_: Any) -> None:
        self.statements += 1

    def close(self) -> None:
        event.remove(self.engine, "begin", self._begin)
        event.remove(self.engine, "before_cursor_execute", self._statement)


@pytest.mark.plugins  # Stripe webhooks
async def test_a_batch_is_read_once_and_written_once_and_makes_each_trigger_once(
    own_hub: Hub, recorder: Recorder
) -> None:
    from journeyhub_stripe.sandbox import payment_intent

    hub = own_hub
    tenant = await hub.store.tenants.add("batch")
    stripe = await connection(hub, tenant, "stripe")
    crm = await connection(hub, tenant, "webhook")  # the tenant's other connection
    other_tenant = await hub.store.tenants.add("someone else")
    elsewhere = await connection(hub, other_tenant, "stripe")
    # Who the payers are: a Stripe customer linked on this connection, an email known on the
    # tenant's other connection, and the same email known to another tenant (never used here).
    await hub.store.sync.link(stripe.id, "customer", "cus_known", our_id="cl_by_customer")
    await hub.store.sync.link(crm.id, "contact", "c-9", our_id="cl_by_email", email="Ann@X.com")
    await hub.store.sync.link(elsewhere.id, "contact", "c-1", our_id="cl_other", email="bo@x.com")

    events = [
        stripe_event(payment_intent(1000 + i, metadata={"client_id": f"cl_meta{i}"}))
        for i in range(14)
    ]
    events.append(stripe_event(payment_intent(3000, customer="cus_known")))
    events.append(stripe_event(payment_intent(3001, receipt_email="ann@x.com")))
    events.append(stripe_event(payment_intent(3002, customer="cus_known", receipt_email="x@y")))
    events.append(stripe_event(payment_intent(3003, receipt_email="bo@x.com")))  # not ours
    events.append(stripe_event(payment_intent(3004, customer="cus_nobody")))
    events.append(stripe_event(payment_intent(3005)))
    for i, body in enumerate(events):
        await store_webhook(hub, stripe, body, f"m{i}")
    # A redelivery of the first webhook (stored again past the bus's duplicate window), in the
    # same batch as the original.
    await store_webhook(hub, stripe, events[0], "m0-again")
    await hub.connection_cache.get(stripe.id)
    await hub.connection_cache.for_tenant(tenant)

    batch = await fetch(hub, len(events) + 1)
    calls = StoreCalls(hub)
    try:
        await inbound.handle_batch(hub, batch)
    finally:
        calls.close()

    # One transaction reads (recorded ids, client ids), one writes (the triggers).
    assert (calls.transactions, calls.statements) == (2, 3)
    await backlog_becomes(hub, 0)  # every message acknowledged
    rows = await hub.store.triggers.list(tenant, limit=100)
    assert len(rows) == len(events) == len({r.source_event_id for r in rows})
    on_bus = await triggers_on_bus(hub)
    assert sorted(t.id for t in on_bus) == sorted(r.id for r in rows)
    assert sorted(t.id for t in recorder.emitted) == sorted(r.id for r in rows)
    client_of = {r.source_event_id: r.client_id for r in rows}
    assert [client_of[e["id"]] for e in events[:14]] == [f"cl_meta{i}" for i in range(14)]
    assert [client_of[e["id"]] for e in events[14:]] == [
        "cl_by_customer",
        "cl_by_email",
        "cl_by_customer",
        None,
        None,
        None,
    ]
    # The batch again (the whole batch redelivered): nothing new is published or recorded.
    for i, body in enumerate(events[:3]):
        await store_webhook(hub, stripe, body, f"m{i}-third")
    await inbound.handle_batch(hub, await fetch(hub, 3))
    await backlog_becomes(hub, 0)
    assert len(await triggers_on_bus(hub)) == len(events)
    assert len(recorder.emitted) == len(events)


@pytest.mark.plugins  # Stripe webhooks
async def test_a_trigger_recorded_before_is_not_published_again_after_the_dedupe_window(
    short_window_hub: Hub,
) -> None:
    from journeyhub_stripe.sandbox import payment_intent

    own = short_window_hub
    tenant = await own.store.tenants.add("window")
    stripe = await connection(own, tenant, "stripe")
    body = stripe_event(payment_intent(500, metadata={"client_id": "cl_w"}))
    await store_webhook(own, stripe, body, "first")
    await inbound.handle_batch(own, await fetch(own, 1))
    assert len(await triggers_on_bus(own)) == 1
    await asyncio.sleep(own.settings.dedupe_window_seconds + 0.5)
    # The bus would take the trigger again now: only the store says it exists.
    await store_webhook(own, stripe, body, "second")
    await inbound.handle_batch(own, await fetch(own, 1))
    await backlog_becomes(own, 0)
    assert len(await triggers_on_bus(own)) == 1
    assert len(await own.store.triggers.list(tenant)) == 1


@pytest_asyncio.fixture
async def short_window_hub(hub: Hub) -> AsyncIterator[Hub]:
    """A hub of its own whose bus forgets message ids after one second."""
    async with hub_of_its_own(hub, dedupe_window_seconds=1) as own:
        yield own


@pytest.fixture
def sized(own_hub: Hub) -> None:
    own_hub.registry.register(Sized(), name="sized")


async def limit_trigger_size(hub: Hub, max_bytes: int) -> None:
    info = await hub.bus.js.stream_info(hub.bus.subjects.stream("triggers"))
    config: StreamConfig = info.config
    config.max_msg_size = max_bytes
    await hub.bus.js.update_stream(config)


@pytest.mark.usefixtures("sized")
async def test_a_trigger_the_bus_refused_is_not_recorded_and_is_retried_in_order(
    own_hub: Hub, recorder: Recorder
) -> None:
    hub = own_hub
    tenant = await hub.store.tenants.add("refused")
    conn = await connection(hub, tenant, "sized")
    await limit_trigger_size(hub, 4096)  # JetStream refuses larger messages
    await store_webhook(hub, conn, {"id": "x1", "client": "cl_x", "size": 8000}, "x1")
    await store_webhook(hub, conn, {"id": "x2", "client": "cl_x", "size": 10}, "x2")
    await store_webhook(hub, conn, {"id": "y1", "client": "cl_y", "size": 10}, "y1")

    await inbound.handle_batch(hub, await fetch(hub, 3))
    # y1 went through; x1 was refused, so it is not recorded, and x2, a later trigger of the
    # same client, was held back behind it (not published ahead of it).
    assert [t.source_event_id for t in await triggers_on_bus(hub)] == ["y1"]
    assert [r.source_event_id for r in await hub.store.triggers.list(tenant)] == ["y1"]
    assert [t.source_event_id for t in recorder.emitted] == ["y1"]
    await backlog_becomes(hub, 2)  # x1 and x2 handed back, with a delay

    await limit_trigger_size(hub, -1)
    await inbound.handle_batch(hub, await fetch(hub, 2))  # their redelivery
    assert [t.source_event_id for t in await triggers_on_bus(hub)] == ["y1", "x1", "x2"]
    assert sorted(r.source_event_id for r in await hub.store.triggers.list(tenant)) == [
        "x1",
        "x2",
        "y1",
    ]
    assert len(recorder.emitted) == 3
    await backlog_becomes(hub, 0)
    emails = ["cl_x@example.com", "cl_y@example.com"]
    assert sorted(await hub.store.triggers.suppressed(tenant, emails)) == emails


@pytest.mark.usefixtures("sized")
async def test_a_trigger_the_store_refused_fails_only_its_own_webhook(
    own_hub: Hub, recorder: Recorder
) -> None:
    hub = own_hub
    tenant = await hub.store.tenants.add("unrecordable")
    conn = await connection(hub, tenant, "sized")
    await store_webhook(hub, conn, {"id": "ok1", "client": "a", "size": 1}, "ok1")
    await store_webhook(hub, conn, {"id": "bad", "client": "b", "size": 1, "when": 1}, "bad")
    await store_webhook(hub, conn, {"id": "ok2", "client": "c", "size": 1}, "ok2")

    await inbound.handle_batch(hub, await fetch(hub, 3))
    recorded = sorted(r.source_event_id for r in await hub.store.triggers.list(tenant))
    assert recorded == ["ok1", "ok2"]
    emails = ["a@example.com", "b@example.com", "c@example.com"]
    assert await hub.store.triggers.suppressed(tenant, emails) == {
        "a@example.com": "bounced",
        "c@example.com": "bounced",
    }
    assert sorted(t.source_event_id for t in recorder.emitted) == ["ok1", "ok2"]
    # All three were published (the store refused one afterwards); only "bad" comes back.
    assert len(await triggers_on_bus(hub)) == 3
    await backlog_becomes(hub, 1)
    again = await fetch(hub, 1)
    assert json.loads(msgspec.json.decode(again[0].data, type=StoredWebhook).body)["id"] == "bad"
    await again[0].ack()


@pytest.mark.plugins  # Stripe webhooks
async def test_the_worker_loop_drains_the_stream(own_hub: Hub, recorder: Recorder) -> None:
    """``inbound.run``: the durable consumer fetched by the shared consumer loop."""

    from journeyhub_stripe.sandbox import payment_intent

    hub = own_hub
    tenant = await hub.store.tenants.add("loop")
    stripe = await connection(hub, tenant, "stripe")
    for i in range(30):
        body = stripe_event(payment_intent(100 + i, metadata={"client_id": f"cl_{i % 4}"}))
        await store_webhook(hub, stripe, body, f"loop{i}")
    stop = asyncio.Event()
    task = asyncio.create_task(inbound.run(hub, stop))

    async def drained() -> bool:
        return await consumer_backlog(hub) == 0

    try:
        await eventually(drained, timeout=20)
        assert len(recorder.emitted) == 30
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    assert len(await hub.store.triggers.list(tenant)) == 30


class Slow:
    """A connector whose ``journeyhub_handle_webhook`` waits on the network (0.3 s)."""

    @hookimpl
    def journeyhub_connector(self) -> ConnectorInfo:
        return ConnectorInfo(
            vendor="slow",
            display_name="Slow",
            capabilities=frozenset({"webhook"}),
            auth_kind="none",
        )

    @hookimpl
    def journeyhub_verify_webhook(self, body: bytes) -> WebhookReceipt:
        return WebhookReceipt(event_id=msgspec.json.decode(body)["id"], event_type="slow")

    @hookimpl
    async def journeyhub_handle_webhook(self, webhook: StoredWebhook) -> list[TriggerDraft]:
        await asyncio.sleep(0.3)
        data = msgspec.json.decode(webhook.body)
        return [TriggerDraft(type="client_updated", source_event_id=data["id"], client_id="c")]


async def test_async_connector_hooks_run_side_by_side(own_hub: Hub, recorder: Recorder) -> None:
    hub = own_hub
    hub.registry.register(Slow(), name="slow")
    tenant = await hub.store.tenants.add("slow")
    conn = await connection(hub, tenant, "slow")
    for i in range(20):
        await store_webhook(hub, conn, {"id": f"s{i}"}, f"s{i}")
    batch = await fetch(hub, 20)
    started = asyncio.get_running_loop().time()
    await inbound.handle_batch(hub, batch)
    took = asyncio.get_running_loop().time() - started
    assert took < 3, f"20 hooks of 0.3 s took {took:.1f} s: one after the other"
    assert sorted(t.source_event_id for t in recorder.emitted) == sorted(f"s{i}" for i in range(20))
    await backlog_becomes(hub, 0)
