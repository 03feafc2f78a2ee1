"""One client's story: everything the hub did for a client, newest first, across every
connection. ``GET /v1/clients/{client_id}/timeline`` and the dashboard's client page
(``gateway/dashboard/clients.py``) both call :func:`client_timeline`; the search both offer
is :func:`find_clients`.

Each entry has the same shape (:class:`TimelineEntry`), whatever it comes from: a journey
event received, a delivery attempt and its outcome at a vendor (with the vendor's record ids),
a trigger emitted and the connection it came from, a dead letter (replayed with
``POST /v1/dlq/{ids.dead_letter}/replay``). A page ends with a cursor (``next``) to pass as
``before`` for the page after it.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any, Literal

import msgspec

from journeyhub.hub import Hub
from journeyhub.services.errors import InvalidInput
from journeyhub.store.clients import ClientEntry
from journeyhub.store.timeline import KINDS, Found, Position, TimelineRepo

MAX_CLIENT_ID = 200
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_SEARCH = 50
Kind = Literal["event", "delivery", "trigger", "dead_letter"]


class TimelineEntry(msgspec.Struct, kw_only=True):
    """One thing the hub did for the client.

    ``connection`` and ``connector`` are None for a journey event (it came from the journey
    engine). ``outcome``: ``received`` (an event), the attempt's status (a delivery:
    ``delivered``, ``skipped``, ``failed``, ``rate_limited``, ``needs_reauth``, ``dead``,
    ``replayed``), ``emitted`` (a trigger), ``dead`` or ``replayed`` (a dead letter). ``ids``:
    ours (``event``, ``delivery``, ``task``, ``source``, ``trigger``, ``source_event``,
    ``dead_letter``, ``correlation``) and the vendor's record ids as ``vendor.<name>``."""

    kind: Kind
    at: datetime
    connection: str | None
    connector: str | None
    outcome: str
    ids: dict[str, str]
    summary: str


class ClientView(msgspec.Struct, kw_only=True):
    """The client as its newest journey event names it (None: no event of it is kept)."""

    id: str
    name: str | None = None
    email: str | None = None
    first_seen_at: datetime | None = None
    last_seen_at: datetime | None = None


class VendorRecordView(msgspec.Struct, kw_only=True):
    """A record the hub knows at a vendor for the client (the id map)."""

    connection: str
    connector: str
    kind: str
    vendor_id: str
    ref: str | None
    updated_at: datetime


class ClientTimeline(msgspec.Struct, kw_only=True):
    client: ClientView
    records: list[VendorRecordView]
    entries: list[TimelineEntry]
    next: str | None  # the ``before`` of the next page; None on the last one


# --- the cursor ----------------------------------------------------------------------------------


