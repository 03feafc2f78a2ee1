"""Delivery attempts and dead letters."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import case, delete, func, or_, select, tuple_, union, update
from sqlalchemy.exc import IntegrityError

from journeyhub.model import utcnow
from journeyhub.store.store import new_id
from journeyhub.store.tables import DeadLetter, Delivery, PendingTask

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

    async def delivered_among(self, task_ids: list[str]) -> set[str]:
        """Which of these tasks were delivered already (one query for a whole batch)."""
        if not task_ids:
            return set()
        query = select(Delivery.task_id).where(
            Delivery.task_id.in_(task_ids), Delivery.status.in_(("delivered", "skipped"))
        )
        async with self.store.session() as s:
            return set((await s.execute(query)).scalars())

    async def finished_among(self, task_ids: list[str]) -> set[str]:
        """Which of these tasks are finished: delivered (or skipped), or dead-lettered and not
        replayed (a push task's dead letter has the task id as its message id)."""
        if not task_ids:
            return set()
        query = union(
            select(Delivery.task_id).where(
                Delivery.task_id.in_(task_ids), Delivery.status.in_(("delivered", "skipped"))
            ),
            select(DeadLetter.msg_id).where(
                DeadLetter.msg_id.in_(task_ids),
                DeadLetter.stage == "push",
                DeadLetter.replayed_at.is_(None),
            ),
        )
        async with self.store.session() as s:
            return set((await s.execute(query)).scalars())

    async def earliest_pending(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], int]:
        """The lowest pending sequence per (connection, client) key (one query per batch)."""
        if not keys:
            return {}
        query = (
            select(PendingTask.connection_id, PendingTask.order_key, func.min(PendingTask.sequence))
            .where(tuple_(PendingTask.connection_id, PendingTask.order_key).in_(list(set(keys))))
            .group_by(PendingTask.connection_id, PendingTask.order_key)
        )
        async with self.store.session() as s:
            return {(c, k): int(m) for c, k, m in (await s.execute(query)).all()}

    async def record_success(self, task_id: str, **attempt: Any) -> None:
        """Record a successful attempt and release the task's place in the order, together."""
        async with self.store.session() as s:
            s.add(Delivery(task_id=task_id, created_at=utcnow(), **attempt))
            await s.execute(delete(PendingTask).where(PendingTask.task_id == task_id))

    async def add_pending_many(self, rows: list[tuple[str, str, str, int]]) -> None:
        """(task id, connection, client key, sequence) rows, in one transaction; rows already
        there (a task routed twice) are kept as they are."""
        if not rows:
            return
        ids = [r[0] for r in rows]
        try:
            async with self.store.session() as s:
                existing = set(
                    (
                        await s.execute(
                            select(PendingTask.task_id).where(PendingTask.task_id.in_(ids))
                        )
                    ).scalars()
                )
                now = utcnow()
                s.add_all(
                    PendingTask(task_id=t, connection_id=c, order_key=k, sequence=q, created_at=now)
                    for t, c, k, q in rows
                    if t not in existing
                )
        except IntegrityError:  # routed concurrently by another router: add one by one
            for row in rows:
                await self.add_pending(*row)

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

    async def record_replay(self, dead: DeadLetter, task_id: str) -> None:
        """Mark a replay in the task's history: its failures count afresh from here. The task
        id comes from the payload: a dead letter of a replay carries the replay's message id."""
        await self.record_attempt(
            task_id=task_id,
            tenant_id=dead.tenant_id,
            connection_id=dead.connection_id,
            vendor=dead.vendor,
            source_id=task_id,
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

    async def list_statuses(
        self,
        tenant_id: str,
        statuses: tuple[str, ...],
        *,
        connection_id: str | None = None,
        limit: int = 20,
    ) -> list[Delivery]:
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
        self, tenant_id: str, task_ids: list[str], statuses: tuple[str, ...] | None = None
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
    ) -> list[StatusCount]:
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
    ) -> list[float]:
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
            return [float(v) for v in (await s.execute(query)).scalars()]

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

    async def hold(
        self, task_ids: list[str], holder: str, seconds: float
    ) -> tuple[set[str], set[str]]:
        """Take the tasks for pushing, for ``seconds``: (the ids now held by ``holder``, the
        ids with no pending row).

        A task another process holds (unexpired) is in neither set. A compare-and-set in one
        UPDATE, so of two processes claiming one task at once, one wins (PostgreSQL rechecks
        the condition on the row it waited for; SQLite writes one at a time). A task with no
        pending row is out of the order: delivered, dead-lettered, or its connection gone (every
        task gets its row before it is published, and a replay puts it back first)."""
        if not task_ids:
            return set(), set()
        now = utcnow()
        free = or_(
            PendingTask.held_until.is_(None),
            PendingTask.held_until < now,
            PendingTask.held_by == holder,
        )
        async with self.store.session() as s:
            await s.execute(
                update(PendingTask)
                .where(PendingTask.task_id.in_(task_ids), free)
                .values(held_by=holder, held_until=now + timedelta(seconds=seconds))
            )
            rows = (
                await s.execute(
                    select(PendingTask.task_id, PendingTask.held_by).where(
                        PendingTask.task_id.in_(task_ids)
                    )
                )
            ).all()
        held = {task_id for task_id, by in rows if by == holder}
        return held, set(task_ids) - {task_id for task_id, _ in rows}

    async def dead_unreplayed(self, connection_id: str, msg_ids: list[str]) -> set[str]:
        """Of these bus message ids, the ones stored as a dead letter not yet replayed."""
        if not msg_ids:
            return set()
        query = select(DeadLetter.msg_id).where(
            DeadLetter.connection_id == connection_id,
            DeadLetter.msg_id.in_(msg_ids),
            DeadLetter.replayed_at.is_(None),
        )
        async with self.store.session() as s:
            return set((await s.execute(query)).scalars())

    async def extend_holds(self, task_ids: list[str], holder: str, seconds: float) -> None:
        """Hold for ``seconds`` more the tasks ``holder`` still holds (a push outlasting its
        hold: a long wait for the rate limiter or a slow vendor). Unlike ``hold`` it takes no
        free task, so a task given back for its retry is never taken again by a late beat."""
        if not task_ids:
            return
        async with self.store.session() as s:
            await s.execute(
                update(PendingTask)
                .where(PendingTask.task_id.in_(task_ids), PendingTask.held_by == holder)
                .values(held_until=utcnow() + timedelta(seconds=seconds))
            )

    async def release(self, task_id: str, holder: str) -> None:
        """Give a held task back (its push failed and it waits for a retry)."""
        async with self.store.session() as s:
            await s.execute(
                update(PendingTask)
                .where(PendingTask.task_id == task_id, PendingTask.held_by == holder)
                .values(held_by=None, held_until=None)
            )

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
        finished_task: str | None = None,
    ) -> str:
        """Store a dead letter; with ``finished_task``, release that push task's place in its
        client's order in the same transaction (so a task is never both out of the order and
        missing from the dead letters)."""
        dead_id = new_id("dlq")
        async with self.store.session() as s:
            if finished_task is not None:
                await s.execute(delete(PendingTask).where(PendingTask.task_id == finished_task))
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

    async def dead_depth(self) -> list[tuple[str, str, int]]:
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
