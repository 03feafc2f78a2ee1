"""The audit log: who changed what, with secrets masked before they are written."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from journeyhub.model import utcnow
from journeyhub.store.tables import AuditEntry

if TYPE_CHECKING:
    from journeyhub.store.store import Store

MASK = "********"


def mask_secrets(data: dict[str, Any] | None) -> dict[str, Any] | None:
    if data is None:
        return None
    masked = dict(data)
    if masked.get("credentials"):
        masked["credentials"] = {key: MASK for key in masked["credentials"]}
    return masked


class AuditRepo:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def record(
        self,
        *,
        tenant_id: str | None,
        actor: str,
        action: str,
        connection_id: str | None = None,
        before: dict[str, Any] | None = None,
        after: dict[str, Any] | None = None,
    ) -> None:
        async with self.store.session() as s:
            s.add(
                AuditEntry(
                    tenant_id=tenant_id,
                    actor=actor,
                    action=action,
                    connection_id=connection_id,
                    before=mask_secrets(before),
                    after=mask_secrets(after),
                    created_at=utcnow(),
                )
            )

    async def list(
        self,
        tenant_id: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        actor: str | None = None,
        action: str | None = None,
        connection_id: str | None = None,
        limit: int = 100,
    ) -> list[AuditEntry]:
        query = select(AuditEntry).where(AuditEntry.tenant_id == tenant_id)
        if since:
            query = query.where(AuditEntry.created_at >= since)
        if until:
            query = query.where(AuditEntry.created_at < until)
        if actor:
            query = query.where(AuditEntry.actor == actor)
        if action:
            query = query.where(AuditEntry.action == action)
        if connection_id:
            query = query.where(AuditEntry.connection_id == connection_id)
        query = query.order_by(AuditEntry.id.desc()).limit(limit)
        async with self.store.session() as s:
            return list((await s.execute(query)).scalars())
