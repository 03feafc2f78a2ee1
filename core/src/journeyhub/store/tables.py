"""Table definitions. Schema changes go through Alembic (``journeyhub/migrations``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp, always in UTC and time-zone aware on the way out.

    PostgreSQL keeps the zone (``timestamptz``); SQLite keeps none, so without this rows read
    back naive (the API answered times without an offset, which is not RFC 3339), and an
    aware value with another offset was compared as if it were UTC. Naive values going in
    are taken as UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


TS = UTCDateTime()


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON, datetime: TS}


class Tenant(Base):
    __tablename__ = "tenants"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]


class ApiKey(Base):
    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    roles: Mapped[list[Any]]  # role names, in ROLES order (store/tenants.py)
    secret_hash: Mapped[str] = mapped_column(String(64))
    label: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class ConnectionRow(Base):
    __tablename__ = "connections"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    vendor: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    direction: Mapped[str] = mapped_column(String(20))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    config: Mapped[dict[str, Any]]
    credentials: Mapped[bytes | None] = mapped_column(LargeBinary)  # Fernet token
    event_types: Mapped[list[Any]]
    field_mappings: Mapped[list[Any]]
    status: Mapped[str] = mapped_column(String(20), default="active")
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class SyncLink(Base):
    """Our id ↔ the vendor's id for one record on one connection, with what we last knew."""

    __tablename__ = "sync_links"
    __table_args__ = (
        UniqueConstraint("connection_id", "kind", "vendor_id"),
        Index("ix_sync_links_connection_our", "connection_id", "kind", "our_id"),
        Index("ix_sync_links_connection_client", "connection_id", "our_id"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    connection_id: Mapped[str] = mapped_column(
        ForeignKey("connections.id", ondelete="CASCADE"), index=False
    )
    kind: Mapped[str] = mapped_column(String(40))
    vendor_id: Mapped[str] = mapped_column(String(200))
    our_id: Mapped[str | None] = mapped_column(String(200))
    # Which of the client's records of this kind (a job: the journey instance id).
    ref: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320), index=True)
    fingerprint: Mapped[str | None] = mapped_column(String(64))
    pushed_fingerprint: Mapped[str | None] = mapped_column(String(64))
    fields: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # last known vendor state
    pushed_fields: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # ours, not yet seen back
    pushed_at: Mapped[datetime | None]
    vendor_modified_at: Mapped[datetime | None]
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime]


class SyncCursor(Base):
    __tablename__ = "sync_cursors"
    connection_id: Mapped[str] = mapped_column(
        ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True
    )
    cursor: Mapped[str | None] = mapped_column(Text)
    last_sync_at: Mapped[datetime | None]
    last_result: Mapped[str | None] = mapped_column(Text)
    # Failed runs in a row (0 after a good one): "a sync keeps failing" (``incidents.py``).
    failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    updated_at: Mapped[datetime]


class Delivery(Base):
    """One push attempt, successful or not."""

    __tablename__ = "deliveries"
    __table_args__ = (
        Index("ix_deliveries_connection_created", "connection_id", "created_at"),
        Index("ix_deliveries_created_at", "created_at"),  # the retention purge's
        # A client's timeline, newest first (``store/timeline.py``).
        Index("ix_deliveries_tenant_client", "tenant_id", "client_id", "created_at", "id"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(String(80), index=True)
    tenant_id: Mapped[str] = mapped_column(String(40), index=True)
    connection_id: Mapped[str] = mapped_column(String(40))
    vendor: Mapped[str] = mapped_column(String(64))
    source_id: Mapped[str] = mapped_column(String(200))  # the event or trigger id
    attempt: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20))  # delivered|failed|retrying|dead|skipped
    vendor_status: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    external_ids: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    correlation_id: Mapped[str | None] = mapped_column(String(80))
    # Our client the task was for (None: a task of no client's, an attempt recorded before 0010).
    client_id: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime]


class DeadLetter(Base):
    __tablename__ = "dead_letters"
    __table_args__ = (
        Index("ix_dead_letters_tenant_created", "tenant_id", "created_at"),
        Index("ix_dead_letters_replayed_at", "replayed_at"),  # the retention purge's
        Index("ix_dead_letters_tenant_client", "tenant_id", "client_id", "created_at", "id"),
    )
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(40))
    connection_id: Mapped[str] = mapped_column(String(40), index=True)
    vendor: Mapped[str] = mapped_column(String(64))
    stage: Mapped[str] = mapped_column(String(20))  # push | inbound
    subject: Mapped[str] = mapped_column(String(300))
    msg_id: Mapped[str] = mapped_column(String(200))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    error: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]
    replayed_at: Mapped[datetime | None]
    replay_count: Mapped[int] = mapped_column(Integer, default=0)
    # A push task's client (None: a webhook, a message that could not be read).
    client_id: Mapped[str | None] = mapped_column(String(200))


