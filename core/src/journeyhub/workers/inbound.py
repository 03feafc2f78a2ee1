"""The inbound worker: stored webhooks → the plugin's ``handle_webhook`` → triggers.

Each trigger gets a deterministic id, is published to ``jh.triggers.<tenant>`` with that id as
``Nats-Msg-Id``, and is recorded; the webhook is acknowledged only after all of that. A message
that keeps failing goes to the dead letters after ``JOURNEYHUB_MAX_DELIVER`` deliveries.
"""

from __future__ import annotations

import asyncio

import msgspec
from nats.aio.msg import Msg

from journeyhub import metrics
from journeyhub.hub import Hub
from journeyhub.logs import correlation_scope, get_logger
from journeyhub.model import Connection, StoredWebhook, Trigger, TriggerDraft, stable_id, utcnow
from journeyhub.workers.consumer import backoff_delay, consume, each
from journeyhub.workers.deadletter import dead_letter

log = get_logger(__name__)
SUPPRESSING_TRIGGERS = {
    "email_bounced": "bounced",
    "email_complained": "complained",
    "email_unsubscribed": "unsubscribed",
    "email_suppressed": "suppressed",
}


def trigger_id(connection_id: str, draft: TriggerDraft) -> str:
    """The same vendor event gives the same id, whether it came by webhook or by pull."""
    return stable_id("trg", connection_id, draft.source_event_id, draft.type)


async def resolve_client_id(hub: Hub, connection: Connection, draft: TriggerDraft) -> str | None:
    if draft.client_id:
        return draft.client_id
    if not (draft.vendor_record_id or draft.client_email):
        return None
    tenant_connections = [c.id for c in await hub.connections.for_tenant(connection.tenant_id)]
    return await hub.store.sync.client_id_for(
        tenant_connections or [connection.id],
        vendor_record_id=draft.vendor_record_id,
        email=draft.client_email,
    )


async def emit_triggers(hub: Hub, connection: Connection, drafts: list[TriggerDraft],
                        correlation_id: str | None = None) -> int:  # fmt: skip
    """Publish and record each draft as a trigger once; return how many were new."""
    new = 0
    for draft in drafts:
        tid = trigger_id(connection.id, draft)
        if await hub.store.triggers.exists(tid):
            continue  # recorded before: published before, and maybe past the dedupe window
        trigger = Trigger(
            id=tid,
            type=draft.type,
            tenant_id=connection.tenant_id,
            connection_id=connection.id,
            vendor=connection.vendor,
            client_id=await resolve_client_id(hub, connection, draft),
            occurred_at=draft.occurred_at or utcnow(),
            source_event_id=draft.source_event_id,
            data=draft.data,
        )
        headers = {"Journeyhub-Correlation-Id": correlation_id} if correlation_id else None
        await hub.bus.publish(
            hub.bus.subjects.triggers(connection.tenant_id),
            msgspec.json.encode(trigger),
            msg_id=tid,
            headers=headers,
        )
        if reason := SUPPRESSING_TRIGGERS.get(trigger.type):
            email = draft.data.get("email") or draft.client_email
            if isinstance(email, str) and email:
                await hub.store.triggers.suppress(connection.tenant_id, email, reason, tid)
        if await hub.store.triggers.record(trigger):
            new += 1
            metrics.triggers_emitted.labels(connection.vendor, trigger.type).inc()
            hub.registry.broadcast("journeyhub_trigger_emitted", trigger=trigger)
    return new


async def handle(hub: Hub, msg: Msg) -> None:
    attempt = msg.metadata.num_delivered or 1
    try:
        webhook = msgspec.json.decode(msg.data, type=StoredWebhook)
    except msgspec.DecodeError as exc:
        parts = msg.subject.split(".")
        await dead_letter(
            hub, msg, tenant_id="-", connection_id=parts[-1], vendor=parts[-2], stage="inbound",
            error=f"undecodable stored webhook: {exc}", attempts=attempt,
        )  # fmt: skip
        return
    with correlation_scope(
        webhook.correlation_id or webhook.event_id,
        vendor=webhook.vendor,
        connection_id=webhook.connection_id,
        event_id=webhook.event_id,
    ):
        await _handle(hub, msg, webhook, attempt)


async def _handle(hub: Hub, msg: Msg, webhook: StoredWebhook, attempt: int) -> None:
    try:
        entry = await hub.connections.get(webhook.connection_id)
        if entry is None:
            log.warning("webhook_for_deleted_connection")
            await msg.ack()
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
            await msg.ack()
            return
        correlation_id = webhook.correlation_id or webhook.event_id
        new = await emit_triggers(hub, connection, list(drafts), correlation_id)
        loaded = hub.registry.connectors.get(webhook.vendor)
        if loaded is not None and loaded.info.sync_on_webhook:
            from journeyhub.workers.sync import request_sync

            await request_sync(hub, connection.id)  # the notification says "something changed"
        await msg.ack()
        log.info("webhook_processed", triggers=len(drafts), new_triggers=new)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        if attempt >= hub.settings.max_deliver:
            await dead_letter(
                hub, msg, tenant_id=webhook.tenant_id, connection_id=webhook.connection_id,
                vendor=webhook.vendor, stage="inbound", error=error, attempts=attempt,
            )  # fmt: skip
        else:
            delay = backoff_delay(attempt)
            log.warning("webhook_failed_will_retry", error=error, attempt=attempt, retry_in=delay)
            await msg.nak(delay=delay)


async def run(hub: Hub, stop: asyncio.Event) -> None:
    async def handle_batch(messages: list[Msg]) -> None:
        await each(messages, lambda m: handle(hub, m), limit=32)

    await consume(hub, stop, durable="inbound-worker", stream_kind="inbound",
                  handle_batch=handle_batch, batch=64)  # fmt: skip
