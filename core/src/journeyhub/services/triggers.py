"""Emitting triggers: one source's drafts (a webhook, a pulled page, an imported file) become
triggers, each published and recorded once.

1. one store transaction reads which of the drafts' trigger ids are recorded already, and
   resolves the client ids of the others from the sync links (``TriggerRepo.look_up``);
2. the new triggers are published to ``jh.triggers.<tenant>`` concurrently, each with its
   deterministic id as ``Nats-Msg-Id``; one client's triggers go one after the other, in the
   order given, and stop at the first failure;
3. one store transaction records the triggers JetStream acknowledged, and the addresses they
   suppress (``TriggerRepo.record_many``: ``INSERT … ON CONFLICT DO NOTHING``).

The order is what keeps a trigger single: a trigger is recorded only after its publish was
acknowledged, so "recorded" implies "published"; and a trigger recorded already is never
published again, which matters once the bus's duplicate window has passed. Two workers racing
on one source both publish (the bus drops the second within its window) and both insert (the
second insert does nothing): the trigger is recorded once, and its observers are told once.

The inbound worker emits a fetched batch of webhooks at once (:func:`emit_batch`); the sync
worker a pulled page, and ``journeyhub connections import-csv`` a file (:func:`emit_triggers`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import msgspec
from opentelemetry.trace import Span

from journeyhub import metrics, tracing
from journeyhub.hub import Hub
from journeyhub.model import Connection, Trigger, TriggerDraft, stable_id, utcnow
from journeyhub.store.triggers import ClientQuery, SuppressionRow
from journeyhub.workers.consumer import settle_all

SUPPRESSING_TRIGGERS = {
    "email_bounced": "bounced",
    "email_complained": "complained",
    "email_unsubscribed": "unsubscribed",
    "email_suppressed": "suppressed",
}
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
    span: Span | None = None  # when tracing: the source's span, parent of its publishes


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
            tenants[tenant] = tuple(c.id for c in await hub.connection_cache.for_tenant(tenant))
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
        # ``data.suppress = False``: the connector knows it passes (a soft bounce)
        reason = SUPPRESSING_TRIGGERS.get(trigger.type)
        if reason and plan.draft.data.get("suppress") is not False:
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
                    publishing = hub.bus.publish(
                        subjects[trigger.tenant_id],
                        msgspec.json.encode(trigger),
                        msg_id=trigger.id,
                        headers=headers,
                    )
                    if tracing.ENABLED:
                        await tracing.within(plan.emissions[0].span, publishing)
                    else:
                        await publishing
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


async def read_csv_export(
    hub: Hub, connection_id: str, text: str
) -> tuple[Connection, list[TriggerDraft]]:
    """A vendor's export (e.g. HoneyBook's payments CSV) read by the connection's connector
    into drafts, for :func:`emit_triggers`. Raises ``LookupError`` when there is no such
    connection (or no plugin for its vendor), ``ValueError`` for a file the connector cannot
    read."""
    found = await hub.store.connections.get_with_credentials(connection_id)
    if found is None:
        raise LookupError(f"no connection {connection_id!r}")
    connection, credentials = found
    drafts = await hub.registry.call(
        connection.vendor,
        "journeyhub_import_csv",
        connection=connection,
        credentials=credentials,
        text=text,
    )
    return connection, list(drafts)