class TriggerRow(Base):
    __tablename__ = "triggers"
    __table_args__ = (
        Index("ix_triggers_tenant_created", "tenant_id", "created_at"),
        Index("ix_triggers_created_at", "created_at"),  # the retention purge's
        Index("ix_triggers_tenant_client", "tenant_id", "client_id", "created_at", "id"),
    )
    id: Mapped[str] = mapped_column(String(80), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(40))
    connection_id: Mapped[str] = mapped_column(String(40))
    vendor: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(40))
    client_id: Mapped[str | None] = mapped_column(String(200))
    source_event_id: Mapped[str] = mapped_column(String(200))
    occurred_at: Mapped[datetime]
    data: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]


class Suppression(Base):
    """Addresses a tenant must not mail (bounced, complained, unsubscribed)."""

    __tablename__ = "suppressions"
    tenant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    email: Mapped[str] = mapped_column(String(320), primary_key=True)
    reason: Mapped[str] = mapped_column(String(40))
    source_event_id: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime]


class AuditEntry(Base):
    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_tenant_created", "tenant_id", "created_at"),
        Index("ix_audit_log_created_at", "created_at"),  # the retention purge's
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str | None] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(80))
    connection_id: Mapped[str | None] = mapped_column(String(40))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime]


class Lease(Base):
    """A named lease shared by all processes: breaker state, scheduler turns, token refreshes."""

    __tablename__ = "leases"
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(80))
    expires_at: Mapped[datetime | None]
    state: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class TaskRow(Base):
    """Every delivery task the routers made, and where it stands: ``pending`` until it is
    delivered (``done``), dead-lettered (``dead``, back to ``pending`` when replayed) or dropped
    with its connection (``dropped``). The task gate (``delivery/gate.py``) reads and claims
    these rows; a finished row stays, so a task routed or offered again is known as finished."""

    __tablename__ = "tasks"
    __table_args__ = (
        # The order gate looks for an unfinished earlier task of the same client.
        Index(
            "ix_tasks_pending_order",
            "connection_id",
            "order_key",
            "sequence",
            sqlite_where=text("state = 'pending'"),
            postgresql_where=text("state = 'pending'"),
        ),
        # The gate asks whether a client has a dead-lettered task (whose writes may be unknown).
        Index(
            "ix_tasks_dead_order",
            "connection_id",
            "order_key",
            sqlite_where=text("state = 'dead'"),
            postgresql_where=text("state = 'dead'"),
        ),
        # The retention purge deletes finished tasks by age.
        Index(
            "ix_tasks_finished_at",
            "finished_at",
            sqlite_where=text("state IN ('done', 'dropped')"),
            postgresql_where=text("state IN ('done', 'dropped')"),
        ),
    )
    task_id: Mapped[str] = mapped_column(String(80), primary_key=True)
    connection_id: Mapped[str] = mapped_column(String(40))
    order_key: Mapped[str] = mapped_column(String(200))
    # The bus sequence of the event (or trigger) the task came from: the client's order.
    sequence: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(10), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # pushes begun
    failures: Mapped[int] = mapped_column(Integer, default=0)  # failed since the last replay
    # Which worker process is pushing the task, until when (extended while it pushes).
    held_by: Mapped[str | None] = mapped_column(String(80), nullable=True)
    held_until: Mapped[datetime | None] = mapped_column(nullable=True)
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True)
    # When the bus offers a task given back for a retry again (its retry policy's wait).
    next_attempt_at: Mapped[datetime | None] = mapped_column(nullable=True)


class KeptEvent(Base):
    """A journey event the router routed, kept for resends and backfills
    (``services/redelivery.py``) until the retention purge removes it. ``sequence`` is its
    bus sequence: its client's order, as the routed tasks have it."""

    __tablename__ = "journey_events"
    __table_args__ = (
        # The retention purge takes the oldest first; a backfill pages a tenant's in bus order.
        Index("ix_journey_events_received", "received_at"),
        Index("ix_journey_events_tenant_sequence", "tenant_id", "sequence"),
        Index("ix_journey_events_tenant_client", "tenant_id", "client_id", "sequence"),
        Index(
            "ix_journey_events_tenant_client_received",
            "tenant_id",
            "client_id",
            "received_at",
            "event_id",
        ),
    )
    tenant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(40))
    sequence: Mapped[int] = mapped_column(BigInteger)
    payload: Mapped[bytes] = mapped_column(LargeBinary)  # the event as JSON
    correlation_id: Mapped[str | None] = mapped_column(String(80))
    received_at: Mapped[datetime]


