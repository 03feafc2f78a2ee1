"""A client's rows in the store, found and erased in one transaction (``Store.run``).

Rows are found by the client's id where a table keeps one (``store/client_rows.py``: kept
journey events, delivery attempts, dead letters, triggers, tasks' order keys, sync links'
``our_id``, the client directory), by the client's email where one is a
key (sync links, suppressions), and otherwise by reading the tenant's rows and asking the
:class:`~journeyhub.services.erasure.Identity` whether they mention the client: JSON and
payloads are compared decoded, so an address escaped in JSON or base64 in a stored webhook is
found too. An erasure is rare and an admin's act: reading a tenant's rows is its price.

What holds personal data goes whole (a kept journey event, a delivery attempt, a dead letter,
a trigger, a sync link, a suppression, a task); an audit entry stays, its values that mention
the client replaced by ``[erased]``, so the log still says who changed what.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TypeVar

from sqlalchemy import Connection, CursorResult, delete, select, update

from journeyhub.services.erasure import ERASED, Identity, decode
from journeyhub.store.client_rows import of_client, sync_links_of, tasks_of
from journeyhub.store.tables import (
    AuditEntry,
    ClientRow,
    ClientTerm,
    ConnectionRow,
    DeadLetter,
    Delivery,
    KeptEvent,
    Suppression,
    SyncCursor,
    SyncLink,
    TaskRow,
    TriggerRow,
)

T = TypeVar("T")
CHUNK = 500  # values per IN (…): far below either database's parameter limit


def _chunks(values: Iterable[T]) -> Iterator[list[T]]:
    items = sorted(set(values))  # type: ignore[type-var]
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def _delete(conn: Connection, column: Any, values: Iterable[Any]) -> int:
    """Delete the rows whose ``column`` is one of ``values``; how many."""
    deleted = 0
    for chunk in _chunks(values):
        result: CursorResult[Any] = conn.execute(delete(column.table).where(column.in_(chunk)))
        deleted += result.rowcount
    return deleted


def connection_ids(conn: Connection, tenant_id: str) -> list[str]:
    """The tenant's connections, and those its records still name (deleted since)."""
    found: set[str] = set()
    for column, tenant in (
        (ConnectionRow.id, ConnectionRow.tenant_id),
        (DeadLetter.connection_id, DeadLetter.tenant_id),
        (TriggerRow.connection_id, TriggerRow.tenant_id),
        (Delivery.connection_id, Delivery.tenant_id),
    ):
        found.update(conn.execute(select(column).where(tenant == tenant_id).distinct()).scalars())
    return sorted(found)


def learn(conn: Connection, tenant_id: str, connections: Sequence[str], who: Identity) -> None:
    """Learn the client's email, name and phone from the store: the client's sync links (and
    the studio's records with the client's email), triggers and dead letters."""
    directory = select(ClientRow.name, ClientRow.email).where(
        *of_client("clients", tenant_id, who.client_id)
    )
    for name, email in conn.execute(directory):
        who.add("name", name)
        who.add("email", email)
    for chunk in _chunks(connections):
        links = select(SyncLink.email, SyncLink.fields, SyncLink.pushed_fields).where(
            *sync_links_of(chunk, who.client_id)
        )
        for email, fields, pushed in conn.execute(links):
            who.add("email", email)
            who.learn_fields(fields)
            who.learn_fields(pushed)
    kept = select(KeptEvent.payload).where(*of_client("journey_events", tenant_id, who.client_id))
    for (payload,) in conn.execute(kept):
        who.learn(decode(payload))
    triggers = select(TriggerRow.data).where(*of_client("triggers", tenant_id, who.client_id))
    for (data,) in conn.execute(triggers):
        who.add("email", (data or {}).get("email"))
    dead = select(DeadLetter.payload).where(DeadLetter.tenant_id == tenant_id)
    for (payload,) in conn.execute(dead):
        who.learn(decode(payload))
    for chunk in _chunks(connections):
        for email_chunk in _chunks(who.emails):
            studio = select(SyncLink.fields).where(
                SyncLink.connection_id.in_(chunk), SyncLink.email.in_(email_chunk)
            )
            for (fields,) in conn.execute(studio):
                who.learn_fields(fields)


