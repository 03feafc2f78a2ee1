"""Calendar events as journeyhub writes and recognises them: deterministic ids, start/end,
our private properties and the fingerprint that lets a sync tell its own echo.

Event ids: Google lets a client choose an event's ``id`` ("characters allowed in the ID are
those used in base32hex encoding, i.e. lowercase letters a-v and digits 0-9 ... between 5 and
1024 characters", calendar.v3 discovery document, ``Event.id``). Ours are ``jh`` + the
lower-case base32hex of a SHA-256 prefix of what the event stands for, so a retried push
addresses the same event and never makes a second one.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

EVENT_ID = re.compile(r"^[0-9a-v]{5,1024}$")
ID_PREFIX = "jh"  # both letters are base32hex
# The fields journeyhub sets, in the order the fingerprint reads them.
MANAGED = ("summary", "location", "description", "start", "end", "status")

# Private extended properties: only on this calendar's copy of the event, never shown to guests.
P_CLIENT = "journeyhub_client_id"
P_INSTANCE = "journeyhub_journey_instance_id"
P_TASK = "journeyhub_task_id"
P_FINGERPRINT = "journeyhub_fingerprint"
P_FIELDS = "journeyhub_fields"  # which MANAGED fields the fingerprint covers, comma-separated
P_KIND = "journeyhub_kind"  # "wedding" or "step"
PRIVATE_VALUE_MAX = 1024  # assumed limit of a private property value (see README)


def event_id(kind: str, *parts: str) -> str:
    digest = hashlib.sha256("\x1f".join((kind, *parts)).encode()).digest()[:20]
    return ID_PREFIX + base64.b32hexencode(digest).decode().lower()  # 20 bytes: 32 chars, no "="


def wedding_event_id(journey_instance_id: str) -> str:
    return event_id("wedding", journey_instance_id)


def step_event_id(journey_instance_id: str, step_key: str) -> str:
    return event_id("step", journey_instance_id, step_key)


# --- times ------------------------------------------------------------------------------------


def parse_when(value: Any, zone: ZoneInfo) -> date | datetime | None:
    """A date (``YYYY-MM-DD``) or an aware datetime (naive ones are in ``zone``), or None."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        return value
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        try:
            if len(text) == 10:
                return date.fromisoformat(text)
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)


def parse_clock(value: Any) -> time | None:
    """``HH:MM`` or ``HH:MM:SS``."""
    if not isinstance(value, str):
        return None
    try:
        return time.fromisoformat(value.strip())
    except ValueError:
        return None


def all_day(first: date, last: date | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """All-day ``start``/``end`` (the end date is exclusive). The explicit nulls clear a time a
    previous version of the event had, when sent as a patch."""
    end = (last if last and last >= first else first) + timedelta(days=1)
    return (
        {"date": first.isoformat(), "dateTime": None, "timeZone": None},
        {"date": end.isoformat(), "dateTime": None, "timeZone": None},
    )


def timed(start: datetime, end: datetime, zone_name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    return (
        {"date": None, "dateTime": start.isoformat(), "timeZone": zone_name},
        {"date": None, "dateTime": end.isoformat(), "timeZone": zone_name},
    )


def _canonical_time(value: Any) -> dict[str, str] | None:
    """The instant an EventDateTime names, however Google wrote it (offset or zone differ)."""
    if not isinstance(value, Mapping):
        return None
    if isinstance(value.get("date"), str):
        return {"date": value["date"]}
    moment = parse_when(value.get("dateTime"), ZoneInfo("UTC"))
    if isinstance(moment, datetime):
        return {"dateTime": moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
    return None


# --- fingerprint -----------------------------------------------------------------------------


def fingerprint(event: Mapping[str, Any], keys: Iterable[str]) -> str:
    """SHA-256 (hex) of the given MANAGED fields of an event, normalised so the event we sent
    and the event Google gives back have the same fingerprint."""
    canonical: dict[str, Any] = {}
    for key in sorted(set(keys) & set(MANAGED)):
        value = event.get(key)
        if key in ("start", "end"):
            canonical[key] = _canonical_time(value)
        elif key == "status":
            canonical[key] = value or "confirmed"  # Google's default
        else:
            canonical[key] = value if isinstance(value, str) else ""  # empty: Google omits it
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def managed_keys(body: Mapping[str, Any]) -> list[str]:
    return [key for key in MANAGED if key in body]


def private_properties(event: Mapping[str, Any]) -> dict[str, str]:
    props = event.get("extendedProperties")
    private = props.get("private") if isinstance(props, Mapping) else None
    if not isinstance(private, Mapping):
        return {}
    return {str(k): v for k, v in private.items() if isinstance(v, str)}


def echo_of(event: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """``(fingerprint we pushed, fingerprint of the event as it is now over the same fields)``;
    equal means nobody changed what we set: the event is our own echo."""
    private = private_properties(event)
    pushed = private.get(P_FINGERPRINT)
    if not pushed:
        return None, None
    keys = [k for k in (private.get(P_FIELDS) or "").split(",") if k]
    return pushed, fingerprint(event, keys or MANAGED)


def stamp(body: dict[str, Any], private: Mapping[str, str]) -> dict[str, Any]:
    """``body`` with our private properties and the fingerprint of its managed fields."""
    keys = managed_keys(body)
    props = {k: v[:PRIVATE_VALUE_MAX] for k, v in private.items()}
    props[P_FIELDS] = ",".join(keys)
    props[P_FINGERPRINT] = fingerprint(body, keys)
    return {**body, "extendedProperties": {"private": props}}


def without_nulls(value: Any) -> Any:
    """An insert body: the nulls only mean something to a patch."""
    if isinstance(value, Mapping):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    return value