def encode_cursor(position: Position) -> str:
    raw = msgspec.json.encode([position.at.isoformat(), position.kind, position.key])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> Position:
    """A ``before`` value back into a position; ``InvalidInput`` when it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, kind, key = msgspec.json.decode(raw, type=tuple[datetime, str, str])
    except (binascii.Error, ValueError, msgspec.DecodeError, msgspec.ValidationError):
        raise InvalidInput("not a cursor this API gave", "before") from None
    if at.tzinfo is None or kind not in KINDS or "\x00" in key:
        raise InvalidInput("not a cursor this API gave", "before")
    if kind == "delivery" and not (key.isascii() and key.isdigit() and len(key) <= 18):
        raise InvalidInput("not a cursor this API gave", "before")
    return Position(at, kind, key)


# --- entries -------------------------------------------------------------------------------------


def _words(name: str) -> str:
    return name.replace("_", " ")


def _decoded(payload: bytes) -> dict[str, Any]:
    try:
        value = msgspec.json.decode(payload)
    except msgspec.DecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _event(found: Found) -> TimelineEntry:
    row = found.row
    event = _decoded(row.payload)
    parts = [_words(row.type)]
    if journey := event.get("journey_name"):
        parts.append(f"journey {journey!s}")
    step = event.get("step")
    if isinstance(step, dict) and step.get("name"):
        parts.append(f"step {step['name']!s}")
    if occurred := event.get("occurred_at"):
        parts.append(f"occurred {occurred!s}")
    ids = {"event": row.event_id}
    if instance := event.get("journey_instance_id"):
        ids["journey_instance"] = str(instance)
    if row.correlation_id:
        ids["correlation"] = row.correlation_id
    return TimelineEntry(
        kind="event",
        at=found.position.at,
        connection=None,
        connector=None,
        outcome="received",
        ids=ids,
        summary=" · ".join(parts),
    )


def _delivery(found: Found) -> TimelineEntry:
    row = found.row
    ids = {"delivery": str(row.id), "task": row.task_id, "source": row.source_id}
    for name, value in sorted((row.external_ids or {}).items()):
        ids[f"vendor.{name}"] = str(value)
    if row.status == "replayed":
        summary = f"put back in the queue ({row.error})" if row.error else "put back in the queue"
    else:
        parts = [f"{_words(row.status)} at {row.vendor}, attempt {row.attempt}"]
        if row.vendor_status is not None:
            parts.append(f"HTTP {row.vendor_status}")
        if row.latency_ms is not None:
            parts.append(f"{row.latency_ms:.0f} ms")
        summary = " · ".join(parts) + (f": {row.error}" if row.error else "")
    return TimelineEntry(
        kind="delivery",
        at=found.position.at,
        connection=row.connection_id,
        connector=row.vendor,
        outcome=row.status,
        ids=ids,
        summary=summary,
    )


def _dead_letter(found: Found) -> TimelineEntry:
    row = found.row
    ids = {"dead_letter": row.id, "task": row.msg_id}
    task = _decoded(row.payload)
    what = "a delivery task"
    for kind in ("event", "trigger"):
        source = task.get(kind)
        if isinstance(source, dict) and source.get("id"):
            ids["source"] = str(source["id"])
            what = f"{_words(str(source.get('type', kind)))} {kind}"
    summary = f"{what} dead-lettered after {row.attempts} attempt(s): {row.error}"
    if row.replayed_at is not None:
        last = row.replayed_at.isoformat(timespec="seconds")
        summary += f" · replayed {row.replay_count} time(s), last at {last}"
    return TimelineEntry(
        kind="dead_letter",
        at=found.position.at,
        connection=row.connection_id,
        connector=row.vendor,
        outcome="replayed" if row.replayed_at is not None else "dead",
        ids=ids,
        summary=summary,
    )


def _trigger(found: Found) -> TimelineEntry:
    row = found.row
    occurred = row.occurred_at.isoformat(timespec="seconds")
    return TimelineEntry(
        kind="trigger",
        at=found.position.at,
        connection=row.connection_id,
        connector=row.vendor,
        outcome="emitted",
        ids={"trigger": row.id, "source_event": row.source_event_id},
        summary=f"{_words(row.type)} from {row.vendor} (occurred {occurred})",
    )


ENTRY = {"event": _event, "delivery": _delivery, "dead_letter": _dead_letter, "trigger": _trigger}


def check_client_id(client_id: str) -> None:
    if not client_id.strip() or len(client_id) > MAX_CLIENT_ID:
        raise InvalidInput(f"a client id has 1 to {MAX_CLIENT_ID} characters", "client_id")
    if "\x00" in client_id:  # no database keeps it in a text column
        raise InvalidInput("a client id has no NUL character", "client_id")


def _client_view(client_id: str, entry: ClientEntry | None) -> ClientView:
    if entry is None:
        return ClientView(id=client_id)
    return ClientView(
        id=client_id,
        name=entry.name,
        email=entry.email,
        first_seen_at=entry.first_seen_at,
        last_seen_at=entry.last_seen_at,
    )


async def client_timeline(
    hub: Hub,
    tenant_id: str,
    client_id: str,
    *,
    before: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> ClientTimeline:
    """A page of the client's timeline within the tenant, newest first. A client the tenant
    never had answers an empty page. Raises ``InvalidInput`` for a bad client id or cursor."""
    check_client_id(client_id)
    position = decode_cursor(before) if before else None
    limit = min(max(limit, 1), MAX_LIMIT)
    story = await TimelineRepo(hub.store).read(tenant_id, client_id, before=position, limit=limit)
    return ClientTimeline(
        client=_client_view(client_id, story.client),
        records=[
            VendorRecordView(
                connection=r.connection_id,
                connector=r.vendor,
                kind=r.kind,
                vendor_id=r.vendor_id,
                ref=r.ref,
                updated_at=r.updated_at,
            )
            for r in story.records
        ],
        entries=[ENTRY[f.source.kind](f) for f in story.found],
        next=encode_cursor(story.found[-1].position) if story.more and story.found else None,
    )


async def find_clients(hub: Hub, tenant_id: str, query: str, *, limit: int) -> list[ClientView]:
    """The tenant's clients whose id, name, a word of the name, or email starts with
    ``query`` (case-insensitive), best first. Raises ``InvalidInput`` for a NUL in it."""
    if "\x00" in query:
        raise InvalidInput("a search has no NUL character", "q")
    found = await hub.store.clients.search(tenant_id, query, limit=min(max(limit, 1), MAX_SEARCH))
    return [_client_view(entry.client_id, entry) for entry in found]
