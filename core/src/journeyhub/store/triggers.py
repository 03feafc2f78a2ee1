"""Triggers emitted, and the suppression list they feed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from journeyhub.model import Trigger, utcnow
from journeyhub.store.tables import Suppression, TriggerRow

if TYPE_CHECKING:
    from journeyhub.store.store import Store


class TriggerRepo:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def record(self, trigger: Trigger) -> bool:
        """Store a trigger; False when its id was recorded before (a repeated source)."""
        try:
            async with self.store.session() as s:
                if await s.get(TriggerRow, trigger.id) is not None:
                    return False
                s.add(
                    TriggerRow(
                        id=trigger.id,
                        tenant_id=trigger.tenant_id,
                        connection_id=trigger.connection_id,
                        vendor=trigger.vendor,
                        type=trigger.type,
                        client_id=trigger.client_id,
                        source_event_id=trigger.source_event_id,
                        occurred_at=trigger.occurred_at,
                        data=trigger.data,
                        created_at=utcnow(),
                    )
                )
        except IntegrityError:  # a concurrent worker recorded it first
            return False
        return True

    async def exists(self, trigger_id: str) -> bool:
        async with self.store.session() as s:
            return await s.get(TriggerRow, trigger_id) is not None

    async def list(
        self, tenant_id: str, *, connection_id: str | None = None, limit: int = 100
    ) -> list[TriggerRow]:
        query = select(TriggerRow).where(TriggerRow.tenant_id == tenant_id)
        if connection_id:
            query = query.where(TriggerRow.connection_id == connection_id)
        query = query.order_by(TriggerRow.created_at.desc()).limit(limit)
        async with self.store.session() as s:
            return list((await s.execute(query)).scalars())

    # --- suppression list ---------------------------------------------------------------------

    async def suppress(
        self, tenant_id: str, email: str, reason: str, source_event_id: str | None = None
    ) -> None:
        try:
            async with self.store.session() as s:
                if await s.get(Suppression, (tenant_id, email.lower())) is None:
                    s.add(
                        Suppression(
                            tenant_id=tenant_id,
                            email=email.lower(),
                            reason=reason,
                            source_event_id=source_event_id,
                            created_at=utcnow(),
                        )
                    )
        except IntegrityError:
            pass

    async def suppressed(self, tenant_id: str, emails: list[str]) -> dict[str, str]:
        """The subset of ``emails`` that is suppressed, with the reason."""
        if not emails:
            return {}
        lowered = [e.lower() for e in emails]
        query = select(Suppression).where(
            Suppression.tenant_id == tenant_id, Suppression.email.in_(lowered)
        )
        async with self.store.session() as s:
            return {row.email: row.reason for row in (await s.execute(query)).scalars()}
