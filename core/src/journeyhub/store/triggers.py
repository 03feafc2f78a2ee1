"""Triggers emitted, and the suppression list they feed.

The inbound worker works per fetched batch of webhooks: :meth:`TriggerRepo.look_up` reads, in
one transaction, which of the batch's trigger ids are recorded already and who the others are
about (our client id, from the sync links); :meth:`TriggerRepo.record_many` writes the triggers
JetStream acknowledged and the addresses they suppress, in one transaction. Both run a fixed
number of statements whatever the batch's size (up to the chunk sizes below).
"""

from __future__ import annotations

import builtins
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError

from journeyhub.model import Trigger, utcnow
from journeyhub.store.tables import Suppression, SyncLink, TriggerRow, table_of

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from journeyhub.store.store import Store

T = TypeVar("T")
# Values per ``IN (…)``: far below SQLite's 32,766 and PostgreSQL's 65,535 bound parameters, so a
# large import (thousands of drafts at once) is read in a few statements instead of failing.
IN_CHUNK = 2000


def _chunks(values: Sequence[T], size: int = IN_CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


@dataclass(frozen=True, slots=True)
class ClientQuery:
    """Who a draft is about, to be resolved to our client id across a tenant's connections:
    first by the vendor's record id, then by email."""

    connection_ids: tuple[str, ...]
    vendor_record_id: str | None = None
    email: str | None = None


@dataclass(frozen=True, slots=True)
class SuppressionRow:
    tenant_id: str
    email: str
    reason: str
    source_event_id: str | None = None


class TriggerRepo:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def record(self, trigger: Trigger) -> bool:
        """Store a trigger; False when its id was recorded before (a repeated source)."""
        try:
            async with self.store.session() as s:
                if await s.get(TriggerRow, trigger.id) is not None:
                    return False
                s.add(TriggerRow(**_row(trigger, utcnow())))
        except IntegrityError:  # a concurrent worker recorded it first
            return False
        return True

    async def exists(self, trigger_id: str) -> bool:
        async with self.store.session() as s:
            return await s.get(TriggerRow, trigger_id) is not None

    async def look_up(
        self, trigger_ids: Collection[str], clients: Mapping[str, ClientQuery]
    ) -> tuple[set[str], dict[str, str | None]]:
        """In one transaction: which of ``trigger_ids`` are recorded already, and our client id
        for each of ``clients`` (by trigger id) that is not (None when no sync link knows it)."""
        # A Core connection, not an ORM session: nothing here needs the unit of work.
        async with self.store.engine.begin() as conn:
            existing: set[str] = set()
            for chunk in _chunks(list(trigger_ids)):
                query = select(TriggerRow.id).where(TriggerRow.id.in_(chunk))
                existing.update((await conn.execute(query)).scalars())
            wanted = {tid: q for tid, q in clients.items() if tid not in existing}
            return existing, await _client_ids(conn, wanted)

    async def record_many(
        self, triggers: Sequence[Trigger], suppressions: Sequence[SuppressionRow] = ()
    ) -> set[str]:
        """Insert ``triggers`` and ``suppressions`` in one transaction; a trigger or an address
        recorded before (by an earlier delivery, or by another worker at the same time) is left
        as it is. Returns the ids of the triggers this call recorded."""
        now = utcnow()
        recorded: set[str] = set()
        async with self.store.engine.begin() as conn:
            if triggers:
                unique = list({t.id: t for t in triggers}.values())
                table = table_of(TriggerRow)
                insert = (
                    self.store.insert(table)
                    .on_conflict_do_nothing(index_elements=[table.c.id])
                    .returning(table.c.id)
                )
                # One executemany: SQLAlchemy sends it as multi-row INSERTs (insertmanyvalues),
                # within the drivers' parameter limits, and collects RETURNING of every page.
                result = await conn.execute(insert, [_row(t, now) for t in unique])
                recorded.update(result.scalars())
            rows = {(r.tenant_id, r.email.lower()): r for r in reversed(suppressions)}
            if rows:
                table = table_of(Suppression)
                insert = self.store.insert(table).on_conflict_do_nothing(
                    index_elements=[table.c.tenant_id, table.c.email]
                )
                await conn.execute(
                    insert,
                    [
                        {
                            "tenant_id": tenant_id,
                            "email": email,
                            "reason": r.reason,
                            "source_event_id": r.source_event_id,
                            "created_at": now,
                        }
                        for (tenant_id, email), r in rows.items()
                    ],
                )
        return recorded

    async def list(
        self, tenant_id: str, *, connection_id: str | None = None, limit: int = 100
    ) -> builtins.list[TriggerRow]:
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

    async def suppressed(self, tenant_id: str, emails: builtins.list[str]) -> dict[str, str]:
        """The subset of ``emails`` that is suppressed, with the reason."""
        if not emails:
            return {}
        lowered = [e.lower() for e in emails]
        query = select(Suppression).where(
            Suppression.tenant_id == tenant_id, Suppression.email.in_(lowered)
        )
        async with self.store.session() as s:
            return {row.email: row.reason for row in (await s.execute(query)).scalars()}


def _row(trigger: Trigger, now: Any) -> dict[str, Any]:
    return {
        "id": trigger.id,
        "tenant_id": trigger.tenant_id,
        "connection_id": trigger.connection_id,
        "vendor": trigger.vendor,
        "type": trigger.type,
        "client_id": trigger.client_id,
        "source_event_id": trigger.source_event_id,
        "occurred_at": trigger.occurred_at,
        "data": trigger.data,
        "created_at": now,
    }


async def _client_ids(
    conn: AsyncConnection, clients: Mapping[str, ClientQuery]
) -> dict[str, str | None]:
    """Our client id for each query, from the sync links of its tenant's connections: a link
    with the vendor's record id first, else one with the email; among several, the oldest
    link. One statement per chunk of queries (one for any batch the worker fetches)."""
    resolved: dict[str, str | None] = dict.fromkeys(clients)
    wanted = [(tid, q) for tid, q in clients.items() if q.vendor_record_id or q.email]
    # Chunked so that the connection ids, vendor ids and emails of a chunk stay within IN_CHUNK
    # values each.
    for chunk in _chunks(wanted, IN_CHUNK // 4):
        connection_ids = sorted({c for _, q in chunk for c in q.connection_ids})
        vendor_ids = sorted({q.vendor_record_id for _, q in chunk if q.vendor_record_id})
        emails = sorted({q.email.lower() for _, q in chunk if q.email})
        matches = []
        if vendor_ids:
            matches.append(SyncLink.vendor_id.in_(vendor_ids))
        if emails:
            matches.append(SyncLink.email.in_(emails))
        query = (
            select(SyncLink.connection_id, SyncLink.vendor_id, SyncLink.email, SyncLink.our_id)
            .where(
                SyncLink.connection_id.in_(connection_ids),
                SyncLink.our_id.is_not(None),
                or_(*matches),
            )
            .order_by(SyncLink.id)
        )
        by_vendor_id: dict[str, list[tuple[str, str | None]]] = {}
        by_email: dict[str, list[tuple[str, str | None]]] = {}
        for connection_id, vendor_id, email, our_id in (await conn.execute(query)).all():
            by_vendor_id.setdefault(vendor_id, []).append((connection_id, our_id))
            if email:
                by_email.setdefault(email, []).append((connection_id, our_id))
        for tid, q in chunk:
            allowed = set(q.connection_ids)
            found = None
            if q.vendor_record_id:
                found = _first(by_vendor_id.get(q.vendor_record_id, ()), allowed)
            if found is None and q.email:
                found = _first(by_email.get(q.email.lower(), ()), allowed)
            resolved[tid] = found
    return resolved


def _first(links: Sequence[tuple[str, str | None]], allowed: set[str]) -> str | None:
    return next((our_id for connection_id, our_id in links if connection_id in allowed), None)
