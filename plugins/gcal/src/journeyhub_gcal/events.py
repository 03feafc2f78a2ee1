"""Calendar events as journeyhub writes them (upserted under ids of ours) and recognises them.

Google lets a client choose an event's ``id`` (base32hex a-v0-9, 5 to 1024 characters,
calendar.v3 ``Event.id``). Upsert = ``events.patch`` by id (only our fields change, what the
user added stays); on 404 ``events.insert`` with that id; an insert answered 409 (a concurrent
push, or an earlier insert whose answer was lost) is followed by the patch again. So retries
leave one event per id. Our private properties and fingerprint let a sync tell its own echo.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

from journeyhub.kit import JourneyEvent, PermanentError, PushResult, RetryableError

from journeyhub_gcal.client import GcalClient
from journeyhub_gcal.config import GcalConfig

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
WEDDING_EVENTS = ("journey_started", "client_updated")
OUTCOME_EVENTS = ("journey_completed", "journey_paused", "journey_failed")
PUSH_EVENT_TYPES = (*WEDDING_EVENTS, "step_completed", *OUTCOME_EVENTS)


def event_id(kind: str, *parts: str) -> str:
    digest = hashlib.sha256("\x1f".join((kind, *parts)).encode()).digest()[:20]
    # "jh" (both letters are base32hex) and 20 bytes as 32 characters, no "=".
    return "jh" + base64.b32hexencode(digest).decode().lower()


def wedding_event_id(journey_instance_id: str) -> str:
    return event_id("wedding", journey_instance_id)


def step_event_id(journey_instance_id: str, step_key: str) -> str:
    return event_id("step", journey_instance_id, step_key)


def parse_when(value: Any, zone: tzinfo) -> date | datetime | None:
    """A date (``YYYY-MM-DD``) or an aware datetime (naive ones are in ``zone``), or None."""
    if isinstance(value, str) and value.strip():
        text = value.strip()
        try:
            value = date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)
        except ValueError:
            return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=zone)
    return value if isinstance(value, date) else None


def span(when: Any, end: Any, length: timedelta, zone: str) -> tuple[dict, ...] | None:
    """``start``/``end``: timed for a datetime (to ``end``, or ``length`` later), all day for a
    date (through a later ``end`` date). The nulls clear the other kind in a patch."""
    if isinstance(when, datetime):
        end = end if isinstance(end, datetime) and end > when else when + length
        return tuple(
            {"date": None, "dateTime": t.isoformat(), "timeZone": zone} for t in (when, end)
        )
    if not isinstance(when, date):
        return None
    last = end if isinstance(end, date) and not isinstance(end, datetime) and end >= when else when
    days = (when, last + timedelta(days=1))
    return tuple({"date": d.isoformat(), "dateTime": None, "timeZone": None} for d in days)


def _canonical_time(value: Any) -> dict[str, str] | None:
    """The instant an EventDateTime names, however Google wrote it (offset or zone differ)."""
    if not isinstance(value, Mapping):
        return None
    if isinstance(value.get("date"), str):
        return {"date": value["date"]}
    instant = parse_when(value.get("dateTime"), UTC)
    if not isinstance(instant, datetime):
        return None
    return {"dateTime": instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}


def fingerprint(event: Mapping[str, Any], keys: Iterable[str]) -> str:
    """SHA-256 of the given MANAGED fields, normalised: what we sent and Google's copy match."""
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


def private_properties(event: Mapping[str, Any]) -> dict[str, str]:
    props = event.get("extendedProperties")
    private = props.get("private") if isinstance(props, Mapping) else None
    pairs = private.items() if isinstance(private, Mapping) else ()
    return {str(k): v for k, v in pairs if isinstance(v, str)}


