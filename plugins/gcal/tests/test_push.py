"""Push: upserts under deterministic ids, one event however often a push is repeated."""

from __future__ import annotations

import asyncio
import re

import pytest
from journeyhub.errors import (
    AuthExpired,
    OutcomeUnknown,
    PermanentError,
    RateLimited,
    RetryableError,
)
from journeyhub.model import Known
from journeyhub.testing.sandbox import Fault
from journeyhub_gcal import events as ev
from journeyhub_gcal.client import DEFAULT_RATE_BACKOFF_SECONDS
from journeyhub_gcal.sandbox import USER, google_error

WEDDING = ev.wedding_event_id("ji_001")


def test_event_ids_follow_googles_rule_and_are_deterministic():
    pattern = re.compile(r"^[0-9a-v]{5,1024}$")
    assert pattern.match(WEDDING)
    assert ev.wedding_event_id("ji_001") == WEDDING
    assert ev.wedding_event_id("ji_002") != WEDDING
    step = ev.step_event_id("ji_001", "step_1")
    assert pattern.match(step) and step not in (WEDDING, ev.step_event_id("ji_001", "step_2"))


async def test_journey_started_makes_an_all_day_wedding_event(push, new_event, sandbox):
    result = await push(new_event())
    assert result.status == "delivered"
    assert result.external_ids == {"event": WEDDING}
    event = sandbox.event(WEDDING)
    assert event["summary"] == "Ada Lovelace wedding"
    assert event["location"] == "Rose Barn, 1 Lane"
    assert event["start"] == {"date": "2026-06-20"}
    assert event["end"] == {"date": "2026-06-21"}  # exclusive
    assert event["status"] == "confirmed"
    private = event["extendedProperties"]["private"]
    assert private[ev.P_CLIENT] == "cl_001"
    assert private[ev.P_INSTANCE] == "ji_001"
    assert private[ev.P_TASK] == "tsk_evt_journey_started"
    assert private[ev.P_FINGERPRINT] == ev.fingerprint(event, private[ev.P_FIELDS].split(","))


async def test_a_repeated_push_updates_the_one_event(push, new_event, sandbox):
    await push(new_event())
    moved = new_event("client_updated", wedding={"date": "2026-07-04"})
    result = await push(moved)
    await push(moved)  # a retry of the same delivery
    assert result.detail == "updated the wedding event"
    assert [e["id"] for e in sandbox.events()] == [WEDDING]
    assert sandbox.inserts[WEDDING] == 1
    assert sandbox.event(WEDDING)["start"] == {"date": "2026-07-04"}


async def test_an_insert_that_finds_the_id_taken_becomes_an_update(push, new_event, sandbox):
    await push(new_event())
    # The patch misses (as if the event were made meanwhile by a concurrent push): the insert
    # answers 409 duplicate, and the push patches again.
    sandbox.faults.plan(Fault(status=404, body=google_error(404, "notFound", "Not Found")))
    result = await push(new_event("client_updated", client={"id": "cl_001", "name": "Ada King"}))
    assert result.status == "delivered"
    assert sandbox.insert_attempts[WEDDING] == 2
    assert sandbox.inserts[WEDDING] == 1
    assert sandbox.event(WEDDING)["summary"] == "Ada King wedding"


async def test_an_insert_whose_answer_was_lost_is_not_repeated(push, new_event, sandbox):
    sandbox.lose_response("POST", "/events")
    with pytest.raises(RetryableError):
        await push(new_event())
    result = await push(new_event())  # the kernel's retry
    assert result.detail == "updated the wedding event"
    assert sandbox.inserts[WEDDING] == 1
    assert len(sandbox.events()) == 1


