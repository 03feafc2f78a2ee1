"""What the retention purge may delete, and one bounded batch of it (``workers/retention.py``).

Each kind of data has the timestamp its age is counted from, and an index on it (migration
0004), so a batch finds its oldest rows without scanning the table. Only what nothing needs
any more is a candidate: a dead letter once replayed (an unreplayed one owns its task), a task
once finished (a pending task is in its client's order, a dead one is its dead letter's).
Sync links, sync cursors, suppressions, connections and tenants are never purged: they are
live state, not history.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cache

from sqlalchemy import Connection, Integer, Table, TextClause, bindparam, text

from journeyhub.settings import Settings
from journeyhub.store.store import Store
from journeyhub.store.tables import (
    AuditEntry,
    ChartSample,
    ClientRow,
    DeadLetter,
    Delivery,
    Incident,
    KeptEvent,
    TaskRow,
    TriggerRow,
)
from journeyhub.store.tables import table_of as table


@dataclass(frozen=True)
class Kind:
    """One kind of data the purge deletes by age."""

    name: str  # in metrics and the log line
    setting: str  # the ``Settings`` field with its age limit in days
    table: Table
    stamp: str  # the column its age is counted from
    # A further condition, spelled as the partial index spells it, so both databases use it.
    only: str | None = None


KINDS = (
    Kind("deliveries", "retention_deliveries_days", table(Delivery), "created_at"),
    Kind("triggers", "retention_triggers_days", table(TriggerRow), "created_at"),
    Kind("audit", "retention_audit_days", table(AuditEntry), "created_at"),
    # Resolved incidents are operational history, kept as long as the audit log; an open one
    # (no ``resolved_at``) is live state.
    Kind("incidents", "retention_audit_days", table(Incident), "resolved_at"),
    Kind("dead_letters", "retention_dead_letters_days", table(DeadLetter), "replayed_at"),
    Kind(
        "tasks",
        "retention_tasks_days",
        table(TaskRow),
        "finished_at",
        only="state IN ('done', 'dropped')",
    ),
    Kind("events", "retention_events_days", table(KeptEvent), "received_at"),
    # The client directory (``store/clients.py``): a client no kept event is left of, with the
    # events' limit; its search terms go with it (ON DELETE CASCADE).
    Kind("clients", "retention_events_days", table(ClientRow), "last_seen_at"),
    Kind("chart_samples", "retention_chart_samples_days", table(ChartSample), "taken_at"),
)


def limits(settings: Settings) -> dict[Kind, int]:
    """Each kind's age limit in days; a kind kept for ever (0) is left out."""
    found = {kind: int(getattr(settings, kind.setting, 0)) for kind in KINDS}
    return {kind: days for kind, days in found.items() if days > 0}


@cache
def batch_statement(kind: Kind, dialect: str) -> TextClause:
    """DELETE of up to ``:limit`` of the kind's rows older than ``:cutoff``, oldest first.

    The rows are picked through the timestamp's index and deleted by their physical row id,
    whatever the table's key. On PostgreSQL the ids go through ``ARRAY(…)``: evaluated once,
    then a TID scan, where ``IN (subquery)`` is planned as a semi-join that scans the whole
    table for every batch (123 ms per batch of 5,000 on 300,000 rows, against a few)."""
    # Only our own table and column names go into the text; the values are bound.
    name, stamp = kind.table.name, kind.stamp
    where = f"{stamp} < :cutoff" + (f" AND {kind.only}" if kind.only else "")
    row_id = "ctid" if dialect == "postgresql" else "rowid"
    chosen = f"SELECT {row_id} FROM {name} WHERE {where} ORDER BY {stamp} LIMIT :limit"  # noqa: S608
    if dialect == "postgresql":
        sql = f"DELETE FROM {name} WHERE ctid = ANY(ARRAY({chosen}))"  # noqa: S608
    else:
        sql = f"DELETE FROM {name} WHERE rowid IN ({chosen})"  # noqa: S608
    return text(sql).bindparams(
        # Bound as the column's type: SQLite compares timestamps as the strings it stores.
        bindparam("cutoff", type_=kind.table.c[kind.stamp].type),
        bindparam("limit", type_=Integer()),
    )


def delete_batch(conn: Connection, kind: Kind, cutoff: datetime, limit: int) -> int:
    """Delete up to ``limit`` of ``kind``'s rows older than ``cutoff``; the number deleted."""
    statement = batch_statement(kind, conn.dialect.name)
    result = conn.execute(statement, {"cutoff": cutoff, "limit": limit})
    return int(result.rowcount)


async def purge_batch(
    store: Store,
    kind: Kind,
    cutoff: datetime,
    limit: int,
    fence: Callable[[Connection], bool],
) -> int | None:
    """One short transaction: ``fence`` (the purge's lease, renewed), then one batch deleted.
    None, and nothing deleted, when the fence says another process purges now.

    It runs on the async driver, whose statements wait off the event loop (SQLite's in the
    driver's thread): a batch never holds up the loop, only other writers of the same rows."""
    async with store.transaction() as conn:

        def work(sync: Connection) -> int | None:
            if not fence(sync):
                return None
            return delete_batch(sync, kind, cutoff, limit)

        return await conn.run_sync(work)
