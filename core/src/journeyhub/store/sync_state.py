"""What the sync knows between runs: sync links (our id ↔ vendor id per connection, with the
vendor's fields as last seen and those our pushes set) and sync cursors (where each
connection's pull stopped)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import BindParameter, Connection, bindparam, func, select
from sqlalchemy.exc import IntegrityError

from journeyhub.model import KnownRecord, SyncedRecord, utcnow
from journeyhub.store.tables import SyncCursor, SyncLink, table_of

if TYPE_CHECKING:
    from journeyhub.store.store import Store


SYNC_LINKS = table_of(SyncLink)


_LINK_COLUMNS = (
    SYNC_LINKS.c.connection_id,
    SYNC_LINKS.c.kind,
    SYNC_LINKS.c.vendor_id,
    SYNC_LINKS.c.ref,
    SYNC_LINKS.c.our_id,
    SYNC_LINKS.c.email,
    SYNC_LINKS.c.fields,
    SYNC_LINKS.c.pushed_fields,
)
_CONNECTIONS: BindParameter[Any] = bindparam("connections", expanding=True)
_KNOWN_BY_CLIENT = select(*_LINK_COLUMNS).where(
    SYNC_LINKS.c.connection_id.in_(_CONNECTIONS),
    SYNC_LINKS.c.our_id.in_(bindparam("clients", expanding=True)),
    SYNC_LINKS.c.deleted.is_not(True),
)
_KNOWN_BY_EMAIL = select(*_LINK_COLUMNS).where(
    SYNC_LINKS.c.connection_id.in_(_CONNECTIONS),
    SYNC_LINKS.c.email.in_(bindparam("emails", expanding=True)),
    SYNC_LINKS.c.our_id.is_(None),
    SYNC_LINKS.c.deleted.is_not(True),
)
# One IN list per column of the unique (connection, kind, vendor id) index, not a row-value IN:
# SQLite answers a row-value IN by scanning the whole table. The caller keeps the exact keys.
_PUSHED_FIELDS = select(
    SYNC_LINKS.c.connection_id,
    SYNC_LINKS.c.kind,
    SYNC_LINKS.c.vendor_id,
    SYNC_LINKS.c.pushed_fields,
).where(
    SYNC_LINKS.c.connection_id.in_(_CONNECTIONS),
    SYNC_LINKS.c.kind.in_(bindparam("kinds", expanding=True)),
    SYNC_LINKS.c.vendor_id.in_(bindparam("vendor_ids", expanding=True)),
)


class SyncStateRepo:
    def __init__(self, store: Store) -> None:
        self.store = store
        insert = store.insert(SYNC_LINKS)
        links, excluded = SYNC_LINKS.c, insert.excluded
        # A push that does not know a value (a record only found, not written) leaves it be.
        keep = ("our_id", "ref", "email", "pushed_at")
        update = {name: func.coalesce(excluded[name], links[name]) for name in keep}
        update |= {name: excluded[name] for name in ("pushed_fields", "deleted", "updated_at")}
        self._upsert_pushed = insert.on_conflict_do_update(
            index_elements=["connection_id", "kind", "vendor_id"], set_=update
        )

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

    def record_pushed(
        self, conn: Connection, records: list[tuple[str, SyncedRecord]], now: datetime
    ) -> None:
        """Keep what pushes wrote or found at the vendor, as (connection id, record): the
        records of a batch of outcomes in the caller's transaction. ``pushed_fields`` merge
        with those not yet seen back by a pull (several pushes may precede it)."""
        if not records:
            return
        latest: dict[tuple[str, str, str], SyncedRecord] = {}
        for connection_id, record in records:  # the last word on a record wins
            latest[(connection_id, record.kind, record.vendor_id)] = record
        existing = {
            (row[0], row[1], row[2]): row[3]
            for row in conn.execute(
                _PUSHED_FIELDS,
                {
                    "connections": sorted({key[0] for key in latest}),
                    "kinds": sorted({key[1] for key in latest}),
                    "vendor_ids": sorted({key[2] for key in latest}),
                },
            )
        }
        rows = []
        for (connection_id, kind, vendor_id), record in latest.items():
            pushed = (
                None
                if record.deleted
                else {**(existing.get((connection_id, kind, vendor_id)) or {}), **record.fields}
            )
            rows.append(
                {
                    "connection_id": connection_id,
                    "kind": kind,
                    "vendor_id": vendor_id,
                    "our_id": record.our_id,
                    "ref": record.ref,
                    "email": record.email.lower() if record.email else None,
                    "pushed_fields": pushed,
                    "pushed_at": now if record.fields else None,
                    "deleted": record.deleted,
                    "updated_at": now,
                }
            )
        conn.execute(self._upsert_pushed, rows)

    def known(
        self, conn: Connection, wanted: list[tuple[str, str, str | None]]
    ) -> dict[tuple[str, str], tuple[KnownRecord, ...]]:
        """What the hub knows of each (connection, client id, client email) of ``wanted``:
        the records pushes wrote or found for the client, and those the pull saw with the
        client's email and no client of ours (the studio's own, to adopt)."""
        if not wanted:
            return {}
        connections = sorted({c for c, _, _ in wanted})
        clients = sorted({client for _, client, _ in wanted})
        rows = list(
            conn.execute(_KNOWN_BY_CLIENT, {"connections": connections, "clients": clients})
        )
        emails = sorted({e.lower() for _, _, e in wanted if e})
        if emails:
            rows += conn.execute(_KNOWN_BY_EMAIL, {"connections": connections, "emails": emails})
        by_client: dict[tuple[str, str], list[KnownRecord]] = {}
        by_email: dict[tuple[str, str], list[KnownRecord]] = {}
        for connection_id, kind, vendor_id, ref, our_id, email, fields, pushed in rows:
            record = KnownRecord(
                kind=kind,
                vendor_id=vendor_id,
                ref=ref,
                our_id=our_id,
                email=email,
                fields={**(fields or {}), **(pushed or {})},
            )
            if our_id is not None:
                by_client.setdefault((connection_id, our_id), []).append(record)
            elif email:
                by_email.setdefault((connection_id, email), []).append(record)
        return {
            (connection_id, client): tuple(
                by_client.get((connection_id, client), [])
                + (by_email.get((connection_id, email.lower()), []) if email else [])
            )
            for connection_id, client, email in wanted
        }

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

    async def save_cursor(
        self, connection_id: str, cursor: str | None, result: str, *, failed: bool = False
    ) -> None:
        """Where the pull stopped and how its run went; ``failed`` counts a failed run in a
        row (a good run starts the count again)."""
        async with self.store.session() as s:
            row = await s.get(SyncCursor, connection_id, with_for_update=True)
            now = utcnow()
            if row is None:
                row = SyncCursor(connection_id=connection_id, updated_at=now)
                s.add(row)
            row.cursor = cursor
            row.last_sync_at = now
            row.last_result = result
            row.failures = (row.failures or 0) + 1 if failed else 0
            row.updated_at = now
