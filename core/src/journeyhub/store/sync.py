"""Sync links (our id ↔ vendor id per connection) and sync cursors."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from journeyhub.model import utcnow
from journeyhub.store.tables import SyncCursor, SyncLink

if TYPE_CHECKING:
    from journeyhub.store.store import Store


class SyncRepo:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def link(
        self,
        connection_id: str,
        kind: str,
        vendor_id: str,
        *,
        our_id: str | None = None,
        email: str | None = None,
        fingerprint: str | None = None,
        pushed_fingerprint: str | None = None,
        fields: dict[str, Any] | None = None,
        pushed_fields: dict[str, Any] | None = None,
        pushed_at: datetime | None = None,
        vendor_modified_at: datetime | None = None,
        deleted: bool | None = None,
        clear_pushed: bool = False,
    ) -> None:
        """Create or update the link; only the given values change."""
        for _ in range(2):  # a concurrent insert of the same link: retry as an update
            try:
                async with self.store.session() as s:
                    query = select(SyncLink).where(
                        SyncLink.connection_id == connection_id,
                        SyncLink.kind == kind,
                        SyncLink.vendor_id == vendor_id,
                    )
                    row = (await s.execute(query)).scalar_one_or_none()
                    if row is None:
                        row = SyncLink(connection_id=connection_id, kind=kind, vendor_id=vendor_id)
                        s.add(row)
                    values = {
                        "our_id": our_id,
                        "email": email.lower() if email else None,
                        "fingerprint": fingerprint,
                        "pushed_fingerprint": pushed_fingerprint,
                        "fields": fields,
                        "pushed_at": pushed_at,
                        "vendor_modified_at": vendor_modified_at,
                        "deleted": deleted,
                    }
                    if pushed_fields is not None:  # merged: several pushes may precede a pull
                        row.pushed_fields = {**(row.pushed_fields or {}), **pushed_fields}
                    if clear_pushed:
                        row.pushed_fields = None
                        row.pushed_at = None
                    for key, value in values.items():
                        if value is not None:
                            setattr(row, key, value)
                    row.updated_at = utcnow()
                return
            except IntegrityError:
                continue

    async def find(self, connection_id: str, kind: str, vendor_id: str) -> SyncLink | None:
        query = select(SyncLink).where(
            SyncLink.connection_id == connection_id,
            SyncLink.kind == kind,
            SyncLink.vendor_id == vendor_id,
        )
        async with self.store.session() as s:
            return (await s.execute(query)).scalar_one_or_none()

    async def find_by_our_id(self, connection_id: str, kind: str, our_id: str) -> SyncLink | None:
        query = select(SyncLink).where(
            SyncLink.connection_id == connection_id,
            SyncLink.kind == kind,
            SyncLink.our_id == our_id,
        )
        async with self.store.session() as s:
            return (await s.execute(query.limit(1))).scalar_one_or_none()

    async def client_id_for(
        self,
        tenant_connection_ids: list[str],
        *,
        vendor_record_id: str | None = None,
        email: str | None = None,
    ) -> str | None:
        """Resolve our client id from a vendor id or an email, across a tenant's connections."""
        query = select(SyncLink.our_id).where(
            SyncLink.connection_id.in_(tenant_connection_ids), SyncLink.our_id.is_not(None)
        )
        if vendor_record_id:
            found = await self._first(query.where(SyncLink.vendor_id == vendor_record_id))
            if found:
                return found
        if email:
            return await self._first(query.where(SyncLink.email == email.lower()))
        return None

    async def _first(self, query: Any) -> str | None:
        async with self.store.session() as s:
            return (await s.execute(query.limit(1))).scalar_one_or_none()

    # --- cursors -----------------------------------------------------------------------------

    async def cursor(self, connection_id: str) -> SyncCursor | None:
        async with self.store.session() as s:
            return await s.get(SyncCursor, connection_id)

    async def save_cursor(self, connection_id: str, cursor: str | None, result: str) -> None:
        async with self.store.session() as s:
            row = await s.get(SyncCursor, connection_id, with_for_update=True)
            now = utcnow()
            if row is None:
                row = SyncCursor(connection_id=connection_id, updated_at=now)
                s.add(row)
            row.cursor = cursor
            row.last_sync_at = now
            row.last_result = result
            row.updated_at = now
