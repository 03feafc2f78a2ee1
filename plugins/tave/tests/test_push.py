"""Pushing journey events to the VSCO Workspace sandbox over real HTTP."""

from __future__ import annotations

import pytest
from journeyhub.errors import PermanentError, RateLimited, ReauthRequired, RetryableError
from journeyhub.model import Known
from journeyhub.testing.sandbox import Fault


def only(items: list[dict]) -> dict:
    assert len(items) == 1, items
    return items[0]


async def test_journey_started_creates_contact_and_wedding_job(sandbox, push, new_event):
    result = await push(new_event())

    contact = only(sandbox.contacts)
    assert (contact["firstName"], contact["lastName"]) == ("Ada", "Lovelace")
    assert contact["email"] == "ada@example.com"
    assert contact["cellPhone"]["formatted"] == "+1 555 0100"
    assert contact["externalMappings"] == [
        {"id": "cl_001", "url": "https://journeyhub.invalid/journeyhub/client/cl_001"}
    ]
    job = only(sandbox.jobs)
    assert job["eventDate"] == "2026-06-20"
    assert job["guestCount"] == 120
    assert job["name"] == "Ada Lovelace wedding"
    assert job["jobTypeName"] == "Wedding"
    assert job["leadNotes"] == "Venue: Rose Barn, 1 Lane"
    assert [m["id"] for m in job["externalMappings"]] == ["ji_001"]
    link = only(sandbox.job_contacts)
    assert (link["jobId"], link["contactId"], link["client"]) == (job["id"], contact["id"], True)
    assert result.status == "delivered"
    assert result.external_ids == {
        "contact": contact["id"],
        "job": job["id"],
        "job_contact": link["id"],
    }
    assert "api_key" not in repr(result) and sandbox.api_key not in repr(result)


async def test_same_push_twice_makes_one_contact_and_one_job(sandbox, push, new_event):
    first = await push(new_event())
    second = await push(new_event())

    assert first.external_ids == second.external_ids
    assert len(sandbox.contacts) == len(sandbox.jobs) == len(sandbox.job_contacts) == 1
    assert sandbox.creates("address-book", "cl_001") == 1
    assert sandbox.creates("job", "ji_001") == 1


async def test_a_500_then_a_retry_gives_one_contact(sandbox, push, new_event):
    sandbox.faults.plan(Fault(status=500))
    with pytest.raises(RetryableError) as failed:
        await push(new_event())
    assert failed.value.vendor_status == 500

    await push(new_event())
    assert len(sandbox.contacts) == 1 and len(sandbox.jobs) == 1


@pytest.mark.parametrize(
    "lost", [("POST", "/address-book"), ("POST", "/job"), ("POST", "/job-contact")]
)
async def test_a_crash_after_the_vendor_committed_never_duplicates(sandbox, push, new_event, lost):
    # The vendor did the work but its answer never reached us: the retry must find it.
    sandbox.lose_response(*lost)
    with pytest.raises(RetryableError):
        await push(new_event())

    result = await push(new_event())
    assert len(sandbox.contacts) == len(sandbox.jobs) == len(sandbox.job_contacts) == 1
    assert sandbox.creates(lost[1].strip("/")) == 1
    assert result.external_ids["job"] == sandbox.jobs[0]["id"]


async def test_crash_on_contact_create_without_email_finds_it_among_recent(
    sandbox, push, new_event
):
    event = new_event(client={"id": "cl_noemail", "name": "Grace Hopper"})
    sandbox.lose_response("POST", "/address-book")
    with pytest.raises(RetryableError):
        await push(event)
    await push(event)
    assert sandbox.creates("address-book", "cl_noemail") == 1


async def test_studio_contact_the_pull_saw_with_the_same_email_is_adopted(
    sandbox, push, new_event, hub
):
    studio_made = sandbox.vendor_create(
        "address-book", kind="person", firstName="Ada", lastName="L.", email="ADA@example.com"
    )
    sandbox.vendor_create(
        "address-book", kind="person", firstName="Someone", email="not-ada@example.com"
    )
    hub.pulled_contact("cl_001", studio_made)

    result = await push(new_event())

    assert result.external_ids["contact"] == studio_made["id"]
    assert len(sandbox.contacts) == 2
    assert sandbox.record("address-book", studio_made["id"])["lastName"] == "Lovelace"
    adopted = next(r for r in result.records if r.kind == "contact")
    assert (adopted.vendor_id, adopted.our_id) == (studio_made["id"], "cl_001")


async def test_on_a_retry_a_studio_contact_with_the_same_email_is_adopted_by_lookup(
    sandbox, push, new_event
):
    studio_made = sandbox.vendor_create(
        "address-book", kind="person", firstName="Ada", lastName="L.", email="ADA@example.com"
    )
    sandbox.vendor_create(
        "address-book", kind="person", firstName="Someone", email="not-ada@example.com"
    )

    result = await push(new_event(), known=Known(attempt=2))

    assert result.external_ids["contact"] == studio_made["id"]
    assert len(sandbox.contacts) == 2
    assert sandbox.record("address-book", studio_made["id"])["lastName"] == "Lovelace"


async def test_429_is_rate_limited_with_retry_after(sandbox, push, new_event):
    sandbox.faults.plan(Fault(status=429, retry_after=7))
    with pytest.raises(RateLimited) as limited:
        await push(new_event())
    assert limited.value.retry_after == 7


async def test_sandbox_quota_answers_429_with_retry_after(sandbox, hook):
    sandbox.rate_limit = 2
    with pytest.raises(RateLimited) as limited:
        for _ in range(5):
            await hook("journeyhub_check_connection")
    assert limited.value.retry_after is not None and limited.value.retry_after >= 1


