"""The shapes that cross the hub's boundaries, as msgspec Structs.

Decoding is strict (no type coercion) and errors name the field, e.g.
``Expected `str`, got `int` - at `$.client.email```.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec

EventType = Literal[
    "journey_started",
    "step_completed",
    "journey_completed",
    "journey_paused",
    "journey_failed",
    "client_updated",
    "email_requested",
]
EVENT_TYPES: tuple[str, ...] = EventType.__args__  # type: ignore[attr-defined]

# The events that carry the client's and the wedding's fields as the journey engine means them.
# Every other event carries a snapshot taken when its journey step ran, which may be older than a
# change made at a vendor since; a connector writes those fields only for these events, and lets
# other events add their own records (a note, a status, a timeline entry).
FIELD_SETTING_EVENTS: frozenset[str] = frozenset({"journey_started", "client_updated"})


def sets_client_fields(event: JourneyEvent) -> bool:
    """Whether ``event`` may change a client's or a wedding's fields at a vendor."""
    return event.type in FIELD_SETTING_EVENTS


TriggerType = Literal[
    "payment_received",
    "payment_failed",
    "invoice_paid",
    "refund_issued",
    "payment_disputed",
    "email_delivered",
    "email_opened",
    "email_clicked",
    "email_bounced",
    "email_complained",
    "email_unsubscribed",
    "email_failed",
    "email_suppressed",
    "client_updated",
    "wedding_date_changed",
    "project_status_changed",
    "calendar_event_changed",
]
TRIGGER_TYPES: tuple[str, ...] = TriggerType.__args__  # type: ignore[attr-defined]

Direction = Literal["inbound", "outbound", "bidirectional"]
Capability = Literal["push", "pull", "webhook", "operations"]  # operations: incident notices
AuthKind = Literal["none", "api_key", "bearer", "oauth2", "shared_secret", "form_key"]
Role = Literal["admin", "ingest", "read"]

NonEmpty = msgspec.Meta(min_length=1)
Id = msgspec.Meta(min_length=1, max_length=200)


def utcnow() -> datetime:
    return datetime.now(UTC)


def stable_id(prefix: str, *parts: str) -> str:
    """A deterministic id: the same source parts always give the same id."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]
    return f"{prefix}_{digest}"


# --- journey event (in) ----------------------------------------------------------------------