async def test_an_insert_that_timed_out_is_retried_into_one_event(
    push, new_event, sandbox, new_connection
):
    # The patch misses (404) and Google does not answer the insert in time: the kernel's
    # OutcomeUnknown reaches the worker as it is (it may have been carried out), and the
    # retry, patching first, leaves one event.
    conn = new_connection(sandbox, timeout_seconds=0.3)
    sandbox.faults.plan(Fault(), Fault(delay=0.8))
    with pytest.raises(OutcomeUnknown, match="timed out") as caught:
        await push(new_event(), connection=conn)
    assert isinstance(caught.value, RetryableError)
    assert sandbox.insert_attempts[WEDDING] <= 1
    await asyncio.sleep(0.8)  # the abandoned call is over at the sandbox
    result = await push(new_event(), connection=conn)  # the kernel's retry
    assert result.status == "delivered"
    assert sandbox.inserts[WEDDING] == 1
    assert [e["id"] for e in sandbox.events()] == [WEDDING]


async def test_a_timed_wedding_uses_the_time_zone_and_duration(
    push, new_event, new_task, sandbox, connection, new_connection
):
    conn = new_connection(sandbox, time_zone="Europe/Paris", wedding_event_duration_hours=6)
    task = new_task(new_event())
    task.mapped["date"] = "2026-06-20T15:30:00"
    await push(task, connection=conn)
    event = sandbox.event(WEDDING)
    assert event["start"] == {"dateTime": "2026-06-20T15:30:00+02:00", "timeZone": "Europe/Paris"}
    assert event["end"]["dateTime"] == "2026-06-20T21:30:00+02:00"


async def test_a_dated_step_makes_a_timeline_event(push, new_event, sandbox):
    step = {
        "id": "st_shoot",
        "name": "Engagement shoot",
        "type": "meeting",
        "data": {
            "date": "2026-04-11",
            "start_time": "10:00",
            "duration_minutes": 90,
            "location": "City park",
        },
    }
    result = await push(new_event("step_completed", step=step))
    event = sandbox.event(result.external_ids["event"])
    assert result.external_ids["event"] == ev.step_event_id("ji_001", "st_shoot")
    assert event["summary"] == "Engagement shoot: Ada Lovelace"
    assert event["start"] == {"dateTime": "2026-04-11T10:00:00Z", "timeZone": "UTC"}
    assert event["end"]["dateTime"] == "2026-04-11T11:30:00Z"
    assert event["location"] == "City park"
    assert event["extendedProperties"]["private"][ev.P_KIND] == "step"


async def test_a_step_without_a_date_is_skipped(push, new_event, sandbox):
    step = {"name": "Send contract", "type": "email"}
    result = await push(new_event("step_completed", step=step))
    assert result.status == "skipped"
    assert sandbox.events() == []


async def test_outcomes_change_the_wedding_event_status_and_title(push, new_event, sandbox):
    await push(new_event())
    await push(new_event("journey_paused"))
    assert sandbox.event(WEDDING)["status"] == "tentative"
    assert sandbox.event(WEDDING)["summary"] == "Ada Lovelace wedding (journey paused)"
    await push(new_event("journey_failed"))
    # Failed is not cancelled: that would delete the wedding from the calendar.
    assert sandbox.event(WEDDING)["status"] == "tentative"
    assert sandbox.event(WEDDING)["summary"] == "Ada Lovelace wedding (journey stopped)"
    await push(new_event("journey_completed"))
    assert sandbox.event(WEDDING)["status"] == "confirmed"
    assert sandbox.event(WEDDING)["summary"] == "Ada Lovelace wedding"
    assert sandbox.inserts[WEDDING] == 1


async def test_an_outcome_without_event_or_date_is_skipped(push, new_event, sandbox):
    result = await push(new_event("journey_completed", wedding=None))
    assert result.status == "skipped"
    assert sandbox.events() == []


async def test_what_the_user_added_survives_a_push(push, new_event, sandbox):
    await push(new_event())
    sandbox.user_edit(
        WEDDING,
        description="Bring the second camera",
        extendedProperties={"private": {"mine": "x"}},
    )
    await push(new_event("client_updated"))
    event = sandbox.event(WEDDING)
    assert event["description"] == "Bring the second camera"
    assert event["extendedProperties"]["private"]["mine"] == "x"