async def test_a_slow_vendor_is_a_retryable_timeout(sandbox, push, new_event, new_connection):
    sandbox.faults.plan(Fault(delay=1.0))
    connection = new_connection(sandbox, timeout_seconds=0.2)
    with pytest.raises(RetryableError, match="timed out"):
        await push(new_event(), connection=connection)


async def test_wrong_api_key_is_refused_without_the_key_in_the_message(sandbox, push, new_event):
    wrong = "sk_wrong_key_1234567890"
    with pytest.raises(ReauthRequired) as refused:
        await push(new_event(), credentials={"api_key": wrong})
    assert refused.value.vendor_status == 401
    assert wrong not in str(refused.value) and wrong not in repr(refused.value.args)
    assert not sandbox.contacts


async def test_step_completed_twice_with_the_same_key_makes_one_note(
    sandbox, push, new_event, new_task
):
    await push(new_event())
    step = new_event("step_completed", step={"name": "Contract signed", "type": "task"})

    first = await push(new_task(step, "tsk_step_1"))
    again = await push(new_task(step, "tsk_step_1"))
    other = await push(new_task(step, "tsk_step_2"))

    assert first.external_ids["note"] == again.external_ids["note"]
    assert other.external_ids["note"] != first.external_ids["note"]
    notes = sandbox.notes
    assert len(notes) == 2
    assert {n["jobId"] for n in notes} == {sandbox.jobs[0]["id"]}
    assert "Contract signed" in notes[0]["contentHtml"]
    assert sandbox.creates("note") == 2  # the Note schema has no externalMappings to send


async def test_step_note_lost_answer_is_not_duplicated(sandbox, push, new_event, new_task):
    await push(new_event())
    step = new_task(new_event("step_completed", step={"name": "Call", "type": "task"}), "tsk_s")
    sandbox.lose_response("POST", "/note")
    with pytest.raises(RetryableError):
        await push(step)
    await push(step)
    assert len(sandbox.notes) == 1


async def test_step_completed_before_journey_started_still_lands_on_one_job(
    sandbox, push, new_event
):
    await push(new_event("step_completed", step={"name": "Call", "type": "task"}))
    await push(new_event())
    assert len(sandbox.jobs) == len(sandbox.contacts) == len(sandbox.notes) == 1


@pytest.mark.parametrize(
    ("event_type", "status"),
    [
        ("journey_completed", "Completed"),
        ("journey_paused", "Paused"),
        ("journey_failed", "Failed"),
    ],
)
async def test_status_events_set_the_job_lead_status(sandbox, push, new_event, event_type, status):
    await push(new_event())
    result = await push(new_event(event_type))
    assert result.status == "delivered"
    assert only(sandbox.jobs)["leadStatusName"] == status


async def test_status_event_skipped_when_not_configured(sandbox, push, new_event, new_connection):
    connection = new_connection(sandbox, status_paused=None)
    await push(new_event(), connection=connection)
    result = await push(new_event("journey_paused"), connection=connection)
    assert result.status == "skipped"
    assert only(sandbox.jobs)["leadStatusId"] is None


async def test_unknown_lead_status_is_permanent(sandbox, push, new_event, new_connection):
    connection = new_connection(sandbox, status_completed="Archived forever")
    with pytest.raises(PermanentError, match="Archived forever"):
        await push(new_event("journey_completed"), connection=connection)


async def test_client_updated_changes_contact_fields_and_wedding_date(sandbox, push, new_event):
    await push(new_event())
    other_job = sandbox.vendor_create("job", name="Studio's own shoot", eventDate="2026-01-01")
    contact_id = sandbox.contacts[0]["id"]
    sandbox.vendor_create("job-contact", jobId=other_job["id"], contactId=contact_id, client=True)

    updated = new_event(
        "client_updated",
        client={
            "id": "cl_001",
            "name": "Ada King",
            "email": "ada@example.com",
            "phone": "+44 20 7946 0000",
        },
        wedding={"date": "2026-09-12"},
    )
    result = await push(updated)

    contact = only(sandbox.contacts)
    assert (contact["firstName"], contact["lastName"]) == ("Ada", "King")
    assert contact["cellPhone"]["e164"] == "+442079460000"
    ours = next(j for j in sandbox.jobs if j["id"] == result.external_ids["job"])
    assert ours["eventDate"] == "2026-09-12"
    # A job the studio made itself is not ours to move.
    assert sandbox.record("job", other_job["id"])["eventDate"] == "2026-01-01"


async def test_client_with_a_new_email_is_found_through_the_journey_job(sandbox, push, new_event):
    sandbox.freeze()
    await push(new_event())
    for n in range(101):  # push our contact out of the "recently modified" page
        sandbox.advance(1)
        sandbox.vendor_create("address-book", kind="person", firstName=f"P{n}")
    moved = new_event(
        "client_updated",
        client={"id": "cl_001", "name": "Ada Lovelace", "email": "ada@new.example"},
    )
    # A retry the hub knows nothing for: only the lookups can find the contact.
    await push(moved, known=Known(attempt=2))

    assert sandbox.creates("address-book", "cl_001") == 1
    ours = [c for c in sandbox.contacts if c["externalMappings"]]
    assert [c["email"] for c in ours] == ["ada@new.example"]


async def test_other_event_types_are_skipped(sandbox, push, new_event):
    result = await push(new_event("email_requested"))
    assert result.status == "skipped"
    assert not sandbox.contacts


async def test_missing_job_type_is_permanent(sandbox, push, new_event, new_connection):
    connection = new_connection(sandbox, job_type="Bar mitzvah")
    with pytest.raises(PermanentError, match="Bar mitzvah"):
        await push(new_event(), connection=connection)
    assert not sandbox.jobs
