"""Journey events out to Google Calendar: the wedding-day event and a timeline event per dated
step, each upserted under a deterministic id.

Upsert = ``events.patch`` by id (only our fields change; what the user added stays); on 404,
``events.insert`` with that id; an insert answered 409 (the id exists: a concurrent push, or an
earlier insert whose answer was lost) is followed by the patch again. So any number of retries
leave one event per id.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from journeyhub.errors import PermanentError, RetryableError
from journeyhub.model import JourneyEvent, PushResult

from journeyhub_gcal import events as ev
from journeyhub_gcal.client import GcalClient
from journeyhub_gcal.config import GcalConfig

WEDDING_EVENTS = ("journey_started", "client_updated")
OUTCOME_EVENTS = ("journey_completed", "journey_paused", "journey_failed")
PUSH_EVENT_TYPES = (*WEDDING_EVENTS, "step_completed", *OUTCOME_EVENTS)


async def upsert(
    cal: GcalClient, event_id: str, body: dict[str, Any]
) -> tuple[dict[str, Any] | None, str]:
    """``(event, "updated" | "created")``, or ``(None, "missing")`` when the event does not
    exist and ``body`` has no start/end to create it with."""
    answer = await cal.patch_event(event_id, body)
    if answer.status == 410:
        raise PermanentError(
            f"Google Calendar says event {event_id} is gone for good; its id cannot be reused"
        )
    if answer.status < 300:
        return answer.body, "updated"
    if "start" not in body:
        return None, "missing"
    created = await cal.insert_event({**ev.without_nulls(body), "id": event_id})
    if created.status != 409:
        return created.body, "created"
    again = await cal.patch_event(event_id, body)
    if again.status >= 300:  # 409 then 404: the event is moving under us; try again later
        raise RetryableError(f"Google Calendar answered 409 then {again.status} for {event_id}")
    return again.body, "updated"


class Pusher:
    def __init__(
        self,
        cal: GcalClient,
        config: GcalConfig,
        event: JourneyEvent,
        mapped: dict[str, Any],
        key: str,
    ) -> None:
        self.cal = cal
        self.config = config
        self.event = event
        self.mapped = mapped
        self.key = key

    @property
    def client_name(self) -> str:
        client = self.event.client
        return client.name or client.email or "Client"

    @property
    def summary(self) -> str:
        """The wedding event's title as mapped (``summary``)."""
        return str(self.mapped.get("summary") or f"{self.client_name} wedding")

    def private(self, kind: str) -> dict[str, str]:
        return {
            ev.P_CLIENT: self.event.client.id,
            ev.P_INSTANCE: self.event.journey_instance_id,
            ev.P_TASK: self.key,
            ev.P_KIND: kind,
        }

    def result(self, event_id: str, how: str, kind: str) -> PushResult:
        return PushResult(
            vendor_status=self.cal.last_status,
            external_ids={"event": event_id},
            detail=f"{how} the {kind} event",
        )

    # --- the wedding-day event -----------------------------------------------------------------

    def wedding_body(self, summary: str, status: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {"summary": summary}
        if status:
            body["status"] = status
        for name in ("location", "description"):
            value = self.mapped.get(name)
            if value not in (None, ""):  # not mapped: leave what the user wrote alone
                body[name] = str(value)
        wedding = self.event.wedding
        raw = self.mapped.get("date") or (wedding.date if wedding else None)
        when = ev.parse_when(raw, self.config.zone)
        if isinstance(when, datetime):
            length = timedelta(hours=self.config.wedding_event_duration_hours)
            body["start"], body["end"] = ev.timed(when, when + length, self.config.time_zone)
        elif isinstance(when, date):
            body["start"], body["end"] = ev.all_day(when)
        return ev.stamp(body, self.private("wedding"))

    async def wedding(self) -> PushResult:
        # journey_started confirms the event; client_updated leaves its status alone.
        status = "confirmed" if self.event.type == "journey_started" else None
        body = self.wedding_body(self.summary, status)
        if "start" not in body:
            return PushResult(
                status="skipped", detail="no wedding date: nothing to put on the calendar"
            )
        event_id = ev.wedding_event_id(self.event.journey_instance_id)
        _, how = await upsert(self.cal, event_id, body)
        return self.result(event_id, how, "wedding")

    async def outcome(self) -> PushResult:
        template, status = self.config.outcome(self.event.type)
        title = self.config.title(
            template,
            summary=self.summary,
            client=self.client_name,
            journey=self.event.journey_name or "",
            step="",
        )
        body = self.wedding_body(title, status)
        event_id = ev.wedding_event_id(self.event.journey_instance_id)
        _, how = await upsert(self.cal, event_id, body)
        if how == "missing":
            return PushResult(
                status="skipped",
                detail="no wedding event and no wedding date: nothing to update",
            )
        return self.result(event_id, how, "wedding")

    # --- timeline events ------------------------------------------------------------------------

    def step_times(self) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """Start/end from the step's data: ``start`` or ``date`` (a date or an ISO date-time),
        optional ``start_time`` (HH:MM), ``end``, ``duration_minutes``."""
        step = self.event.step
        data = step.data if step else {}
        zone = self.config.zone
        when = ev.parse_when(data.get("start") or data.get("date"), zone)
        clock = ev.parse_clock(data.get("start_time") or data.get("time"))
        if isinstance(when, date) and not isinstance(when, datetime) and clock is not None:
            when = datetime.combine(when, clock, tzinfo=zone)
        end = ev.parse_when(data.get("end"), zone)
        if isinstance(when, datetime):
            minutes = data.get("duration_minutes")
            if not isinstance(minutes, int | float) or isinstance(minutes, bool) or minutes <= 0:
                minutes = self.config.step_event_duration_minutes
            if not isinstance(end, datetime) or end <= when:
                end = when + timedelta(minutes=float(minutes))
            return ev.timed(when, end, self.config.time_zone)
        if isinstance(when, date):
            last = end if isinstance(end, date) and not isinstance(end, datetime) else None
            return ev.all_day(when, last)
        return None

    async def step(self) -> PushResult:
        step = self.event.step
        if step is None:
            raise PermanentError("step_completed without a step")
        times = self.step_times()
        if times is None:
            return PushResult(status="skipped", detail="the step has no date: no calendar event")
        journey = self.event.journey_name or "Journey"
        body: dict[str, Any] = {
            "summary": self.config.title(
                "step_title_template",
                summary=self.summary,
                client=self.client_name,
                journey=journey,
                step=step.name,
            ),
            "description": f"{journey}: {step.name}",
            "status": "confirmed",
            "start": times[0],
            "end": times[1],
        }
        if isinstance(step.data.get("location"), str) and step.data["location"]:
            body["location"] = step.data["location"]
        # The step's own id keeps one event per step even if it completes twice.
        step_key = step.id or self.key
        event_id = ev.step_event_id(self.event.journey_instance_id, step_key)
        _, how = await upsert(self.cal, event_id, ev.stamp(body, self.private("step")))
        return self.result(event_id, how, "step")


async def push(
    cal: GcalClient, config: GcalConfig, event: JourneyEvent, mapped: dict[str, Any], key: str
) -> PushResult:
    pusher = Pusher(cal, config, event, mapped, key)
    if event.type in WEDDING_EVENTS:
        return await pusher.wedding()
    if event.type in OUTCOME_EVENTS:
        return await pusher.outcome()
    if event.type == "step_completed":
        return await pusher.step()
    return PushResult(status="skipped", detail=f"{event.type} is not pushed to Google Calendar")