class Client(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    id: str
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    language: str | None = None  # a BCP 47 tag ("fr", "de-CH"): the couple's messages and formats


class Venue(msgspec.Struct, kw_only=True):
    name: str | None = None
    address: str | None = None


class Wedding(msgspec.Struct, kw_only=True):
    date: str | None = None  # ISO date (YYYY-MM-DD) as the journey engine sends it
    venue: Venue | None = None
    guest_count: int | None = None


class Step(msgspec.Struct, kw_only=True):
    name: str
    type: str
    id: str | None = None
    data: dict[str, Any] = {}


class JourneyEvent(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A journey event from the journey engine; ``id`` is the sender's idempotency key."""

    id: str
    type: EventType
    occurred_at: datetime
    journey_instance_id: str
    client: Client
    journey_name: str | None = None
    wedding: Wedding | None = None
    step: Step | None = None
    data: dict[str, Any] = {}

    def __post_init__(self) -> None:
        if self.type == "step_completed" and self.step is None:
            raise ValueError("`step` is required when type is step_completed")
        if not self.id:
            raise ValueError("`id` must not be empty")


# --- trigger (out to the journey engine) ------------------------------------------------------


class Trigger(msgspec.Struct, kw_only=True):
    """A normalized trigger. ``id`` is deterministic from its source, so a repeated source
    (a webhook redelivered, a page pulled twice) never makes a second trigger."""

    id: str
    type: TriggerType
    tenant_id: str
    connection_id: str
    vendor: str
    occurred_at: datetime
    source_event_id: str
    client_id: str | None = None
    data: dict[str, Any] = {}


class TriggerDraft(msgspec.Struct, kw_only=True):
    """What a connector returns from a webhook or a pulled record: the kernel fills in the
    tenant, connection, id, and resolves ``client_id`` from the vendor identities given."""

    type: TriggerType
    source_event_id: str
    occurred_at: datetime | None = None
    client_id: str | None = None
    client_email: str | None = None
    vendor_record_id: str | None = None
    data: dict[str, Any] = {}


# --- connections -------------------------------------------------------------------------------


class FieldMapping(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    source: str  # a dotted path into the journey event, e.g. "wedding.venue.name"
    target: str
    transform: str | None = None  # e.g. "date:%d/%m/%Y", "upper", "map", "template"
    default: Any = None
    options: dict[str, Any] = {}


# Keys of a connection's ``config`` that the kernel reads; plugins' schemas never see them.
KERNEL_CONFIG_KEYS = (
    "rate_limit_per_second",
    "pull_interval_seconds",
    "conflict_policy",
    "retry",  # the push retry policy (delivery/retry_policy.py)
)


class Connection(msgspec.Struct, kw_only=True):
    """A tenant's connection to one vendor account. Credentials are held apart, never here,
    so a Connection can be logged and returned by the API as it is."""

    id: str
    tenant_id: str
    vendor: str
    name: str
    direction: Direction = "bidirectional"
    enabled: bool = True
    config: dict[str, Any] = {}  # the vendor's settings, as the plugin's config schema has them
    options: dict[str, Any] = {}  # the kernel's settings (KERNEL_CONFIG_KEYS)
    event_types: list[str] = []
    field_mappings: list[FieldMapping] = []
    # gone: the endpoint answered 410 Gone and the connection was disabled (delivery/gone.py)
    status: Literal["active", "needs_reauth", "error", "gone"] = "active"
    created_at: datetime | None = None
    updated_at: datetime | None = None


# --- incidents (out to the tenant's operators) ---------------------------------------------------

IncidentNoticeType = Literal["incident.raised", "incident.updated", "incident.resolved"]
INCIDENT_NOTICE_TYPES: tuple[str, ...] = IncidentNoticeType.__args__  # type: ignore[attr-defined]


class IncidentNotice(msgspec.Struct, kw_only=True):
    """What a tenant's operations connections receive about an incident (``incidents.py``):
    its raising, an update while it lasts, its resolution. ``revision`` counts its changes."""

    type: IncidentNoticeType
    id: str
    tenant_id: str
    kind: str  # needs_reauth | breaker_open | dead_letters | backlog_stalled | sync_failing | …
    connection_id: str
    status: Literal["open", "resolved"]
    revision: int
    started_at: datetime
    updated_at: datetime
    resolved_at: datetime | None = None
    summary: str = ""
    details: dict[str, Any] = {}


# --- deliveries (out) ----------------------------------------------------------------------------


class DeliveryTask(msgspec.Struct, kw_only=True):
    """One journey event (or trigger) to deliver to one connection; lives on
    ``jh.push.<connection_id>``. ``id`` doubles as the vendor idempotency key."""

    id: str
    tenant_id: str
    connection_id: str
    vendor: str
    kind: Literal["event", "trigger", "incident"]
    order_key: str  # events for the same key on one connection take effect in order
    sequence: int  # the sender's order within the key (bus sequence of the source message)
    event: JourneyEvent | None = None
    trigger: Trigger | None = None
    incident: IncidentNotice | None = None  # to an operations channel (``incidents.py``)
    mapped: dict[str, Any] = {}  # the connection's field mappings applied to the event
    correlation_id: str | None = None
    enqueued_at: datetime | None = None

    @property
    def idempotency_key(self) -> str:
        return self.id


def client_of(task: DeliveryTask) -> tuple[str | None, str | None]:
    """Our client id and email of a task: whom the vendor id map (``Known``) is about."""
    if task.event is not None:
        return task.event.client.id, task.event.client.email
    if task.trigger is not None:
        return task.trigger.client_id, None
    return None, None


class SyncedRecord(msgspec.Struct, kw_only=True):
    """A record a push wrote (or found) at the vendor, in the same canonical fields its pull
    reports. The kernel keeps it as a sync link: the sync tells our own change coming back (an
    echo) from a real one, and the next push of the client gets it back in ``Known``.

    ``ref`` says which of the client's records of this kind it is (a job: the journey instance
    id). ``deleted``: the push found the vendor no longer has it (its id answered 404), so the
    hub forgets it."""

    kind: str
    vendor_id: str
    fields: dict[str, Any] = {}
    our_id: str | None = None
    email: str | None = None
    ref: str | None = None
    deleted: bool = False


class KnownRecord(msgspec.Struct, kw_only=True, frozen=True):
    """A record the hub knows at the vendor for a client on one connection: one a push wrote or
    found, or one the pull saw with the client's email (``our_id`` None: the studio's own)."""

    kind: str
    vendor_id: str
    ref: str | None = None
    our_id: str | None = None
    email: str | None = None
    fields: dict[str, Any] = {}  # what the hub last knew of it: pulled, then pushed on top


class Known(msgspec.Struct, kw_only=True, frozen=True):
    """What the hub knows about a task's client at the connection (the vendor id map), and
    whether the vendor may hold records of the client that the map lacks.

    ``attempt`` is the number of the attempt now starting. From 2 on, an earlier attempt may
    have written at the vendor (a timeout after sending, a crash before its outcome was
    recorded). ``after_dead_letter``: an earlier task of the client at this connection was
    dead-lettered, and its attempts may have written what no outcome reported. Either way,
    look up before creating (``first_attempt`` is False). Otherwise every write of the client
    at this connection reported its records: a record missing here is missing there, and is
    created without a lookup."""

    records: tuple[KnownRecord, ...] = ()
    attempt: int = 1
    after_dead_letter: bool = False

    @property
    def first_attempt(self) -> bool:
        """True when the map is complete: create what it lacks without looking it up."""
        return self.attempt <= 1 and not self.after_dead_letter

    def find(self, kind: str, ref: str | None = None) -> KnownRecord | None:
        """The client's record of ``kind`` (with ``ref``, when given), ours before the studio's."""
        found = [r for r in self.records if r.kind == kind and (ref is None or r.ref == ref)]
        found.sort(key=lambda r: r.our_id is None)
        return found[0] if found else None

    def all(self, kind: str) -> list[KnownRecord]:
        return [r for r in self.records if r.kind == kind and r.our_id is not None]

    def learn(self, records: list[SyncedRecord]) -> Known:
        """This map with what a push just reported (the next task of the client, pushed in
        the same batch, must not create what the previous one made)."""
        if not records:
            return self
        reported = {(r.kind, r.vendor_id): r for r in records}
        kept = [r for r in self.records if (r.kind, r.vendor_id) not in reported]
        for (kind, vendor_id), record in reported.items():
            if record.deleted:
                continue
            before = next(
                (r for r in self.records if (r.kind, r.vendor_id) == (kind, vendor_id)), None
            )
            kept.append(
                KnownRecord(
                    kind=kind,
                    vendor_id=vendor_id,
                    ref=record.ref if record.ref is not None else before.ref if before else None,
                    our_id=(
                        record.our_id
                        if record.our_id is not None
                        else before.our_id
                        if before
                        else None
                    ),
                    email=(
                        record.email
                        if record.email is not None
                        else before.email
                        if before
                        else None
                    ),
                    fields={**(before.fields if before else {}), **record.fields},
                )
            )
        return Known(
            records=tuple(kept), attempt=self.attempt, after_dead_letter=self.after_dead_letter
        )


class PushResult(msgspec.Struct, kw_only=True):
    status: Literal["delivered", "already_delivered", "skipped"] = "delivered"
    vendor_status: int | None = None
    external_ids: dict[str, str] = {}
    detail: str | None = None
    records: list[SyncedRecord] = []


# --- pull -----------------------------------------------------------------------------------------


class PulledRecord(msgspec.Struct, kw_only=True):
    vendor_id: str
    kind: str  # "contact", "job", "calendar_event", "payment_event", …
    fields: dict[str, Any] = {}
    modified_at: datetime | None = None
    deleted: bool = False
    our_id: str | None = None  # our id, when the vendor kept it (external mappings, private props)


class PullPage(msgspec.Struct, kw_only=True):
    records: list[PulledRecord] = []
    next_cursor: str | None = None
    has_more: bool = False
    triggers: list[TriggerDraft] = []  # connectors whose pulled records are events (Stripe)


# --- webhooks (in) --------------------------------------------------------------------------------


class WebhookReceipt(msgspec.Struct, kw_only=True):
    """What verification at the gateway learnt before the request is acknowledged."""

    event_id: str  # the vendor's event id: the bus dedupe key
    event_type: str | None = None


class StoredWebhook(msgspec.Struct, kw_only=True):
    """The raw request as stored on ``jh.inbound.<vendor>.<connection_id>``."""

    vendor: str
    connection_id: str
    tenant_id: str
    event_id: str
    event_type: str | None
    received_at: datetime
    headers: dict[str, str]
    body: bytes
    correlation_id: str | None = None


# --- connector description ------------------------------------------------------------------------


class OAuthClient(msgspec.Struct, kw_only=True, frozen=True):
    """How a person connects their vendor account in a browser: what a connector with
    ``auth_kind="oauth2"`` answers to ``journeyhub_oauth_client``. The kernel runs the OAuth 2.0
    authorization-code flow with PKCE (S256) and a one-time state with it (``services/oauth.py``).
    """

    authorization_url: str  # the vendor's authorization (consent) endpoint
    token_url: str  # the vendor's token endpoint
    client_id: str  # the OAuth client of the vendor app: the connection's, or the connector's
    client_secret: str | None = None  # sent in the token request's form (client_secret_post)
    scopes: tuple[str, ...] = ()
    # More query parameters for the authorization endpoint (Google: access_type=offline and
    # prompt=consent, so the answer carries a refresh token every time).
    extra_params: dict[str, str] = {}


class RateLimit(msgspec.Struct, kw_only=True, frozen=True):
    requests: float
    per_seconds: float = 1.0


class ConnectorInfo(msgspec.Struct, kw_only=True):
    vendor: str
    display_name: str
    capabilities: frozenset[str]
    auth_kind: AuthKind
    config_schema: type | None = None  # a msgspec Struct type that validates ``config``
    credentials_schema: type | None = None  # a msgspec Struct type for ``credentials``
    rate_limit: RateLimit | None = None
    webhook_event_types: tuple[str, ...] = ()
    push_event_types: tuple[str, ...] = ()
    default_field_mappings: tuple[FieldMapping, ...] = ()
    max_batch: int = 1  # tasks per journeyhub_push_batch call (1: no batching)
    pull_interval_seconds: float = 300.0
    sync_on_webhook: bool = False  # a webhook means "something changed": pull now
    docs_url: str | None = None
