"""Journey events kept after routing (the ``journey_events`` table), for resends and backfills.

The router writes them in its routing transaction, so an event is kept exactly when its tasks
are in the order; the ``events`` stream itself is a work queue and forgets an event once it is
routed. Reads go in the clients' order (bus sequence), a page at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgspec
from sqlalchemy import Connection, and_, func, or_, select

from journeyhub.model import JourneyEvent, utcnow
from journeyhub.store.tables import KeptEvent, table_of

if TYPE_CHECKING:
    from journeyhub.store.store import Store

EVENTS = table_of(KeptEvent)


@dataclass(frozen=True)
class EventQuery:
    """Which kept events of a tenant: every field narrows (None or empty: any)."""

    client_id: str | None = None
    types: Sequence[str] = ()
    since: datetime | None = None  # received by the hub at or after
    until: datetime | None = None  # received before
    event_ids: Sequence[str] = ()


@dataclass(frozen=True)
class Kept:
    event: JourneyEvent
    sequence: int
    correlation_id: str | None


def kept_row(
    tenant_id: str,
    event: JourneyEvent,
    payload: bytes,
    sequence: int,
    correlation_id: str | None,
) -> dict[str, Any]:
    """The row of ``event``; ``payload`` is its JSON as the bus holds it (not encoded again)."""
    return {
        "tenant_id": tenant_id,
        "event_id": event.id,
        "client_id": event.client.id,
        "type": event.type,
        "sequence": sequence,
        "payload": payload,
        "correlation_id": correlation_id,
        "received_at": utcnow(),
    }


class JourneyEventRepo:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._add = store.insert(EVENTS).on_conflict_do_nothing(
            index_elements=["tenant_id", "event_id"]
        )

    def keep(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        """Keep routed events (``kept_row``); an event routed again keeps its first row. Their
        clients go in the client directory in the same transaction (``store/clients.py``)."""
        if rows:
            conn.execute(self._add, rows)
            self.store.clients.note(conn, rows)

    def _where(self, tenant_id: str, query: EventQuery) -> list[Any]:
        where: list[Any] = [EVENTS.c.tenant_id == tenant_id]
        if query.client_id:
            where.append(EVENTS.c.client_id == query.client_id)
        if query.types:
            where.append(EVENTS.c.type.in_(list(query.types)))
        if query.since:
            where.append(EVENTS.c.received_at >= query.since)
        if query.until:
            where.append(EVENTS.c.received_at < query.until)
        if query.event_ids:
            where.append(EVENTS.c.event_id.in_(list(query.event_ids)))
        return where

    async def count(self, tenant_id: str, query: EventQuery) -> int:
        statement = select(func.count()).where(*self._where(tenant_id, query))
        async with self.store.transaction() as conn:
            return int((await conn.execute(statement)).scalar_one())

    async def page(
        self, tenant_id: str, query: EventQuery, *, after: tuple[int, str] | None, limit: int
    ) -> list[Kept]:
        """Up to ``limit`` matching events in bus order, after ``(sequence, event_id)``."""
        where = self._where(tenant_id, query)
        if after is not None:
            sequence, event_id = after
            where.append(
                or_(
                    EVENTS.c.sequence > sequence,
                    and_(EVENTS.c.sequence == sequence, EVENTS.c.event_id > event_id),
                )
            )
        statement = (
            select(EVENTS.c.payload, EVENTS.c.sequence, EVENTS.c.correlation_id)
            .where(*where)
            .order_by(EVENTS.c.sequence, EVENTS.c.event_id)
            .limit(limit)
        )
        async with self.store.transaction() as conn:
            rows = (await conn.execute(statement)).all()
        return [
            Kept(msgspec.json.decode(payload, type=JourneyEvent), int(sequence), correlation_id)
            for payload, sequence, correlation_id in rows
        ]