def echo_of(event: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """``(fingerprint we pushed, fingerprint now over the same fields)``: equal means our echo."""
    private = private_properties(event)
    pushed = private.get(P_FINGERPRINT)
    if not pushed:
        return None, None
    keys = [k for k in (private.get(P_FIELDS) or "").split(",") if k]
    return pushed, fingerprint(event, keys or MANAGED)


def stamp(body: dict[str, Any], private: Mapping[str, str]) -> dict[str, Any]:
    """``body`` with our private properties and the fingerprint of its managed fields."""
    keys = [key for key in MANAGED if key in body]
    props = {k: v[:PRIVATE_VALUE_MAX] for k, v in private.items()}
    props[P_FIELDS] = ",".join(keys)
    props[P_FINGERPRINT] = fingerprint(body, keys)
    return {**body, "extendedProperties": {"private": props}}


def without_nulls(value: Any) -> Any:
    """An insert body: the nulls only mean something to a patch."""
    if isinstance(value, Mapping):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    return value


async def upsert(cal: GcalClient, event_id: str, body: dict[str, Any]) -> str:
    """``"updated"``, ``"created"``, or ``"missing"`` (no such event, and no start to make it)."""
    status, _ = await cal.call("PATCH", cal.event_path(event_id), json=body, allow=(404, 410))
    if status == 410:
        raise PermanentError(
            f"Google Calendar says event {event_id} is gone for good; its id cannot be reused"
        )
    if status < 300:
        return "updated"
    if "start" not in body:
        return "missing"
    insert = {**without_nulls(body), "id": event_id}
    status, _ = await cal.call("POST", cal.events_path, json=insert, allow=(409,))
    if status != 409:
        return "created"
    status, _ = await cal.call("PATCH", cal.event_path(event_id), json=body, allow=(404, 410))
    if status >= 300:  # 409 then 404: the event is moving under us; try again later
        raise RetryableError(f"Google Calendar answered 409 then {status} for {event_id}")
    return "updated"


def skipped(detail: str) -> PushResult:
    return PushResult(status="skipped", detail=detail)


def step_times(data: dict[str, Any], config: GcalConfig) -> tuple[dict, ...] | None:
    """Start/end from a step's data: ``start`` or ``date`` (a date or an ISO date-time),
    optional ``start_time`` (HH:MM), ``end``, ``duration_minutes``."""
    when = parse_when(data.get("start") or data.get("date"), config.zone)
    clock = data.get("start_time") or data.get("time")  # HH:MM or HH:MM:SS
    if isinstance(when, date) and not isinstance(when, datetime) and isinstance(clock, str):
        with contextlib.suppress(ValueError):
            when = datetime.combine(when, time.fromisoformat(clock.strip()), tzinfo=config.zone)
    minutes = data.get("duration_minutes")
    if not isinstance(minutes, int | float) or isinstance(minutes, bool) or minutes <= 0:
        minutes = config.step_event_duration_minutes
    end = parse_when(data.get("end"), config.zone)
    return span(when, end, timedelta(minutes=float(minutes)), config.time_zone)


class Pusher:
    """One journey event onto the calendar."""

    def __init__(self, cal: GcalClient, event: JourneyEvent, mapped: dict, key: str) -> None:
        self.cal, self.event, self.mapped, self.key = cal, event, mapped, key
        self.config = cal.config
        self.props = {P_CLIENT: event.client.id, P_INSTANCE: event.journey_instance_id, P_TASK: key}
        self.client_name = event.client.name or event.client.email or "Client"
        # The wedding event's title as mapped.
        self.summary = str(mapped.get("summary") or f"{self.client_name} wedding")

    async def push(self) -> PushResult:
        if self.event.type == "step_completed":
            return await self.step()
        if self.event.type in WEDDING_EVENTS or self.event.type in OUTCOME_EVENTS:
            return await self.wedding()
        return skipped(f"{self.event.type} is not pushed to Google Calendar")

    def title(self, kind: str, journey: str, step: str) -> str:
        values = {"summary": self.summary, "client": self.client_name, "journey": journey}
        return self.config.title(kind, **values, step=step)

    async def put(self, event_id: str, kind: str, body: dict[str, Any]) -> PushResult:
        how = await upsert(self.cal, event_id, stamp(body, {**self.props, P_KIND: kind}))
        if how == "missing":  # an outcome for a journey with no wedding event and no date
            return skipped("no wedding event and no wedding date: nothing to update")
        detail, ids = f"{how} the {kind} event", {"event": event_id}
        return PushResult(vendor_status=self.cal.last_status, external_ids=ids, detail=detail)

    async def wedding(self) -> PushResult:
        """The wedding-day event; a journey's outcome sets its title and status."""
        outcome = self.event.type in OUTCOME_EVENTS
        if outcome:
            kind = self.event.type.removeprefix("journey_")
            title = self.title(kind, self.event.journey_name or "", "")
            status = getattr(self.config, f"status_{kind}")
        else:  # journey_started confirms the event; client_updated leaves its status alone
            title = self.summary
            status = "confirmed" if self.event.type == "journey_started" else None
        body: dict[str, Any] = {"summary": title, **({"status": status} if status else {})}
        for name in ("location", "description"):
            if self.mapped.get(name) not in (None, ""):  # not mapped: leave the user's alone
                body[name] = str(self.mapped[name])
        wedding = self.event.wedding
        raw = self.mapped.get("date") or (wedding.date if wedding else None)
        length = timedelta(hours=self.config.wedding_event_duration_hours)
        times = span(parse_when(raw, self.config.zone), None, length, self.config.time_zone)
        if times is not None:
            body["start"], body["end"] = times
        elif not outcome:
            return skipped("no wedding date: nothing to put on the calendar")
        return await self.put(wedding_event_id(self.event.journey_instance_id), "wedding", body)

    async def step(self) -> PushResult:
        step = self.event.step
        if step is None:
            raise PermanentError("step_completed without a step")
        times = step_times(step.data, self.config)
        if times is None:
            return skipped("the step has no date: no calendar event")
        journey = self.event.journey_name or "Journey"
        body: dict[str, Any] = {
            "summary": self.title("step", journey, step.name),
            "description": f"{journey}: {step.name}",
            "status": "confirmed",
            "start": times[0],
            "end": times[1],
        }
        if isinstance(step.data.get("location"), str) and step.data["location"]:
            body["location"] = step.data["location"]
        # The step's own id keeps one event per step even if it completes twice.
        event_id = step_event_id(self.event.journey_instance_id, step.id or self.key)
        return await self.put(event_id, "step", body)