# Byte order on PostgreSQL too (SQLite's default), so that a prefix is a range of the index.
SEARCH_TERM = String(200).with_variant(String(200, collation="C"), "postgresql")


class ClientRow(Base):
    """A client the hub has received journey events for, as the newest of them names it: the
    directory the dashboard's search lists (``store/clients.py``)."""

    __tablename__ = "clients"
    # The retention purge forgets a client its events are gone for (its terms go with it).
    __table_args__ = (Index("ix_clients_last_seen_at", "last_seen_at"),)
    tenant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    sequence: Mapped[int] = mapped_column(BigInteger)  # the bus sequence of that event
    first_seen_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]


class ClientTerm(Base):
    """What a client is found by, lower-cased: its id, each email and name it has had, each
    word of those names. A search is a prefix range of ``term``."""

    __tablename__ = "client_terms"
    __table_args__ = (
        Index("ix_client_terms_tenant_client", "tenant_id", "client_id"),
        ForeignKeyConstraint(
            ["tenant_id", "client_id"],
            ["clients.tenant_id", "clients.client_id"],
            ondelete="CASCADE",
        ),
    )
    tenant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    term: Mapped[str] = mapped_column(SEARCH_TERM, primary_key=True)
    client_id: Mapped[str] = mapped_column(String(200), primary_key=True)


class ChartSample(Base):
    """One backlog reading for the dashboard's charts, taken once a minute by one worker
    (``workers/sampler.py``): a tenant's pending deliveries (series ``tasks``, written only
    when not zero), or for the whole hub (tenant ``*``) its pending tasks (``tasks``, written
    every round: the round's marker) and each bus consumer's unfinished messages
    (``bus:<durable>``)."""

    __tablename__ = "chart_samples"
    __table_args__ = (
        Index("ix_chart_samples_tenant_taken", "tenant_id", "taken_at"),
        Index("ix_chart_samples_taken_at", "taken_at"),  # the retention purge's
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    taken_at: Mapped[datetime]
    tenant_id: Mapped[str] = mapped_column(String(40))
    series: Mapped[str] = mapped_column(String(80))
    value: Mapped[int] = mapped_column(BigInteger)


class Incident(Base):
    """An operational condition of one connection, from its raising to its resolution
    (``incidents.py``). ``open_key`` (the condition's kind and connection) is set while it is
    open and unique: one open incident per condition, however many evaluators run.
    ``revision`` counts its changes that the tenant is told of; ``notified_revision`` is the
    last one handed to the tenant's operations connections (the outbox)."""

    __tablename__ = "incidents"
    __table_args__ = (
        Index("ix_incidents_tenant_started", "tenant_id", "started_at"),
        Index("ix_incidents_resolved_at", "resolved_at"),  # the retention purge's
    )
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(40))
    connection_id: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(10))  # open | resolved
    open_key: Mapped[str | None] = mapped_column(String(100), unique=True)
    summary: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]]
    measure: Mapped[int] = mapped_column(BigInteger, default=0)  # the size last notified
    revision: Mapped[int] = mapped_column(Integer, default=1)
    notified_revision: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    # When the condition was last seen gone; resolved once it stays gone (no flapping storm).
    clear_since: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]


class OAuthStateRow(Base):
    """An OAuth authorization request in flight (``services/oauth.py``): the one-time state,
    bound to a tenant's connection, with its PKCE verifier (encrypted), until it is used or
    expires. Keyed by the state's SHA-256: the state itself is never stored."""

    __tablename__ = "oauth_states"
    __table_args__ = (Index("ix_oauth_states_expires_at", "expires_at"),)
    state_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(40))
    connection_id: Mapped[str] = mapped_column(String(40))
    verifier: Mapped[bytes] = mapped_column(LargeBinary)  # secretbox-encrypted
    redirect_uri: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


def table_of(model: type[Base]) -> Table:
    """A model's ``Table``: what Core statements (insert, update) take. The ORM types
    ``__table__`` as a plain ``FromClause``."""
    return cast(Table, model.__table__)
