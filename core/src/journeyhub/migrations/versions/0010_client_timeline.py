"""indexes for a client's timeline

One client's timeline reads each source through a (tenant, client, time) index: kept journey
events and triggers had the client's id already; delivery attempts and dead letters get a
``client_id`` column, filled in here for the rows already there (from the kept events and
triggers they delivered, and from a push dead letter's task). The client directory
(``clients``, ``client_terms``), which the search reads, is filled in from the kept events.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
SEARCH_TERM = sa.String(200).with_variant(sa.String(200, collation="C"), "postgresql")
CHUNK = 1000
MIN_WORD = 2


def upgrade() -> None:
    for table in ("deliveries", "dead_letters"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("client_id", sa.String(length=200), nullable=True))
    op.create_table(
        "clients",
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("client_id", sa.String(length=200), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("first_seen_at", TS, nullable=False),
        sa.Column("last_seen_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "client_id", name=op.f("pk_clients")),
    )
    op.create_table(
        "client_terms",
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("term", SEARCH_TERM, nullable=False),
        sa.Column("client_id", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "term", "client_id", name=op.f("pk_client_terms")),
        sa.ForeignKeyConstraint(
            ["tenant_id", "client_id"],
            ["clients.tenant_id", "clients.client_id"],
            name=op.f("fk_client_terms_tenant_id_clients"),
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_client_terms_tenant_client", "client_terms", ["tenant_id", "client_id"])
    op.create_index("ix_clients_last_seen_at", "clients", ["last_seen_at"])
    _fill()
    op.create_index(
        "ix_deliveries_tenant_client",
        "deliveries",
        ["tenant_id", "client_id", "created_at", "id"],
    )
    op.create_index(
        "ix_dead_letters_tenant_client",
        "dead_letters",
        ["tenant_id", "client_id", "created_at", "id"],
    )
    op.create_index(
        "ix_triggers_tenant_client", "triggers", ["tenant_id", "client_id", "created_at", "id"]
    )
    op.create_index(
        "ix_journey_events_tenant_client_received",
        "journey_events",
        ["tenant_id", "client_id", "received_at", "event_id"],
    )


def _fill() -> None:
    """The client of the rows already there, where the store still tells it."""
    bind = op.get_bind()
    bind.execute(
        sa.text(
            "UPDATE deliveries SET client_id = COALESCE("
            " (SELECT e.client_id FROM journey_events e"
            "  WHERE e.tenant_id = deliveries.tenant_id AND e.event_id = deliveries.source_id),"
            " (SELECT t.client_id FROM triggers t WHERE t.id = deliveries.source_id))"
        )
    )
    dead = sa.table(
        "dead_letters", sa.column("id"), sa.column("stage"), sa.column("payload", sa.LargeBinary)
    )
    found: list[dict[str, Any]] = []
    for dead_id, payload in bind.execute(
        sa.select(dead.c.id, dead.c.payload).where(dead.c.stage == "push")
    ):
        if (client_id := _client_of_task(payload)) is not None:
            found.append({"dead_id": dead_id, "client_id": client_id})
    if found:
        bind.execute(
            sa.text("UPDATE dead_letters SET client_id = :client_id WHERE id = :dead_id"), found
        )
    _fill_directory(bind)


def _client_of_task(payload: bytes) -> str | None:
    try:
        task = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(task, dict):
        return None
    event, trigger = task.get("event"), task.get("trigger")
    if isinstance(event, dict) and isinstance(event.get("client"), dict):
        client_id = event["client"].get("id")
    elif isinstance(trigger, dict):
        client_id = trigger.get("client_id")
    else:
        client_id = None
    return client_id if isinstance(client_id, str) else None


def _terms(client_id: str, name: Any, email: Any) -> set[str]:
    """What a client is found by, as ``store/clients.terms_of`` said at 0010."""
    terms = {client_id.lower()}
    if isinstance(email, str) and email.strip():
        terms.add(email.strip().lower())
    if isinstance(name, str) and name.strip():
        lowered = " ".join(name.lower().split())
        terms.add(lowered)
        terms.update(word for word in lowered.split() if len(word) >= MIN_WORD)
    return {term[:200] for term in terms if term}


def _fill_directory(bind: Any) -> None:
    events = sa.table(
        "journey_events",
        sa.column("tenant_id"),
        sa.column("client_id"),
        sa.column("sequence"),
        sa.column("payload", sa.LargeBinary),
        sa.column("received_at", TS),
    )
    newest: dict[tuple[str, str], dict[str, Any]] = {}
    terms: set[tuple[str, str, str]] = set()
    # Streamed (a server-side cursor on PostgreSQL): only the statement's option, not the
    # connection's, or every later statement of the migration would be run as a cursor.
    rows = bind.execute(
        sa.select(events).order_by(events.c.sequence).execution_options(yield_per=CHUNK)
    )
    for tenant_id, client_id, sequence, payload, received_at in rows:
        try:
            client = json.loads(payload).get("client") or {}
        except (ValueError, AttributeError):
            client = {}
        name, email = client.get("name"), client.get("email")
        terms.update((tenant_id, t, client_id) for t in _terms(client_id, name, email))
        known = newest.get((tenant_id, client_id))
        newest[(tenant_id, client_id)] = {
            "tenant_id": tenant_id,
            "client_id": client_id,
            "name": name if isinstance(name, str) else None,
            "email": email if isinstance(email, str) else None,
            "sequence": sequence,
            "first_seen_at": known["first_seen_at"] if known else received_at,
            "last_seen_at": received_at,
        }
    clients = sa.table(
        "clients",
        *(sa.column(c) for c in ("tenant_id", "client_id", "name", "email", "sequence")),
        sa.column("first_seen_at", TS),
        sa.column("last_seen_at", TS),
    )
    client_terms = sa.table(
        "client_terms", sa.column("tenant_id"), sa.column("term"), sa.column("client_id")
    )
    values = list(newest.values())
    for start in range(0, len(values), CHUNK):
        bind.execute(clients.insert(), values[start : start + CHUNK])
    rows_of_terms = [{"tenant_id": t, "term": term, "client_id": c} for t, term, c in sorted(terms)]
    for start in range(0, len(rows_of_terms), CHUNK):
        bind.execute(client_terms.insert(), rows_of_terms[start : start + CHUNK])


def downgrade() -> None:
    op.drop_index("ix_journey_events_tenant_client_received", table_name="journey_events")
    op.drop_index("ix_triggers_tenant_client", table_name="triggers")
    op.drop_index("ix_dead_letters_tenant_client", table_name="dead_letters")
    op.drop_index("ix_deliveries_tenant_client", table_name="deliveries")
    op.drop_index("ix_client_terms_tenant_client", table_name="client_terms")
    op.drop_index("ix_clients_last_seen_at", table_name="clients")
    op.drop_table("client_terms")
    op.drop_table("clients")
    for table in ("dead_letters", "deliveries"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("client_id")
