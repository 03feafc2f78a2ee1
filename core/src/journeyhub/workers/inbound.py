"""The inbound worker: stored webhooks → the plugin's ``handle_webhook`` → triggers.

It works per fetched batch, not per message:

1. every webhook of the batch goes through its connector's ``journeyhub_handle_webhook``;
2. the drafts of the whole batch are emitted at once (``services.triggers.emit_batch``: one
   store transaction to read, concurrent publishes in the stream's order per client, one
   store transaction to record);
3. the webhooks are acknowledged. One whose trigger could not be published (or recorded) is
   delivered again later, with backoff, and goes to the dead letters after
   ``JOURNEYHUB_MAX_DELIVER`` deliveries.
"""

from __future__ import annotations

import asyncio
import inspect
import sys
from dataclasses import dataclass
from typing import Any

import msgspec
from nats.aio.msg import Msg
from opentelemetry.trace import Span

from journeyhub import metrics, tracing
from journeyhub.hub import Hub
from journeyhub.logs import correlation_scope, get_logger
from journeyhub.model import StoredWebhook
from journeyhub.services.connections import request_sync
from journeyhub.services.triggers import Emission, emit_batch
from journeyhub.workers.consumer import backoff_delay, consume, settle_all
from journeyhub.workers.deadletter import dead_letter

log = get_logger(__name__)
# Messages fetched at once: the store round trips are per batch, so a larger batch costs less
# per webhook (bench/ingest); the consumer allows 2,000 unacknowledged.
BATCH = 256
# Connector hooks running at once (a hook may call the vendor's API).
HOOK_CONCURRENCY = 32


@dataclass(eq=False)
class _Inbound:
    msg: Msg
    webhook: StoredWebhook
    attempt: int
    emission: Emission | None = None
    outcome: str = "processed"  # processed | unknown_type | deleted_connection | failed
    span: Span | None = None  # when tracing

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


async def handle_batch(hub: Hub, messages: list[Msg], spans: dict[int, Span] | None = None) -> None:
    """Turn a fetched batch of stored webhooks into triggers (see the module's docstring) and
    settle every message: ack, nak with backoff, or dead letter."""
    if tracing.ENABLED and spans is None:
        await handle_batch_traced(hub, messages)
        return
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
    if spans is not None:
        for item in items:
            item.span = spans[id(item.msg)]
            item.span.set_attributes(
                {
                    "journeyhub.vendor": item.webhook.vendor,
                    "journeyhub.connection_id": item.webhook.connection_id,
                    "journeyhub.event_id": item.webhook.event_id,
                    "journeyhub.event_type": item.webhook.event_type or "",
                }
            )

    async def prepare(item: _Inbound) -> None:
        with item.scope():
            try:
                if tracing.ENABLED:  # the connector's calls and the triggers in its span
                    with tracing.active(item.span):
                        await _drafts(hub, item)
                    if item.emission is not None:
                        item.emission.span = item.span
                else:
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
    if spans is not None:
        for item in items:
            if item.span is not None:
                item.span.set_attribute("journeyhub.outcome", item.outcome)
                if item.outcome == "failed":
                    tracing.fail(item.span, "not_processed")


async def handle_batch_traced(hub: Hub, messages: list[Msg]) -> None:
    """``handle_batch`` with a span per webhook, child of the gateway's publish."""
    prefix = hub.bus.subjects.prefix
    spans = {id(m): tracing.process_span(prefix, m, "inbound-worker") for m in messages}
    try:
        await handle_batch(hub, messages, spans)
    finally:
        for span in spans.values():
            tracing.end(span, sys.exc_info()[1])


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
    entry = await hub.connection_cache.get(webhook.connection_id)
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
    for connection_id in wanted:
        await request_sync(hub.store, connection_id)


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