def erase(
    conn: Connection, tenant_id: str, connections: Sequence[str], who: Identity
) -> dict[str, int]:
    """Delete or redact the client's rows of the tenant; how many rows per table."""
    counts = {
        "journey_events": 0,
        "tasks": 0,
        "deliveries": 0,
        "dead_letters": 0,
        "triggers": 0,
        "sync_links": 0,
        "sync_cursors": 0,
        "suppressions": 0,
        "audit_log": 0,
        "clients": 0,
    }
    # Kept journey events (for resends and backfills): the client's, by its id.
    forget = delete(KeptEvent).where(*of_client("journey_events", tenant_id, who.client_id))
    erased: CursorResult[Any] = conn.execute(forget)
    counts["journey_events"] = erased.rowcount

    task_ids: set[str] = set()
    for chunk in _chunks(connections):
        found = select(TaskRow.task_id).where(*tasks_of(chunk, who.client_id))
        task_ids.update(conn.execute(found).scalars())
    counts["tasks"] = _delete(conn, TaskRow.task_id, task_ids)

    # Delivery attempts: the client's, those of its tasks, and any whose error quotes it.
    client_attempts = select(Delivery.id).where(*of_client("deliveries", tenant_id, who.client_id))
    attempts: set[int] = set(conn.execute(client_attempts).scalars())
    for ids in _chunks(task_ids):
        of_tasks = select(Delivery.id).where(
            Delivery.tenant_id == tenant_id, Delivery.task_id.in_(ids)
        )
        attempts.update(conn.execute(of_tasks).scalars())
    errors = select(Delivery.id, Delivery.error).where(
        Delivery.tenant_id == tenant_id, Delivery.error.is_not(None)
    )
    attempts.update(i for i, error in conn.execute(errors) if who.mentions(error or ""))
    counts["deliveries"] = _delete(conn, Delivery.id, attempts)

    letters = select(
        DeadLetter.id, DeadLetter.client_id, DeadLetter.payload, DeadLetter.error
    ).where(DeadLetter.tenant_id == tenant_id)
    dead = [
        i
        for i, client, payload, error in conn.execute(letters)
        if client == who.client_id or who.about_payload(payload, error)
    ]
    counts["dead_letters"] = _delete(conn, DeadLetter.id, dead)

    rows = select(TriggerRow.id, TriggerRow.client_id, TriggerRow.data).where(
        TriggerRow.tenant_id == tenant_id
    )
    triggers = [
        i
        for i, client, data in conn.execute(rows)
        if client == who.client_id or (client is None and who.about(data))
    ]
    counts["triggers"] = _delete(conn, TriggerRow.id, triggers)

    links: set[int] = set()
    for chunk in _chunks(connections):
        known = select(
            SyncLink.id,
            SyncLink.our_id,
            SyncLink.email,
            SyncLink.vendor_id,
            SyncLink.fields,
            SyncLink.pushed_fields,
        ).where(SyncLink.connection_id.in_(chunk))
        for link_id, our_id, email, vendor_id, fields, pushed in conn.execute(known):
            # A link of another client stays, whatever it says; the studio's own (no client
            # of ours) goes when it holds the client's email, name or phone.
            if our_id == who.client_id or (
                our_id is None and who.about([email or "", vendor_id, fields, pushed])
            ):
                links.add(link_id)
        cursors = select(SyncCursor.connection_id, SyncCursor.cursor, SyncCursor.last_result)
        for connection_id, cursor, result in conn.execute(
            cursors.where(SyncCursor.connection_id.in_(chunk))
        ):
            if who.mentions(cursor or "") or who.mentions(result or ""):
                clear = update(SyncCursor).where(SyncCursor.connection_id == connection_id)
                conn.execute(clear.values(cursor=None, last_result=ERASED))
                counts["sync_cursors"] += 1
    counts["sync_links"] = _delete(conn, SyncLink.id, links)

    # The client directory: what the search finds the client by.
    for table in (ClientTerm, ClientRow):  # the terms first, or they go uncounted (cascade)
        unlisted_client: CursorResult[Any] = conn.execute(
            delete(table).where(*of_client(table.__tablename__, tenant_id, who.client_id))
        )
        counts["clients"] += unlisted_client.rowcount

    for emails in _chunks(who.emails):
        unlist = delete(Suppression).where(
            Suppression.tenant_id == tenant_id, Suppression.email.in_(emails)
        )
        unlisted: CursorResult[Any] = conn.execute(unlist)
        counts["suppressions"] += unlisted.rowcount

    entries = select(AuditEntry.id, AuditEntry.before, AuditEntry.after).where(
        AuditEntry.tenant_id == tenant_id
    )
    for entry_id, before, after in list(conn.execute(entries)):
        redacted = (who.redact(before), who.redact(after))
        if redacted != (before, after):
            redact = update(AuditEntry).where(AuditEntry.id == entry_id)
            conn.execute(redact.values(before=redacted[0], after=redacted[1]))
            counts["audit_log"] += 1
    return counts
