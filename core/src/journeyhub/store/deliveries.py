"""Delivery attempts and dead letters."""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import case, func, select

from journeyhub.model import utcnow
from journeyhub.store.ids import new_id
from journeyhub.store.tables import DeadLetter, Delivery

if TYPE_CHECKING:
    from journeyhub.store.store import Store


@dataclass(frozen=True)
class StatusCount:
    """Delivery rows of one status on one connection: since ``since`` and since ``recent``."""

    status: str
    count: int
    recent: int
    last_at: datetime | None


class DeliveryRepo:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def record_attempt(
        self,
        *,
        task_id: str,
        tenant_id: str,
        connection_id: str,
        vendor: str,
        source_id: str,
        attempt: int,
        status: str,
        vendor_status: int | None = None,
        latency_ms: float | None = None,
        external_ids: dict[str, Any] | None = None,
        error: str | None = None,
        correlation_id: str | None = None,
        client_id: str | None = None,
    ) -> None:
        async with self.store.session() as s:
            s.add(
                Delivery(
                    task_id=task_id,
                    tenant_id=tenant_id,
                    connection_id=connection_id,
                    vendor=vendor,
                    source_id=source_id,
                    attempt=attempt,
                    status=status,
                    vendor_status=vendor_status,
                    latency_ms=latency_ms,
                    external_ids=external_ids,
                    error=error,
                    correlation_id=correlation_id,
                    client_id=client_id,
                    created_at=utcnow(),
                )
            )

    async def record_replay(self, dead: DeadLetter, task_id: str) -> None:
        """Mark a replay in the task's history. The task id comes from the payload: a dead
        letter of a replay carries the replay's message id."""
        await self.record_attempt(
            task_id=task_id,
            tenant_id=dead.tenant_id,
            connection_id=dead.connection_id,
            vendor=dead.vendor,
            source_id=task_id,
            attempt=0,
            status="replayed",
            error=f"replay of {dead.id}",
            client_id=dead.client_id,
        )

    async def list(
        self,
        tenant_id: str,
        *,
        connection_id: str | None = None,
        status: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
    ) -> builtins.list[Delivery]:
        query = select(Delivery).where(Delivery.tenant_id == tenant_id)
        if connection_id:
            query = query.where(Delivery.connection_id == connection_id)
        if status:
            query = query.where(Delivery.status == status)
        if since:
            query = query.where(Delivery.created_at >= since)
        query = query.order_by(Delivery.id.desc()).limit(limit)
        async with self.store.session() as s:
            return list((await s.execute(query)).scalars())

    async def list_statuses(
        self,
        tenant_id: str,
        statuses: tuple[str, ...],
        *,
        connection_id: str | None = None,
        limit: int = 20,
    ) -> builtins.list[Delivery]:
        """The tenant's newest attempts of any of ``statuses`` (the dashboard's failures)."""
        query = select(Delivery).where(
            Delivery.tenant_id == tenant_id, Delivery.status.in_(statuses)
        )
        if connection_id:
            query = query.where(Delivery.connection_id == connection_id)
        query = query.order_by(Delivery.id.desc()).limit(limit)
        async with self.store.session() as s:
            return list((await s.execute(query)).scalars())

    async def last_attempts(
        self, tenant_id: str, task_ids: builtins.list[str], statuses: tuple[str, ...] | None = None
    ) -> dict[str, Delivery]:
        """The newest real attempt (not a replay marker) of each of these tasks of a tenant;
        only attempts of ``statuses`` when given."""
        if not task_ids:
            return {}
        newest = select(func.max(Delivery.id)).where(
            Delivery.tenant_id == tenant_id,
            Delivery.task_id.in_(task_ids),
            Delivery.status != "replayed",
        )
        if statuses:
            newest = newest.where(Delivery.status.in_(statuses))
        newest = newest.group_by(Delivery.task_id)
        query = select(Delivery).where(Delivery.id.in_(newest))
        async with self.store.session() as s:
            return {row.task_id: row for row in (await s.execute(query)).scalars()}

    # --- health: per-connection aggregates (portable: SQLite and PostgreSQL) ---------------

    async def status_counts(
        self, connection_id: str, *, since: datetime, recent_since: datetime
    ) -> builtins.list[StatusCount]:
        """Rows per status created since ``since``; ``recent`` counts those since
        ``recent_since`` (a later moment), ``last_at`` is the newest row of the status."""
        recent = func.sum(case((Delivery.created_at >= recent_since, 1), else_=0))
        query = (
            select(Delivery.status, func.count(), recent, func.max(Delivery.created_at))
            .where(Delivery.connection_id == connection_id, Delivery.created_at >= since)
            .group_by(Delivery.status)
        )
        async with self.store.session() as s:
            rows = (await s.execute(query)).all()
        return [StatusCount(r[0], int(r[1]), int(r[2] or 0), r[3]) for r in rows]

    async def last_at(self, connection_id: str, statuses: tuple[str, ...]) -> datetime | None:
        """When the newest row of these statuses was recorded on the connection."""
        query = select(func.max(Delivery.created_at)).where(
            Delivery.connection_id == connection_id, Delivery.status.in_(statuses)
        )
        async with self.store.session() as s:
            return (await s.execute(query)).scalar_one_or_none()

    async def latencies_ms(
        self, connection_id: str, *, since: datetime, statuses: tuple[str, ...]
    ) -> builtins.list[float]:
        """The recorded vendor-call latencies of these statuses since ``since``, ascending."""
        query = (
            select(Delivery.latency_ms)
            .where(
                Delivery.connection_id == connection_id,
                Delivery.created_at >= since,
                Delivery.status.in_(statuses),
                Delivery.latency_ms.is_not(None),
            )
            .order_by(Delivery.latency_ms)
        )
        async with self.store.session() as s:
            return [float(v) for v in (await s.execute(query)).scalars() if v is not None]

    # --- dead letters ------------------------------------------------------------------------

    async def dead_letter(
        self,
        *,
        tenant_id: str,
        connection_id: str,
        vendor: str,
        stage: str,
        subject: str,
        msg_id: str,
        payload: bytes,
        error: str,
        attempts: int,
    ) -> str:
        """Store a dead letter of the router or the inbound worker (a push task's is written
        by the outcome recorder, with the task's state)."""
        dead_id = new_id("dlq")
        async with self.store.session() as s:
            s.add(
                DeadLetter(
                    id=dead_id,
                    tenant_id=tenant_id,
                    connection_id=connection_id,
                    vendor=vendor,
                    stage=stage,
                    subject=subject,
                    msg_id=msg_id,
                    payload=payload,
                    error=error,
                    attempts=attempts,
                    created_at=utcnow(),
                    replay_count=0,
                )
            )
        return dead_id

    def _dead_query(
        self,
        tenant_id: str,
        *,
        connection_id: str | None = None,
        vendor: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        error: str | None = None,
        pending_only: bool = False,
    ) -> Any:
        query = select(DeadLetter).where(DeadLetter.tenant_id == tenant_id)
        if connection_id:
            query = query.where(DeadLetter.connection_id == connection_id)
        if vendor:
            query = query.where(DeadLetter.vendor == vendor)
        if since:
            query = query.where(DeadLetter.created_at >= since)
        if until:
            query = query.where(DeadLetter.created_at < until)
        if error:
            query = query.where(DeadLetter.error.contains(error))
        if pending_only:
            query = query.where(DeadLetter.replayed_at.is_(None))
        return query

    async def list_dead(
        self, tenant_id: str, *, limit: int = 100, **filters: Any
    ) -> builtins.list[DeadLetter]:
        query = self._dead_query(tenant_id, **filters).order_by(DeadLetter.created_at.desc())
        async with self.store.session() as s:
            return list((await s.execute(query.limit(limit))).scalars())

    async def count_dead(self, tenant_id: str, **filters: Any) -> int:
        query = self._dead_query(tenant_id, **filters).with_only_columns(func.count())
        async with self.store.session() as s:
            return int((await s.execute(query)).scalar_one())

    async def dead_depth(self) -> builtins.list[tuple[str, str, int]]:
        """Not yet replayed dead letters of every tenant, as (vendor, stage, count)."""
        query = (
            select(DeadLetter.vendor, DeadLetter.stage, func.count())
            .where(DeadLetter.replayed_at.is_(None))
            .group_by(DeadLetter.vendor, DeadLetter.stage)
        )
        async with self.store.session() as s:
            return [(r[0], r[1], int(r[2])) for r in (await s.execute(query)).all()]

    async def get_dead(self, dead_id: str, tenant_id: str) -> DeadLetter | None:
        async with self.store.session() as s:
            row = await s.get(DeadLetter, dead_id)
        return row if row is not None and row.tenant_id == tenant_id else None

    async def mark_replayed(self, dead_id: str) -> None:
        async with self.store.session() as s:
            row = await s.get(DeadLetter, dead_id, with_for_update=True)
            if row is not None:
                row.replayed_at = utcnow()
                row.replay_count += 1
