"""Dead letters: listed by filter, and replayed (each delivered once).

``GET /v1/dlq``, ``POST /v1/dlq/replay``, ``POST /v1/dlq/{id}/replay`` and ``journeyhub dlq
list|replay`` go through here. A tenant sees only its own dead letters: another tenant's is
missing, like one that does not exist.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from journeyhub.hub import Hub
from journeyhub.store.store import Store
from journeyhub.store.tables import DeadLetter
from journeyhub.workers.deadletter import replay


@dataclass(frozen=True, kw_only=True)
class DeadLetterFilter:
    """Every field narrows; none: all of the tenant's dead letters."""

    connection_id: str | None = None
    vendor: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    error: str | None = None  # the last error contains this


async def list_dead_letters(
    store: Store,
    tenant_id: str,
    wanted: DeadLetterFilter,
    *,
    limit: int,
    pending_only: bool = False,
) -> list[DeadLetter]:
    """The tenant's dead letters matching ``wanted``, newest first; only those not replayed
    yet when ``pending_only``."""
    return await store.deliveries.list_dead(
        tenant_id,
        limit=limit,
        connection_id=wanted.connection_id,
        vendor=wanted.vendor,
        since=wanted.since,
        until=wanted.until,
        error=wanted.error,
        pending_only=pending_only,
    )


async def get_dead_letters(
    store: Store, tenant_id: str, dead_letter_ids: Sequence[str]
) -> tuple[list[DeadLetter], list[str]]:
    """The tenant's dead letters by id, in the order given, and the ids it has none for."""
    found, missing = [], []
    for dead_id in dict.fromkeys(dead_letter_ids):
        row = await store.deliveries.get_dead(dead_id, tenant_id)
        if row is None:
            missing.append(dead_id)
        else:
            found.append(row)
    return found, missing


async def pending_dead_letters(
    store: Store, tenant_id: str, wanted: DeadLetterFilter, *, limit: int
) -> list[DeadLetter]:
    """The not yet replayed dead letters matching ``wanted``, oldest first: the order a
    replay puts them back in."""
    rows = await list_dead_letters(store, tenant_id, wanted, limit=limit, pending_only=True)
    rows.reverse()
    return rows


async def replay_dead_letters(
    hub: Hub,
    rows: Sequence[DeadLetter],
    actor: str,
    progress: Callable[[], None] | None = None,
) -> list[str]:
    """Put each dead letter back on the bus, in the order given (audited); their ids.
    ``progress`` is called after each one."""
    for row in rows:
        await replay(hub, row, actor)
        if progress is not None:
            progress()
    return [row.id for row in rows]
