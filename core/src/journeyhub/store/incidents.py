"""Incidents: what the evaluator (``workers/incidents.py``) observes in the state the hub keeps
anyway, and the incidents it raises, updates and resolves from it.

Every observation reads state other parts already write (connections' status, the breakers'
lease rows, dead letters, pending tasks, sync cursors): nothing is added to the hot path.
Every change is a compare-and-set (on ``open_key`` for a raise, on ``revision`` for the rest),
so two evaluators never raise one condition twice nor tell one change twice.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from journeyhub.store.ids import new_id
from journeyhub.store.tables import (
    ConnectionRow,
    DeadLetter,
    Incident,
    Lease,
    SyncCursor,
    TaskRow,
)

if TYPE_CHECKING:
    from journeyhub.store.store import Store

# The kinds of incident, in the order the API and the docs list them.
NEEDS_REAUTH = "needs_reauth"
ENDPOINT_GONE = "endpoint_gone"
BREAKER_OPEN = "breaker_open"
DEAD_LETTERS = "dead_letters"
BACKLOG_STALLED = "backlog_stalled"
SYNC_FAILING = "sync_failing"
KINDS = (NEEDS_REAUTH, ENDPOINT_GONE, BREAKER_OPEN, DEAD_LETTERS, BACKLOG_STALLED, SYNC_FAILING)
OPEN, RESOLVED = "open", "resolved"


@dataclass(frozen=True)
class Condition:
    """One condition seen now on one connection. ``measure`` is its size (dead letters,
    pending tasks, failed runs): the incident is updated when it has doubled since the
    tenant was last told, so a growing condition is told of a few times, not every round."""

    kind: str
    tenant_id: str
    connection_id: str
    summary: str
    measure: int = 1
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.connection_id}"


class IncidentRepo:
    def __init__(self, store: Store) -> None:
        self.store = store

    # --- what holds now ---------------------------------------------------------------------

    async def observe(
        self, *, now: datetime, backlog_stall_seconds: float, sync_failures: int
    ) -> builtins.list[Condition]:
        """Every condition that holds now, across tenants."""
        stalled_before = now - timedelta(seconds=backlog_stall_seconds)
        async with self.store.session() as s:
            connections = {
                row.id: (row.tenant_id, row.status, row.vendor)
                for row in (
                    await s.execute(
                        select(
                            ConnectionRow.id,
                            ConnectionRow.tenant_id,
                            ConnectionRow.status,
                            ConnectionRow.vendor,
                        )
                    )
                ).all()
            }
            breakers = (
                await s.execute(select(Lease.name, Lease.state).where(Lease.name.like("breaker:%")))
            ).all()
            dead = (
                await s.execute(
                    select(
                        DeadLetter.tenant_id,
                        DeadLetter.connection_id,
                        func.count(),
                        func.max(DeadLetter.created_at),
                    )
                    .where(DeadLetter.replayed_at.is_(None))
                    .group_by(DeadLetter.tenant_id, DeadLetter.connection_id)
                )
            ).all()
            backlog = (
                await s.execute(
                    select(TaskRow.connection_id, func.count(), func.min(TaskRow.created_at))
                    .where(TaskRow.state == "pending")
                    .group_by(TaskRow.connection_id)
                    .having(func.min(TaskRow.created_at) < stalled_before)
                )
            ).all()
            syncs = (
                await s.execute(
                    select(
                        SyncCursor.connection_id, SyncCursor.failures, SyncCursor.last_result
                    ).where(SyncCursor.failures >= sync_failures)
                )
            ).all()

        found: list[Condition] = []
        for connection_id, (tenant_id, status, vendor) in connections.items():
            if status == "needs_reauth":
                found.append(
                    Condition(
                        NEEDS_REAUTH,
                        tenant_id,
                        connection_id,
                        f"the {vendor} connection needs to be authorised again",
                        details={"vendor": vendor},
                    )
                )
            elif status == "gone":
                found.append(
                    Condition(
                        ENDPOINT_GONE,
                        tenant_id,
                        connection_id,
                        f"the {vendor} endpoint answered 410 Gone: the connection is disabled",
                        details={"vendor": vendor},
                    )
                )
        for name, state in breakers:
            connection_id = name.removeprefix("breaker:")
            known = connections.get(connection_id)
            if known is None or not state or state.get("state", "closed") == "closed":
                continue
            found.append(
                Condition(
                    BREAKER_OPEN,
                    known[0],
                    connection_id,
                    f"the {known[2]} connection's circuit breaker is open: deliveries wait",
                    details={"vendor": known[2], "failures": int(state.get("failures") or 0)},
                )
            )
        for tenant_id, connection_id, count, last_at in dead:
            found.append(
                Condition(
                    DEAD_LETTERS,
                    tenant_id,
                    connection_id,
                    f"{count} dead letter(s) wait for a replay",
                    measure=int(count),
                    details={"count": int(count), "last_at": _iso(last_at)},
                )
            )
        for connection_id, count, oldest in backlog:
            known = connections.get(connection_id)
            if known is None:
                continue
            found.append(
                Condition(
                    BACKLOG_STALLED,
                    known[0],
                    connection_id,
                    f"{count} delivery task(s) pending, the oldest since {_iso(oldest)}",
                    measure=int(count),
                    details={"vendor": known[2], "pending": int(count), "oldest": _iso(oldest)},
                )
            )
        for connection_id, failures, last_result in syncs:
            known = connections.get(connection_id)
            if known is None:
                continue
            found.append(
                Condition(
                    SYNC_FAILING,
                    known[0],
                    connection_id,
                    f"the {known[2]} sync failed {failures} time(s) in a row",
                    measure=int(failures),
                    details={
                        "vendor": known[2],
                        "failures": int(failures),
                        "last_result": last_result,
                    },
                )
            )
        return found

    # --- the incidents ----------------------------------------------------------------------

    async def open_incidents(self) -> builtins.list[Incident]:
        async with self.store.session() as s:
            return list((await s.scalars(select(Incident).where(Incident.status == OPEN))).all())

    async def raise_(self, condition: Condition, now: datetime) -> Incident | None:
        """Open an incident for ``condition``; None when one is open already (raised by
        another evaluator meanwhile: ``open_key`` is unique)."""
        incident = Incident(
            id=new_id("inc"),
            tenant_id=condition.tenant_id,
            connection_id=condition.connection_id,
            kind=condition.kind,
            status=OPEN,
            open_key=condition.key,
            summary=condition.summary,
            details=condition.details,
            measure=condition.measure,
            revision=1,
            notified_revision=0,
            started_at=now,
            updated_at=now,
        )
        try:
            async with self.store.session() as s:
                s.add(incident)
        except IntegrityError:
            return None
        return incident

    async def change(self, incident: Incident, **values: Any) -> bool:
        """Write ``values`` if nobody changed the incident since it was read (its
        ``revision`` and ``clear_since`` as read); False otherwise."""
        async with self.store.session() as s:
            result = await s.execute(
                update(Incident)
                .where(
                    Incident.id == incident.id,
                    Incident.revision == incident.revision,
                    Incident.updated_at == incident.updated_at,
                )
                .values(**values)
            )
        return bool(getattr(result, "rowcount", 0) == 1)

    async def unnotified(self, limit: int = 100) -> builtins.list[Incident]:
        """Incidents with a change the tenant was not told of yet, oldest change first."""
        async with self.store.session() as s:
            query = (
                select(Incident)
                .where(Incident.revision > Incident.notified_revision)
                .order_by(Incident.updated_at)
                .limit(limit)
            )
            return list((await s.scalars(query)).all())

    async def mark_notified(self, incident_id: str, revision: int) -> None:
        async with self.store.session() as s:
            await s.execute(
                update(Incident)
                .where(Incident.id == incident_id, Incident.notified_revision < revision)
                .values(notified_revision=revision)
            )

    # --- reading ----------------------------------------------------------------------------

    async def list(
        self, tenant_id: str, *, status: str | None = None, limit: int = 100
    ) -> builtins.list[Incident]:
        """A tenant's incidents, newest first."""
        query = select(Incident).where(Incident.tenant_id == tenant_id)
        if status is not None:
            query = query.where(Incident.status == status)
        query = query.order_by(Incident.started_at.desc(), Incident.id).limit(limit)
        async with self.store.session() as s:
            return list((await s.scalars(query)).all())

    async def open_counts(self, tenant_id: str | None = None) -> dict[str, int]:
        """Open incidents by kind, of one tenant or of all."""
        query = select(Incident.kind, func.count()).where(Incident.status == OPEN)
        if tenant_id is not None:
            query = query.where(Incident.tenant_id == tenant_id)
        async with self.store.session() as s:
            rows = (await s.execute(query.group_by(Incident.kind))).all()
        return {kind: int(count) for kind, count in rows}

    async def sync_failures(self) -> builtins.list[tuple[str, int]]:
        """Connections whose sync failed in a row now, with the count (for ``/metrics``)."""
        async with self.store.session() as s:
            query = select(SyncCursor.connection_id, SyncCursor.failures).where(
                SyncCursor.failures > 0
            )
            return [(r[0], int(r[1])) for r in (await s.execute(query)).all()]

    async def connection_statuses(self) -> dict[str, int]:
        """Connections by status (for ``/metrics``)."""
        async with self.store.session() as s:
            query = select(ConnectionRow.status, func.count()).group_by(ConnectionRow.status)
            return {status: int(count) for status, count in (await s.execute(query)).all()}


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()
