"""One page of a client's timeline, read from the store: one query per source (kept journey
events, delivery attempts, dead letters, triggers), each reading at most a page of rows
through its (tenant, client, time) index (migration 0010), all in one transaction.

The timeline is ordered newest first by (time, kind, key): the key is the row's own id, and
the kind breaks ties between sources. A page starts strictly before a :class:`Position` (the
last entry of the page before), so paging never repeats or skips an entry, whatever is
written meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, Select, and_, or_, select, true

from journeyhub.store.client_rows import of_client, sync_links_of
from journeyhub.store.clients import ClientEntry, entry_of
from journeyhub.store.tables import (
    ClientRow,
    ConnectionRow,
    DeadLetter,
    Delivery,
    KeptEvent,
    SyncLink,
    TriggerRow,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Row
    from sqlalchemy.ext.asyncio import AsyncConnection

    from journeyhub.store.store import Store


@dataclass(frozen=True)
class Source:
    """A table the timeline reads: its entries' kind, its time and key columns, what to read."""

    kind: str
    table: str  # in ``client_rows.BY_CLIENT``
    at: Any
    key: Any
    columns: tuple[Any, ...]
    numeric_key: bool = False


SOURCES = (
    Source(
        "event",
        "journey_events",
        KeptEvent.received_at,
        KeptEvent.event_id,
        (KeptEvent.event_id, KeptEvent.type, KeptEvent.payload, KeptEvent.correlation_id),
    ),
    Source(
        "delivery",
        "deliveries",
        Delivery.created_at,
        Delivery.id,
        (
            Delivery.id,
            Delivery.task_id,
            Delivery.connection_id,
            Delivery.vendor,
            Delivery.source_id,
            Delivery.attempt,
            Delivery.status,
            Delivery.vendor_status,
            Delivery.latency_ms,
            Delivery.external_ids,
            Delivery.error,
        ),
        numeric_key=True,
    ),
    Source(
        "dead_letter",
        "dead_letters",
        DeadLetter.created_at,
        DeadLetter.id,
        (
            DeadLetter.id,
            DeadLetter.connection_id,
            DeadLetter.vendor,
            DeadLetter.stage,
            DeadLetter.msg_id,
            DeadLetter.payload,
            DeadLetter.error,
            DeadLetter.attempts,
            DeadLetter.replayed_at,
            DeadLetter.replay_count,
        ),
    ),
    Source(
        "trigger",
        "triggers",
        TriggerRow.created_at,
        TriggerRow.id,
        (
            TriggerRow.id,
            TriggerRow.connection_id,
            TriggerRow.vendor,
            TriggerRow.type,
            TriggerRow.source_event_id,
            TriggerRow.occurred_at,
            TriggerRow.data,
        ),
    ),
)
KINDS = frozenset(source.kind for source in SOURCES)


@dataclass(frozen=True)
class Position:
    """Where a page ends: its last entry's time, kind and key."""

    at: datetime
    kind: str
    key: str


@dataclass(frozen=True)
class Found:
    """A row of one source, with the position it sorts at."""

    source: Source
    row: Row[Any]
    position: Position

    def order(self) -> tuple[datetime, str, Any]:
        key = int(self.position.key) if self.source.numeric_key else self.position.key
        return (self.position.at, self.source.kind, key)


@dataclass(frozen=True)
class VendorRecord:
    connection_id: str
    vendor: str
    kind: str
    vendor_id: str
    ref: str | None
    updated_at: datetime


def _before(source: Source, position: Position | None) -> ColumnElement[bool]:
    """The source's rows that sort strictly before ``position``. The time bound is always
    there on its own, so that the index range starts at it."""
    if position is None:
        return true()
    if source.kind < position.kind:
        return source.at <= position.at
    if source.kind > position.kind:
        return source.at < position.at
    key: Any = int(position.key) if source.numeric_key else position.key
    return and_(
        source.at <= position.at,
        or_(source.at < position.at, source.key < key),
    )


def _statement(
    source: Source, tenant_id: str, client_id: str, before: Position | None, limit: int
) -> Select[Any]:
    return (
        select(*source.columns, source.at.label("at"))
        .where(*of_client(source.table, tenant_id, client_id), _before(source, before))
        .order_by(source.at.desc(), source.key.desc())
        .limit(limit)
    )


@dataclass(frozen=True)
class Story:
    """A page of a client's timeline, and what the page heads it with."""

    found: list[Found]  # newest first
    more: bool  # there are older rows
    records: list[VendorRecord]
    client: ClientEntry | None  # the directory's row


class TimelineRepo:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def read(
        self, tenant_id: str, client_id: str, *, before: Position | None, limit: int
    ) -> Story:
        """Up to ``limit`` of the client's rows, newest first, before ``before``; whether there
        are more; the client's records at the vendors and its directory row: one transaction."""
        found: list[Found] = []
        async with self.store.transaction() as conn:
            for source in SOURCES:
                statement = _statement(source, tenant_id, client_id, before, limit + 1)
                for row in (await conn.execute(statement)).all():
                    key = str(getattr(row, source.key.key))
                    found.append(Found(source, row, Position(row.at, source.kind, key)))
            records = await _vendor_records(conn, tenant_id, client_id)
            directory = select(ClientRow).where(*of_client("clients", tenant_id, client_id))
            client = (await conn.execute(directory)).first()
        found.sort(key=Found.order, reverse=True)
        return Story(
            found=found[:limit],
            more=len(found) > limit,
            records=records,
            client=entry_of(client) if client is not None else None,
        )


async def _vendor_records(
    conn: AsyncConnection, tenant_id: str, client_id: str
) -> list[VendorRecord]:
    """The client's records at the vendors, on the tenant's connections (the id map)."""
    connections = select(ConnectionRow.id, ConnectionRow.vendor).where(
        ConnectionRow.tenant_id == tenant_id
    )
    vendors: dict[str, str] = {c: v for c, v in (await conn.execute(connections)).all()}
    if not vendors:
        return []
    links = (
        select(
            SyncLink.connection_id,
            SyncLink.kind,
            SyncLink.vendor_id,
            SyncLink.ref,
            SyncLink.updated_at,
        )
        .where(*sync_links_of(sorted(vendors), client_id), SyncLink.deleted.is_(False))
        .order_by(SyncLink.connection_id, SyncLink.kind, SyncLink.id)
    )
    return [
        VendorRecord(c, vendors.get(c, ""), kind, vendor_id, ref, updated_at)
        for c, kind, vendor_id, ref, updated_at in (await conn.execute(links)).all()
    ]