async def test_errors_are_classified(push, new_event, sandbox):
    sandbox.faults.plan(
        Fault(status=401, body=google_error(401, "authError", "Invalid Credentials"))
    )
    with pytest.raises(AuthExpired):
        await push(new_event())
    sandbox.rate_limit = 0  # every call over the per-user quota: 403 rateLimitExceeded
    with pytest.raises(RateLimited) as caught:
        await push(new_event())
    assert caught.value.retry_after == DEFAULT_RATE_BACKOFF_SECONDS
    assert caught.value.vendor_status == 403
    sandbox.rate_limit = None
    sandbox.faults.plan(
        Fault(
            status=429,
            retry_after=7,
            body=google_error(429, "rateLimitExceeded", "Rate Limit Exceeded", "usageLimits"),
        )
    )
    with pytest.raises(RateLimited) as caught:
        await push(new_event())
    assert caught.value.retry_after == 7
    sandbox.faults.plan(Fault(status=503, body=google_error(503, "backendError", "Backend Error")))
    with pytest.raises(RetryableError) as retry:
        await push(new_event())
    assert not isinstance(retry.value, PermanentError)
    sandbox.faults.plan(
        Fault(
            status=403,
            body=google_error(
                403, "requiredAccessLevel", "You need to have writer access to this calendar."
            ),
        )
    )
    with pytest.raises(PermanentError, match="writer access"):
        await push(new_event())
    assert sandbox.events() == []


async def test_an_unknown_calendar_is_a_permanent_error(push, new_event, sandbox, new_connection):
    conn = new_connection(sandbox, calendar_id="nobody@example.com")
    with pytest.raises(PermanentError) as caught:
        await push(new_event(), connection=conn)
    assert caught.value.vendor_status == 404
    assert sandbox.events() == []


async def test_a_user_deleted_wedding_event_is_restored_by_the_next_push(push, new_event, sandbox):
    await push(new_event())
    sandbox.user_delete(WEDDING)
    await push(new_event())
    assert sandbox.event(WEDDING)["status"] == "confirmed"
    assert sandbox.inserts[WEDDING] == 1


async def test_triggers_are_not_pushed(push, new_event, new_task, sandbox):
    from journeyhub.model import DeliveryTask

    task = new_task(new_event())
    as_trigger = DeliveryTask(
        **{
            **{f: getattr(task, f) for f in task.__struct_fields__},
            "kind": "trigger",
            "event": None,
        }
    )
    result = await push(as_trigger)
    assert result.status == "skipped"
    assert not [call for call in sandbox.requests if "/calendar/" in call]


CALENDAR_GET = "GET /calendar/v3/calendars/primary"
SHOOT = {"id": "st_shoot", "name": "Shoot", "type": "meeting"}


async def test_timed_events_are_in_the_calendars_own_time_zone(push, new_event, sandbox):
    """A London calendar in summer: a 10:00 step is at 10:00 BST (09:00 UTC), not shifted.
    The zone is read from the calendar once per connection."""
    sandbox.calendars[USER]["timeZone"] = "Europe/London"
    data = {"date": "2026-07-10", "start_time": "10:00"}
    result = await push(new_event("step_completed", step={**SHOOT, "data": data}))
    event = sandbox.event(result.external_ids["event"])
    assert event["start"] == {"dateTime": "2026-07-10T10:00:00+01:00", "timeZone": "Europe/London"}
    await push(new_event("step_completed", step={**SHOOT, "id": "st_two", "data": data}))
    assert sandbox.requests[CALENDAR_GET] == 1


async def test_a_configured_time_zone_overrides_the_calendars(
    push, new_event, sandbox, new_connection
):
    sandbox.calendars[USER]["timeZone"] = "Europe/London"
    conn = new_connection(sandbox, time_zone="America/New_York")
    data = {"date": "2026-07-10", "start_time": "10:00"}
    result = await push(new_event("step_completed", step={**SHOOT, "data": data}), connection=conn)
    start = sandbox.event(result.external_ids["event"])["start"]
    assert start == {"dateTime": "2026-07-10T10:00:00-04:00", "timeZone": "America/New_York"}
    assert sandbox.requests[CALENDAR_GET] == 0


