"""Calendar events as journeyhub writes them (upserted under ids of ours) and recognises them.

Google lets a client choose an event's ``id`` (base32hex a-v0-9, 5 to 1024 characters,
calendar.v3 ``Event.id``). Upsert = ``events.patch`` by id (only our fields change, what the
user added stays); on 404 ``events.insert`` with that id; an insert answered 409 (a concurrent
push, or an earlier insert whose answer was lost) is followed by the patch again. So retries
leave one event per id. An id Google holds as deleted for good is replaced by its successor,
kept in the hub's id map (records of kind ``calendar_event``, ``ref`` = the first id). Our
private properties and fingerprint let a sync tell its own echo.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from journeyhub.kit import JourneyEvent, Known, PermanentError, PushResult, sets_client_fields
from journeyhub.model import SyncedRecord

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
P_SUMMARY = "journeyhub_summary"  # the wedding title as mapped: an outcome's template base
P_INVITED = "journeyhub_invited"  # the couple's address we made an attendee
RECORD_KIND = "calendar_event"  # the id map's kind for our events (the pull's kind too)
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


def successor_id(old: str) -> str:
    """The id an event gets when Google will not give its id back: deterministic, so a retry
    after a lost answer finds the event it made."""
    return event_id("again", old)


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


def stamp(
    body: dict[str, Any], private: Mapping[str, str], current: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """``body`` with our private properties and the fingerprint of the managed fields the event
    has once ``body`` is patched onto ``current`` (what it covered before, and what is new)."""
    before = private_properties(current or {}).get(P_FIELDS, "").split(",")
    keys = [key for key in MANAGED if key in body or key in before]
    props = {k: v[:PRIVATE_VALUE_MAX] for k, v in private.items()}
    props[P_FIELDS] = ",".join(keys)
    props[P_FINGERPRINT] = fingerprint({**(current or {}), **body}, keys)
    return {**body, "extendedProperties": {"private": props}}


def without_nulls(value: Any) -> Any:
    """An insert body: the nulls only mean something to a patch."""
    if isinstance(value, Mapping):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    return value


async def upsert(
    cal: GcalClient, event_id: str, body: dict[str, Any], params: dict[str, str], exists: bool
) -> tuple[str, str]:
    """``(how, the id the event now has)``: patch (when it may exist), else insert with our id.
    An insert answered 409 (made meanwhile, or an earlier answer lost) patches again. An id
    Google keeps but will not give back (410, or 404 after that 409: the event was deleted
    and purged) is recreated once under its successor id, never looped."""
    patch_args = {"json": body, "params": params, "allow": (404, 410)}
    status = 404
    if exists:
        status, _ = await cal.call("PATCH", cal.event_path(event_id), **patch_args)
        if status < 300:
            return "updated", event_id
    if status == 404:
        insert = {**without_nulls(body), "id": event_id}
        status, _ = await cal.call(
            "POST", cal.events_path, json=insert, params=params, allow=(409,)
        )
        if status < 300:
            return "created", event_id
        status, _ = await cal.call("PATCH", cal.event_path(event_id), **patch_args)
        if status < 300:
            return "updated", event_id
    again = successor_id(event_id)
    insert = {**without_nulls(body), "id": again}
    status, _ = await cal.call("POST", cal.events_path, json=insert, params=params, allow=(409,))
    if status >= 300:  # an earlier attempt made it, its answer lost
        status, _ = await cal.call("PATCH", cal.event_path(again), **patch_args)
    if status >= 300:
        raise PermanentError(f"Google Calendar holds event ids {event_id} and {again} as deleted")
    return "recreated", again


def skipped(detail: str) -> PushResult:
    return PushResult(status="skipped", detail=detail)


def step_times(data: dict[str, Any], config: GcalConfig, zone: str) -> tuple[dict, ...] | None:
    """Start/end from a step's data: ``start`` or ``date`` (a date or an ISO date-time),
    optional ``start_time`` (HH:MM), ``end``, ``duration_minutes``; naive times in ``zone``."""
    tz = ZoneInfo(zone)
    when = parse_when(data.get("start") or data.get("date"), tz)
    clock = data.get("start_time") or data.get("time")  # HH:MM or HH:MM:SS
    if isinstance(when, date) and not isinstance(when, datetime) and isinstance(clock, str):
        with contextlib.suppress(ValueError):
            when = datetime.combine(when, time.fromisoformat(clock.strip()), tzinfo=tz)
    minutes = data.get("duration_minutes")
    if not isinstance(minutes, int | float) or isinstance(minutes, bool) or minutes <= 0:
        minutes = config.step_event_duration_minutes
    end = parse_when(data.get("end"), tz)
    return span(when, end, timedelta(minutes=float(minutes)), zone)


def with_couple(current: Mapping[str, Any] | None, email: str, name: str | None) -> list[dict]:
    """The attendees with the couple's address in place of the one we invited before; the
    guests the studio added, and the couple's answer, stay."""
    before = private_properties(current or {}).get(P_INVITED, "").lower()
    guests = [a for a in (current or {}).get("attendees") or [] if isinstance(a, dict)]
    mine = [a for a in guests if str(a.get("email", "")).lower() == email.lower()]
    others = [a for a in guests if str(a.get("email", "")).lower() not in (before, email.lower())]
    return [
        *others,
        mine[0] if mine else {"email": email, **({"displayName": name} if name else {})},
    ]


