"""Delivery attempts and dead letters."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from journeyhub.model import utcnow
from journeyhub.store.store import new_id
from journeyhub.store.tables import DeadLetter, Delivery, PendingTask

if TYPE_CHECKING:
    from journeyhub.store.store import Store


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
                    created_at=utcnow(),
                )
            )

    async def delivered(self, task_id: str) -> Delivery | None:
        """The successful attempt of a task, if there was one (a replay must not repeat it)."""
        query = (
            select(Delivery)
            .where(Delivery.task_id == task_id, Delivery.status.in_(("delivered", "skipped")))
            .limit(1)
        )
        async with self.store.session() as s:
            return (await s.execute(query)).scalar_one_or_none()

    async def failed_attempts(self, task_id: str) -> int:
        """Failed attempts since the task was last replayed from the dead letters."""
        async with self.store.session() as s:
            last_replay = (
                await s.execute(
                    select(func.max(Delivery.id)).where(
                        Delivery.task_id == task_id, Delivery.status == "replayed"
                    )
                )
            ).scalar_one()
            query = select(func.count()).where(
                Delivery.task_id == task_id, Delivery.status.in_(("failed", "dead"))
            )
            if last_replay is not None:
                query = query.where(Delivery.id > last_replay)
            return int((await s.execute(query)).scalar_one())

    async def record_replay(self, dead: DeadLetter) -> None:
        """Mark a replay in the task's history: its failures count afresh from here."""
        await self.record_attempt(
            task_id=dead.msg_id,
            tenant_id=dead.tenant_id,
            connection_id=dead.connection_id,
            vendor=dead.vendor,
            source_id=dead.msg_id,
            attempt=0,
            status="replayed",
            error=f"replay of {dead.id}",
        )

    async def list(
        self,
        tenant_id: str,
        *,
        connection_id: str | None = None,
        status: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
    ) -> list[Delivery]:
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

    # --- pending tasks: the per-client order gate ---------------------------------------------

    async def add_pending(
        self, task_id: str, connection_id: str, order_key: str, sequence: int
    ) -> None:
        try:
            async with self.store.session() as s:
                if await s.get(PendingTask, task_id) is None:
                    s.add(PendingTask(task_id=task_id, connection_id=connection_id,
                                      order_key=order_key, sequence=sequence, created_at=utcnow()))  # fmt: skip
        except IntegrityError:  # routed twice concurrently: one row is enough
            pass

    async def earlier_pending(self, connection_id: str, order_key: str, sequence: int) -> bool:
        """True while an earlier task for the same client on the connection is unfinished."""
        query = (
            select(PendingTask.task_id)
            .where(
                PendingTask.connection_id == connection_id,
                PendingTask.order_key == order_key,
                PendingTask.sequence < sequence,
            )
            .limit(1)
        )
        async with self.store.session() as s:
            return (await s.execute(query)).first() is not None

    async def finish_pending(self, task_id: str) -> None:
        async with self.store.session() as s:
            await s.execute(delete(PendingTask).where(PendingTask.task_id == task_id))

    async def pending_count(self, connection_id: str) -> int:
        query = select(func.count()).where(PendingTask.connection_id == connection_id)
        async with self.store.session() as s:
            return int((await s.execute(query)).scalar_one())

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
    ) -> list[DeadLetter]:
        query = self._dead_query(tenant_id, **filters).order_by(DeadLetter.created_at.desc())
        async with self.store.session() as s:
            return list((await s.execute(query.limit(limit))).scalars())

    async def count_dead(self, tenant_id: str, **filters: Any) -> int:
        query = self._dead_query(tenant_id, **filters).with_only_columns(func.count())
        async with self.store.session() as s:
            return int((await s.execute(query)).scalar_one())

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