async def test_an_id_google_will_not_give_back_is_recreated_once_under_a_new_id(
    push, new_event, sandbox
):
    """Deleted, then purged by Google: patch 404, insert 409 duplicate, patch 404. The event is
    made again under its successor id, and the id map learns it."""
    await push(new_event())
    sandbox.user_delete(WEDDING)
    sandbox.purge(WEDDING)
    result = await push(new_event("client_updated", wedding={"date": "2026-07-04"}))
    again = ev.successor_id(WEDDING)
    assert result.status == "delivered" and result.external_ids == {"event": again}
    assert result.detail == "recreated the wedding event"
    assert sandbox.event(again)["start"] == {"date": "2026-07-04"}
    assert {(r.vendor_id, r.deleted) for r in result.records} == {(WEDDING, True), (again, False)}
    assert all(
        (r.kind, r.ref, r.our_id) == ("calendar_event", WEDDING, "cl_001") for r in result.records
    )
    # The next push knows the new id from the hub's map: one patch, no insert.
    calls = sum(sandbox.requests.values())
    known = Known().learn(result.records)
    moved = await push(new_event("client_updated", wedding={"date": "2026-07-05"}), known=known)
    assert moved.external_ids == {"event": again} and moved.detail == "updated the wedding event"
    assert sum(sandbox.requests.values()) == calls + 1
    assert sandbox.event(again)["start"] == {"date": "2026-07-05"}
    assert sandbox.inserts[again] == 1 and sandbox.insert_attempts[WEDDING] == 2


async def test_an_id_and_its_successor_both_gone_fail_once_not_in_a_loop(push, new_event, sandbox):
    for event_id in (WEDDING, ev.successor_id(WEDDING)):
        sandbox.purge(event_id)
    with pytest.raises(PermanentError, match="as deleted"):
        await push(new_event())
    assert sandbox.insert_attempts[WEDDING] == 1


async def test_the_couple_is_invited_when_the_connection_asks(
    push, new_event, sandbox, new_connection
):
    await push(new_event())
    assert "attendees" not in sandbox.event(WEDDING) and sandbox.guest_emails == []
    conn = new_connection(sandbox, invite_client=True)
    await push(new_event("client_updated"), connection=conn)
    couple = {"email": "ada@example.com", "displayName": "Ada Lovelace"}
    assert sandbox.event(WEDDING)["attendees"] == [couple]
    assert sandbox.guest_emails == [(WEDDING, "ada@example.com")]  # sendUpdates=all
    planner = {"email": "planner@example.com"}
    sandbox.user_edit(WEDDING, attendees=[couple, planner])
    renamed = {"id": "cl_001", "name": "Ada King", "email": "ada.king@example.com"}
    await push(new_event("client_updated", client=renamed), connection=conn)
    # The studio's guest stays; the couple's new address replaces the old one.
    emails = [a["email"] for a in sandbox.event(WEDDING)["attendees"]]
    assert emails == ["planner@example.com", "ada.king@example.com"]
    mailed = len(sandbox.guest_emails)
    await push(new_event("journey_paused"), connection=conn)  # the studio's own state: no mail
    assert len(sandbox.guest_emails) == mailed


async def test_a_later_events_old_snapshot_leaves_the_wedding_alone(push, new_event, sandbox):
    """Only journey_started and client_updated set the wedding's date, place and title: a
    journey_completed carrying the old date and name does not undo the studio's change."""
    await push(new_event())
    changed = {
        "client": {"id": "cl_001", "name": "Ada King", "email": "ada@example.com"},
        "wedding": {"date": "2026-06-19", "venue": {"name": "Oak Hall", "address": "2 Road"}},
    }
    await push(new_event("client_updated", **changed))
    result = await push(new_event("journey_completed"))  # the snapshot: 20 June, Rose Barn
    assert result.status == "delivered"
    event = sandbox.event(WEDDING)
    assert event["start"] == {"date": "2026-06-19"}
    assert event["location"] == "Oak Hall, 2 Road"
    assert event["summary"] == "Ada King wedding"
    assert event["status"] == "confirmed"
    private = event["extendedProperties"]["private"]
    assert private[ev.P_FINGERPRINT] == ev.fingerprint(event, private[ev.P_FIELDS].split(","))