class Pusher:
    """One journey event onto the calendar. Only the events that set a client's fields
    (``sets_client_fields``) write the wedding event's date, place and guests; outcomes set
    its title and status; steps add their own events."""

    def __init__(
        self, cal: GcalClient, event: JourneyEvent, mapped: dict, key: str, known: Known
    ) -> None:
        self.cal, self.event, self.mapped, self.key, self.known = cal, event, mapped, key, known
        self.config = cal.config
        self.props = {P_CLIENT: event.client.id, P_INSTANCE: event.journey_instance_id, P_TASK: key}
        self.client_name = event.client.name or event.client.email or "Client"
        # The wedding event's title as mapped.
        self.summary = str(mapped.get("summary") or f"{self.client_name} wedding")
        self.records: list[SyncedRecord] = []

    async def push(self, connection_id: str) -> PushResult:
        self.zone = await self.cal.time_zone(connection_id)
        if self.event.type == "step_completed":
            return await self.step()
        if sets_client_fields(self.event):
            return await self.wedding()
        if self.event.type in OUTCOME_EVENTS:
            return await self.outcome()
        return skipped(f"{self.event.type} is not pushed to Google Calendar")

    def in_use(self, ref: str) -> str:
        """The id of our event ``ref`` (its first id): the id map's, else ``ref`` itself."""
        known = self.known.find(RECORD_KIND, ref)
        return known.vendor_id if known else ref

    def report(self, ref: str, event_id: str, deleted: bool = False) -> None:
        our_id = self.event.client.id
        self.records.append(
            SyncedRecord(
                kind=RECORD_KIND, vendor_id=event_id, ref=ref, our_id=our_id, deleted=deleted
            )
        )

    async def read(self, event_id: str) -> dict[str, Any] | None:
        status, body = await self.cal.call("GET", self.cal.event_path(event_id), allow=(404, 410))
        return body if status < 300 and isinstance(body, dict) else None

    def result(self, how: str, kind: str, event_id: str) -> PushResult:
        return PushResult(
            vendor_status=self.cal.last_status,
            external_ids={"event": event_id},
            detail=f"{how} the {kind} event",
            records=self.records,
        )

    async def put(
        self, ref: str, kind: str, body: dict[str, Any], props: dict[str, str]
    ) -> PushResult:
        event_id, params, exists = self.in_use(ref), {}, True
        email = self.event.client.email
        if kind == "wedding" and self.config.invite_client and email:
            current = await self.read(event_id)  # to keep the guests the studio added
            exists = current is not None
            body["attendees"] = with_couple(current, email, self.event.client.name)
            props[P_INVITED] = email.lower()
            params = {"sendUpdates": self.config.send_updates}
        stamped = stamp(body, {**self.props, **props, P_KIND: kind})
        how, used = await upsert(self.cal, event_id, stamped, params, exists)
        if used != event_id:
            self.report(ref, event_id, deleted=True)
        self.report(ref, used)
        return self.result(how, kind, used)

    async def wedding(self) -> PushResult:
        """The wedding-day event: title, place, date (journey_started also confirms it)."""
        body: dict[str, Any] = {"summary": self.summary}
        if self.event.type == "journey_started":
            body["status"] = "confirmed"
        for name in ("location", "description"):
            if self.mapped.get(name) not in (None, ""):  # not mapped: leave the user's alone
                body[name] = str(self.mapped[name])
        wedding = self.event.wedding
        raw = self.mapped.get("date") or (wedding.date if wedding else None)
        length = timedelta(hours=self.config.wedding_event_duration_hours)
        times = span(parse_when(raw, ZoneInfo(self.zone)), None, length, self.zone)
        if times is None:
            return skipped("no wedding date: nothing to put on the calendar")
        body["start"], body["end"] = times
        ref = wedding_event_id(self.event.journey_instance_id)
        return await self.put(ref, "wedding", body, {P_SUMMARY: self.summary})

    async def outcome(self) -> PushResult:
        """A journey's outcome: the wedding event's title and status, nothing else (the
        event's snapshot of the client and the wedding may be older than the calendar's)."""
        ref = wedding_event_id(self.event.journey_instance_id)
        event_id = self.in_use(ref)
        current = await self.read(event_id)
        if current is None or current.get("status") == "cancelled":
            return skipped("no wedding event on the calendar: an outcome does not make one")
        kind = self.event.type.removeprefix("journey_")
        base = private_properties(current).get(P_SUMMARY) or current.get("summary") or ""
        values = {"summary": base, "client": self.client_name, "step": ""}
        title = self.config.title(kind, **values, journey=self.event.journey_name or "")
        body = {"summary": title, "status": getattr(self.config, f"status_{kind}")}
        stamped = stamp(body, {**self.props, P_KIND: "wedding"}, current)
        status, _ = await self.cal.call(
            "PATCH", self.cal.event_path(event_id), json=stamped, allow=(404, 410)
        )
        if status >= 300:  # deleted since it was read
            return skipped("no wedding event on the calendar: an outcome does not make one")
        self.report(ref, event_id)
        return self.result("updated", "wedding", event_id)

    async def step(self) -> PushResult:
        step = self.event.step
        if step is None:
            raise PermanentError("step_completed without a step")
        times = step_times(step.data, self.config, self.zone)
        if times is None:
            return skipped("the step has no date: no calendar event")
        journey = self.event.journey_name or "Journey"
        values = {"summary": self.summary, "client": self.client_name, "journey": journey}
        body: dict[str, Any] = {
            "summary": self.config.title("step", **values, step=step.name),
            "description": f"{journey}: {step.name}",
            "status": "confirmed",
            "start": times[0],
            "end": times[1],
        }
        if isinstance(step.data.get("location"), str) and step.data["location"]:
            body["location"] = step.data["location"]
        # The step's own id keeps one event per step even if it completes twice.
        ref = step_event_id(self.event.journey_instance_id, step.id or self.key)
        return await self.put(ref, "step", body, {})
