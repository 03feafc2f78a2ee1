"""The inbound worker: stored webhooks → the plugin's ``handle_webhook`` → triggers.

It works per fetched batch, not per message:

1. every webhook of the batch goes through its connector's ``journeyhub_handle_webhook``;
2. one store transaction reads which of the batch's trigger ids are recorded already, and
   resolves the client ids of the others from the sync links (``TriggerRepo.look_up``);
3. the new triggers are published to ``jh.triggers.<tenant>`` concurrently, each with its
   deterministic id as ``Nats-Msg-Id``; one client's triggers go one after the other, in the
   order of the stream, and stop at the first failure;
4. one store transaction records the triggers JetStream acknowledged, and the addresses they
   suppress (``TriggerRepo.record_many``: ``INSERT … ON CONFLICT DO NOTHING``);
5. the webhooks are acknowledged. One whose trigger could not be published (or recorded) is
   delivered again later, with backoff, and goes to the dead letters after
   ``JOURNEYHUB_MAX_DELIVER`` deliveries.

The order is what keeps a trigger single: a trigger is recorded only after its publish was
acknowledged, so "recorded" implies "published"; and a trigger recorded already is never
published again, which matters once the bus's duplicate window has passed. Two workers racing
on one webhook both publish (the bus drops the second within its window) and both insert (the
second insert does nothing): the trigger is recorded once, and its observers are told once.

``emit_triggers`` (one source's drafts: a sync page, an imported file) runs the same steps.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
from nats.aio.msg import Msg

from journeyhub import metrics
from journeyhub.hub import Hub
from journeyhub.logs import correlation_scope, get_logger
from journeyhub.model import Connection, StoredWebhook, Trigger, TriggerDraft, stable_id, utcnow
from journeyhub.store.triggers import ClientQuery, SuppressionRow
from journeyhub.workers.consumer import backoff_delay, consume, settle_all
from journeyhub.workers.deadletter import dead_letter

log = get_logger(__name__)
SUPPRESSING_TRIGGERS = {
    "email_bounced": "bounced",
    "email_complained": "complained",
    "email_unsubscribed": "unsubscribed",
    "email_suppressed": "suppressed",
}
# Messages fetched at once: the store round trips are per batch, so a larger batch costs less
# per webhook (bench/ingest); the consumer allows 2,000 unacknowledged.
BATCH = 256
# Connector hooks running at once (a hook may call the vendor's API).
HOOK_CONCURRENCY = 32
# Trigger publishes awaiting their acknowledgement at once.
PUBLISH_CONCURRENCY = 256


class HeldBack(RuntimeError):
    """Not published: an earlier trigger of the same client in the batch failed to publish."""


def trigger_id(connection_id: str, draft: TriggerDraft) -> str:
    """The same vendor event gives the same id, whether it came by webhook or by pull."""
    return stable_id("trg", connection_id, draft.source_event_id, draft.type)


@dataclass(eq=False)
class Emission:
    """The drafts one source (a webhook, a pulled page, an imported file) asks to emit, and
    the outcome: ``new`` triggers recorded by this emission; ``error`` when some of its
    triggers are neither recorded nor published for sure, so the source must be retried
    (what was recorded is skipped then)."""

    connection: Connection
    drafts: Sequence[TriggerDraft]
    correlation_id: str | None = None
    new: int = 0
    error: BaseException | None = None


@dataclass(eq=False)
class _Planned:
    trigger_id: str
    connection: Connection
    draft: TriggerDraft
    correlation_id: str | None
    emissions: list[Emission]
    trigger: Trigger | None = None
    error: BaseException | None = None


async def emit_batch(hub: Hub, emissions: Sequence[Emission]) -> None:
    """Publish and record the drafts of every emission, with one store transaction to read and
    one to write. Sets each emission's ``new`` and ``error``. Raises when the store cannot be
    read, or cannot be written for a single source: then nothing of it is recorded (what was
    published is published again on the retry, and the bus drops it within its duplicate
    window)."""
    planned: dict[str, _Planned] = {}
    for emission in emissions:
        for draft in emission.drafts:
            tid = trigger_id(emission.connection.id, draft)
            if tid in planned:  # the same trigger twice in a batch: one publish, one record
                if emission not in planned[tid].emissions:
                    planned[tid].emissions.append(emission)
                continue
            planned[tid] = _Planned(
                tid, emission.connection, draft, emission.correlation_id, [emission]
            )
    if not planned:
        return

    clients: dict[str, ClientQuery] = {}
    tenants: dict[str, tuple[str, ...]] = {}
    for plan in planned.values():
        draft = plan.draft
        if draft.client_id or not (draft.vendor_record_id or draft.client_email):
            continue
        tenant = plan.connection.tenant_id
        if tenant not in tenants:
            tenants[tenant] = tuple(c.id for c in await hub.connections.for_tenant(tenant))
        clients[plan.trigger_id] = ClientQuery(
            connection_ids=tenants[tenant] or (plan.connection.id,),
            vendor_record_id=draft.vendor_record_id,
            email=draft.client_email,
        )
    existing, client_ids = await hub.store.triggers.look_up(planned.keys(), clients)

    # Recorded before: published before, and maybe past the bus's duplicate window.
    fresh = [plan for tid, plan in planned.items() if tid not in existing]
    now = utcnow()
    for plan in fresh:
        draft, connection = plan.draft, plan.connection
        plan.trigger = Trigger(
            id=plan.trigger_id,
            type=draft.type,
            tenant_id=connection.tenant_id,
            connection_id=connection.id,
            vendor=connection.vendor,
            client_id=draft.client_id or client_ids.get(plan.trigger_id),
            occurred_at=draft.occurred_at or now,
            source_event_id=draft.source_event_id,
            data=draft.data,
        )
    await _publish(hub, fresh)

    recorded = await _record(hub, [plan for plan in fresh if plan.error is None])

    for plan in fresh:
        if plan.error is not None:
            for emission in plan.emissions:
                emission.error = emission.error or plan.error
            continue
        if plan.trigger_id not in recorded:
            continue  # another worker recorded it meanwhile: its observers were told there
        plan.emissions[0].new += 1
        trigger = plan.trigger
        assert trigger is not None
        metrics.triggers_emitted.labels(trigger.vendor, trigger.type).inc()
        hub.registry.broadcast("journeyhub_trigger_emitted", trigger=trigger)


async def _record(hub: Hub, plans: list[_Planned]) -> set[str]:
    """Record the published triggers (and the addresses they suppress) in one transaction;
    the ids recorded by this call. When that fails, each source's triggers are tried in a
    transaction of their own: a trigger the store refuses (a value its JSON column cannot
    hold) then fails its own webhook, not every webhook of the batch, and is not recorded
    (``error`` set); when the store is away, every one of them fails the same way."""
    by_source: dict[int, list[_Planned]] = {}
    for plan in plans:
        by_source.setdefault(id(plan.emissions[0]), []).append(plan)
    try:
        return await _record_many(hub, plans)
    except Exception:
        if len(by_source) == 1:
            raise
    recorded: set[str] = set()
    for group in by_source.values():
        try:
            recorded |= await _record_many(hub, group)
        except Exception as exc:
            for plan in group:
                plan.error = exc
    return recorded


async def _record_many(hub: Hub, plans: list[_Planned]) -> set[str]:
    triggers, suppressions = [], []
    for plan in plans:
        trigger = plan.trigger
        assert trigger is not None
        triggers.append(trigger)
        if reason := SUPPRESSING_TRIGGERS.get(trigger.type):
            email = plan.draft.data.get("email") or plan.draft.client_email
            if isinstance(email, str) and email:
                suppressions.append(SuppressionRow(trigger.tenant_id, email, reason, trigger.id))
    return await hub.store.triggers.record_many(triggers, suppressions)


async def _publish(hub: Hub, plans: list[_Planned]) -> None:
    """Publish every planned trigger, setting ``error`` on those JetStream did not acknowledge.
    One client's triggers (per tenant) go one after the other, in order, and the rest of them
    is held back after a failure: a later trigger must not be published ahead of an earlier
    one that will only be published on the retry. Different clients go concurrently."""
    chains: dict[tuple[str, str], list[_Planned]] = {}
    for plan in plans:
        trigger = plan.trigger
        assert trigger is not None
        chains.setdefault((trigger.tenant_id, trigger.client_id or trigger.id), []).append(plan)
    slots = asyncio.Semaphore(PUBLISH_CONCURRENCY)
    subjects = {tenant: hub.bus.subjects.triggers(tenant) for tenant, _ in chains}

    async def publish_chain(chain: list[_Planned]) -> None:
        for index, plan in enumerate(chain):
            trigger = plan.trigger
            assert trigger is not None
            headers = (
                {"Journeyhub-Correlation-Id": plan.correlation_id} if plan.correlation_id else None
            )
            try:
                async with slots:
                    await hub.bus.publish(
                        subjects[trigger.tenant_id],
                        msgspec.json.encode(trigger),
                        msg_id=trigger.id,
                        headers=headers,
                    )
            except Exception as exc:
                plan.error = exc
                for later in chain[index + 1 :]:
                    later.error = HeldBack(f"held back behind trigger {trigger.id}: {exc}")
                return

    await settle_all(*(publish_chain(chain) for chain in chains.values()))


async def emit_triggers(
    hub: Hub, connection: Connection, drafts: list[TriggerDraft], correlation_id: str | None = None
) -> int:
    """Publish and record each draft as a trigger once; return how many were new. Raises
    when one could not be published or recorded (the others are kept: call it again)."""
    emission = Emission(connection, drafts, correlation_id)
    await emit_batch(hub, [emission])
    if emission.error is not None:
        raise emission.error
    return emission.new


# --- the worker ------------------------------------------------------------------------------


@dataclass(eq=False)
class _Inbound:
    msg: Msg
    webhook: StoredWebhook
    attempt: int
    emission: Emission | None = None
    outcome: str = "processed"  # processed | unknown_type | deleted_connection | failed

    @property
    def correlation_id(self) -> str:
        return self.webhook.correlation_id or self.webhook.event_id

    def scope(self) -> Any:
        return correlation_scope(
            self.correlation_id,
            vendor=self.webhook.vendor,
            connection_id=self.webhook.connection_id,
            event_id=self.webhook.event_id,
        )


async def handle_batch(hub: Hub, messages: list[Msg]) -> None:
    """Turn a fetched batch of stored webhooks into triggers (see the module's docstring) and
    settle every message: ack, nak with backoff, or dead letter."""
    items: list[_Inbound] = []
    # nats.py parses a message's metadata from its reply subject at each access: once here.
    metadata = {id(msg): msg.metadata for msg in messages}
    # In the stream's order: a redelivered webhook comes back among later ones, and one
    # client's triggers are published in the order of the batch.
    for msg in sorted(messages, key=lambda m: metadata[id(m)].sequence.stream):
        attempt = metadata[id(msg)].num_delivered or 1
        try:
            webhook = msgspec.json.decode(msg.data, type=StoredWebhook)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            parts = msg.subject.split(".")
            await dead_letter(
                hub,
                msg,
                tenant_id="-",
                connection_id=parts[-1],
                vendor=parts[-2],
                stage="inbound",
                error=f"undecodable stored webhook: {exc}",
                attempts=attempt,
            )
            continue
        items.append(_Inbound(msg, webhook, attempt))

    async def prepare(item: _Inbound) -> None:
        with item.scope():
            try:
                await _drafts(hub, item)
            except Exception as exc:
                item.outcome = "failed"
                await _retry_or_dead_letter(hub, item, exc)

    # A connector's async hook may call the vendor's API: those run side by side. A plain
    # function runs to its end at once, and a task per webhook would only add its cost (a
    # quarter of the worker's CPU per webhook).
    waits = _vendors_with_async_hooks(hub)
    for item in items:
        if item.webhook.vendor not in waits:
            await prepare(item)
    slots = asyncio.Semaphore(HOOK_CONCURRENCY)

    async def prepare_beside(item: _Inbound) -> None:
        async with slots:
            await prepare(item)

    await settle_all(*(prepare_beside(item) for item in items if item.webhook.vendor in waits))

    working = [item for item in items if item.emission is not None]
    try:
        await emit_batch(hub, [item.emission for item in working if item.emission is not None])
        await _request_syncs(hub, working)
    except Exception as exc:  # the store or the bus is away: the whole batch again, later
        for item in working:
            item.emission.error = exc  # type: ignore[union-attr]

    failed = [item for item in working if item.emission and item.emission.error is not None]
    # One delay for all of them: they come back together, in one batch, and a client's
    # trigger held back behind another one is published after it again.
    delay = backoff_delay(max((item.attempt for item in failed), default=1))
    for item in working:
        error = item.emission.error if item.emission is not None else None
        if error is None:
            await item.msg.ack()
            continue
        item.outcome = "failed"
        with item.scope():
            await _retry_or_dead_letter(hub, item, error, delay)

    if items:
        _log_batch(items)


def _vendors_with_async_hooks(hub: Hub) -> frozenset[str]:
    """The connectors (plugins are registered under their vendor's name) whose
    ``journeyhub_handle_webhook`` is a coroutine function."""
    hook = hub.registry.pm.hook.journeyhub_handle_webhook
    return frozenset(
        impl.plugin_name
        for impl in hook.get_hookimpls()
        if inspect.iscoroutinefunction(impl.function)
    )


async def _drafts(hub: Hub, item: _Inbound) -> None:
    """The webhook's drafts from its connector, as ``item.emission``; or the message is
    acknowledged at once (a deleted connection, an event type the connector does not map)."""
    webhook = item.webhook
    entry = await hub.connections.get(webhook.connection_id)
    if entry is None:
        log.warning("webhook_for_deleted_connection")
        item.outcome = "deleted_connection"
        await item.msg.ack()
        return
    connection, credentials = entry
    drafts = await hub.registry.call(
        webhook.vendor,
        "journeyhub_handle_webhook",
        connection=connection,
        credentials=credentials,
        webhook=webhook,
        http=hub.http,
    )
    if drafts is None:
        metrics.webhook_events_unknown.labels(webhook.vendor, webhook.event_type or "-").inc()
        log.info("webhook_event_type_unknown", event_type=webhook.event_type)
        item.outcome = "unknown_type"
        await item.msg.ack()
        return
    item.emission = Emission(connection, list(drafts), item.correlation_id)


async def _request_syncs(hub: Hub, items: list[_Inbound]) -> None:
    """A connector whose webhooks only say "something changed" (``sync_on_webhook``) gets one
    sync request per connection per batch, before its webhooks are acknowledged."""
    wanted: dict[str, None] = {}
    for item in items:
        loaded = hub.registry.connectors.get(item.webhook.vendor)
        if loaded is not None and loaded.info.sync_on_webhook:
            wanted[item.webhook.connection_id] = None
    if wanted:
        from journeyhub.workers.sync import request_sync

        for connection_id in wanted:
            await request_sync(hub, connection_id)


async def _retry_or_dead_letter(
    hub: Hub, item: _Inbound, exc: BaseException, delay: float | None = None
) -> None:
    error = f"{type(exc).__name__}: {exc}"
    webhook = item.webhook
    if item.attempt >= hub.settings.max_deliver:
        await dead_letter(
            hub,
            item.msg,
            tenant_id=webhook.tenant_id,
            connection_id=webhook.connection_id,
            vendor=webhook.vendor,
            stage="inbound",
            error=error,
            attempts=item.attempt,
        )
    else:
        delay = backoff_delay(item.attempt) if delay is None else delay
        log.warning("webhook_failed_will_retry", error=error, attempt=item.attempt, retry_in=delay)
        await item.msg.nak(delay=delay)


def _log_batch(items: list[_Inbound]) -> None:
    """One line per batch, listing the webhooks acknowledged by their correlation id (the
    gateway's request id) and event id, so that ``grep <request id>`` still finds what became
    of each; the trigger router's ``routed`` line then lists its trigger. Flat lists of ids:
    every value of a line goes through the secret scrubber, and a dict per webhook cost more
    than the rest of the line. A failure has its own warning line besides."""
    done = [item for item in items if item.outcome != "failed"]
    log.info(
        "webhooks_processed",
        count=len(items),
        new_triggers=sum(item.emission.new for item in done if item.emission is not None),
        failed=len(items) - len(done),
        correlation_ids=[item.correlation_id for item in done],
        event_ids=[item.webhook.event_id for item in done],
        # Acknowledged without a new trigger: recorded before (a redelivery), no trigger for
        # this event, an event type the connector does not map, or a deleted connection.
        no_new_trigger=[
            item.correlation_id for item in done if item.emission is None or not item.emission.new
        ],
    )


async def run(hub: Hub, stop: asyncio.Event) -> None:
    async def handle(messages: list[Msg]) -> None:
        await handle_batch(hub, messages)

    await consume(
        hub, stop, durable="inbound-worker", stream_kind="inbound", handle_batch=handle, batch=BATCH
    )
