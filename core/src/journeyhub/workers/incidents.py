"""The incident evaluator: turns the state the hub keeps into incidents, and tells each
tenant's operators of them through its operations connections.

Once per interval (``JOURNEYHUB_INCIDENT_INTERVAL_SECONDS``) however many workers run: the
worker that claims the ``incidents`` lease for the interval evaluates (as the retention purge
does). An evaluation reads what other parts write anyway (``store/incidents.py``: connections'
status, breakers, dead letters, pending tasks, sync cursors), so the hot path pays nothing.

- A condition seen with no open incident raises one (``incident.raised``).
- While it lasts, its size (dead letters, pending tasks, failed syncs) having doubled since
  the last notice updates it (``incident.updated``): a growing condition is told of a few
  times, not once per evaluation.
- Once it is gone for ``JOURNEYHUB_INCIDENT_RESOLVE_AFTER_SECONDS`` it is resolved
  (``incident.resolved``); back within that time, the incident simply goes on. A condition
  that flaps makes one incident, not a storm.

Each change bumps the incident's ``revision``; the notices of revisions not yet told
(``notified_revision``, an outbox in the incidents table) become delivery tasks of kind
``incident`` on the tenant's connections whose connector has the ``operations`` capability
(and whose ``journeyhub_takes_incidents`` says yes), in the same push machinery as every
delivery: retries, the breaker, dead letters. Task ids are deterministic, so an evaluator that
dies between publishing and marking, or two evaluators at once, deliver each notice once. A
notice about a connection never goes to that connection itself (its trouble would feed on
itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from datetime import datetime, timedelta
from functools import partial

import msgspec
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from journeyhub.hub import Hub
from journeyhub.logs import get_logger
from journeyhub.model import Connection, DeliveryTask, IncidentNotice, stable_id, utcnow
from journeyhub.store.incidents import KINDS, OPEN, RESOLVED, Condition
from journeyhub.store.tables import Incident
from journeyhub.workers.router import CORRELATION_HEADER

log = get_logger(__name__)
LEASE = "incidents"
OPERATIONS = "operations"  # the capability of a connector that tells operators


class Evaluator:
    def __init__(self, hub: Hub, *, lease: str = LEASE) -> None:
        self.hub = hub
        self.settings = hub.settings
        self.repo = hub.store.incidents
        self.lease = lease
        self.holder = f"{os.uname().nodename}:{os.getpid()}:{uuid.uuid4().hex[:6]}"

    async def run(self, stop: asyncio.Event) -> None:
        """Evaluate whenever this worker wins the interval's lease, until ``stop``."""
        interval = float(self.settings.incident_interval_seconds)
        while not stop.is_set():
            try:
                if await self.hub.store.leases.claim(self.lease, self.holder, interval):
                    await self.evaluate()
            except Exception as exc:  # the store or the bus away: the next interval tries again
                log.warning("incident_evaluation_failed", error=repr(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)

    async def evaluate(self) -> None:
        """One evaluation: bring the incidents in line with what holds now, then tell."""
        now = utcnow()
        seen = {
            c.key: c
            for c in await self.repo.observe(
                now=now,
                backlog_stall_seconds=float(self.settings.incident_backlog_stall_seconds),
                sync_failures=self.settings.incident_sync_failures,
            )
        }
        opened = {i.open_key: i for i in await self.repo.open_incidents()}
        for key, condition in seen.items():
            incident = opened.get(key)
            if incident is None:
                await self.raise_(condition, now)
            else:
                await self.goes_on(incident, condition, now)
        resolve_after = timedelta(seconds=self.settings.incident_resolve_after_seconds)
        for open_key, incident in opened.items():
            if open_key not in seen:
                await self.clears(incident, now, resolve_after)
        await self.notify()

    async def raise_(self, condition: Condition, now: datetime) -> None:
        incident = await self.repo.raise_(condition, now)
        if incident is not None:
            log.warning(
                "incident_raised",
                incident_id=incident.id,
                kind=condition.kind,
                tenant_id=condition.tenant_id,
                connection_id=condition.connection_id,
            )

    async def goes_on(self, incident: Incident, condition: Condition, now: datetime) -> None:
        """The condition still holds: an update when it has doubled, else a quiet refresh of
        what the incident shows (and a clearing that did not last is forgotten)."""
        details = {"summary": condition.summary, "details": condition.details}
        if condition.measure >= 2 * max(incident.measure, 1):
            if await self.repo.change(
                incident,
                revision=incident.revision + 1,
                measure=condition.measure,
                clear_since=None,
                updated_at=now,
                **details,
            ):
                log.warning("incident_updated", incident_id=incident.id, kind=incident.kind)
        elif incident.clear_since is not None or condition.details != incident.details:
            await self.repo.change(incident, clear_since=None, updated_at=now, **details)

    async def clears(self, incident: Incident, now: datetime, resolve_after: timedelta) -> None:
        """The condition is not seen: resolved once it has stayed away ``resolve_after``."""
        if incident.clear_since is None and resolve_after > timedelta(0):
            await self.repo.change(incident, clear_since=now, updated_at=now)
            return
        if incident.clear_since is not None and now - incident.clear_since < resolve_after:
            return
        if await self.repo.change(
            incident,
            status=RESOLVED,
            open_key=None,
            revision=incident.revision + 1,
            resolved_at=now,
            updated_at=now,
        ):
            log.info("incident_resolved", incident_id=incident.id, kind=incident.kind)

    # --- telling the tenant ---------------------------------------------------------------------

    async def notify(self) -> None:
        for incident in await self.repo.unnotified():
            notices = notices_of(incident)
            connections = [
                c
                for c in await self.hub.connection_cache.for_tenant(incident.tenant_id)
                if c.id != incident.connection_id and await self.takes_incidents(c)
            ]
            tasks = [task_for(notice, c) for notice in notices for c in connections]
            if tasks:
                await self.hub.store.run(partial(self.hub.store.tasks.add, tasks=tasks))
                for task in tasks:  # in order: raised before resolved
                    await self.hub.bus.publish(
                        self.hub.bus.subjects.push(task.connection_id),
                        msgspec.json.encode(task),
                        msg_id=task.id,
                        headers={CORRELATION_HEADER: task.correlation_id or task.id},
                    )
            await self.repo.mark_notified(incident.id, incident.revision)

    async def takes_incidents(self, connection: Connection) -> bool:
        """Whether ``connection`` tells the tenant's operators (see the module docstring)."""
        registry = self.hub.registry
        loaded = registry.connectors.get(connection.vendor)
        if not connection.enabled or connection.direction == "inbound" or loaded is None:
            return False
        if OPERATIONS not in loaded.info.capabilities:
            return False
        if not registry.implements(connection.vendor, "journeyhub_takes_incidents"):
            return True
        try:
            return bool(
                await registry.call(
                    connection.vendor, "journeyhub_takes_incidents", connection=connection
                )
            )
        except Exception as exc:  # a config that no longer decodes: that connection is out
            log.warning("takes_incidents_failed", connection_id=connection.id, error=repr(exc))
            return False


def notices_of(incident: Incident) -> list[IncidentNotice]:
    """The notices of the incident's revisions not told yet, in order: its raising (revision
    1) if not told, then its resolution or its latest update."""
    told = incident.notified_revision

    def notice(type_: str, revision: int) -> IncidentNotice:
        return IncidentNotice(
            type=type_,  # type: ignore[arg-type]
            id=incident.id,
            tenant_id=incident.tenant_id,
            kind=incident.kind,
            connection_id=incident.connection_id,
            status=OPEN if type_ != "incident.resolved" else RESOLVED,  # type: ignore[arg-type]
            revision=revision,
            started_at=incident.started_at,
            updated_at=incident.updated_at,
            resolved_at=incident.resolved_at if type_ == "incident.resolved" else None,
            summary=incident.summary,
            details=dict(incident.details or {}),
        )

    found = [] if told >= 1 else [notice("incident.raised", 1)]
    if incident.status == RESOLVED:
        found.append(notice("incident.resolved", incident.revision))
    elif incident.revision > max(told, 1):
        found.append(notice("incident.updated", incident.revision))
    return found


def task_for(notice: IncidentNotice, connection: Connection) -> DeliveryTask:
    """The delivery task of one notice to one connection; its id is deterministic, so the
    notice is delivered once however often it is handed over."""
    return DeliveryTask(
        id=stable_id(
            "dlv", notice.tenant_id, notice.id, notice.type, str(notice.revision), connection.id
        ),
        tenant_id=notice.tenant_id,
        connection_id=connection.id,
        vendor=connection.vendor,
        kind="incident",
        order_key=f"incident:{notice.id}",  # an incident's notices arrive in their order
        sequence=notice.revision,
        incident=notice,
        correlation_id=notice.id,
        enqueued_at=utcnow(),
    )


async def metric_families(hub: Hub) -> list[Metric]:
    """Scrape-time gauges of the conditions incidents are made of (``GET /metrics``): the
    Prometheus alerting rules in ``ops/prometheus`` read them."""
    incidents = GaugeMetricFamily(
        "journeyhub_incidents_open", "Open incidents, by kind", labels=["kind"]
    )
    counts = await hub.store.incidents.open_counts()
    for kind in KINDS:
        incidents.add_metric([kind], counts.get(kind, 0))
    statuses = GaugeMetricFamily(
        "journeyhub_connections",
        "Connections by status (active, needs_reauth, error, gone)",
        labels=["status"],
    )
    for status, count in sorted((await hub.store.incidents.connection_statuses()).items()):
        statuses.add_metric([status], count)
    failures = GaugeMetricFamily(
        "journeyhub_sync_failures_in_a_row",
        "Failed sync runs in a row of a connection (connections with at least one)",
        labels=["connection_id"],
    )
    for connection_id, count in await hub.store.incidents.sync_failures():
        failures.add_metric([connection_id], count)
    return [incidents, statuses, failures]


async def run(hub: Hub, stop: asyncio.Event) -> None:
    await Evaluator(hub).run(stop)
