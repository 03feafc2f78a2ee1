"""Pushing with what the hub knows (``Known``): writes by id, lookups only where a record may
exist unknown to the hub, and the calls each event costs, counted at the sandbox over HTTP."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import pytest_asyncio
from journeyhub.errors import PermanentError, RetryableError
from journeyhub.model import Connection, Known
from journeyhub.testing.sandbox import Fault
from journeyhub.vendor_http import VendorHttp
from journeyhub_tave import client as api
from journeyhub_tave.client import read_record
from journeyhub_tave.sandbox import PREFIX

MAPS = api.TaveConfig()  # how our ids are written into externalMappings
RENAMED = {"id": "cl_001", "name": "Ada King", "email": "ada@example.com", "phone": "+1 555 0100"}


LATE_TIMEOUT = 1.0  # this module's connection gives up on an answer after this long


class AnswerTooLate:
    """An armed call is carried out at the sandbox at once, and its answer comes after our
    timeout: the vendor committed, and we do not know it."""

    def __init__(self, sandbox: Any) -> None:
        self.sandbox = sandbox

    def arm(self, method: str, path: str) -> None:
        self.sandbox.answer_late(method, path, seconds=LATE_TIMEOUT * 2)


@pytest.fixture
def late(sandbox: Any) -> AnswerTooLate:
    return AnswerTooLate(sandbox)


@pytest.fixture
def connection(sandbox: Any, new_connection: Any) -> Connection:
    return new_connection(sandbox, timeout_seconds=LATE_TIMEOUT)


@pytest_asyncio.fixture
async def warm(sandbox: Any, http: VendorHttp) -> None:
    """The studio's job types and lead statuses read once, as the 5-minute cache keeps them,
    so the counts below are the events' own calls."""
    api._NAMES.clear()
    tave = api.TaveClient(http, sandbox.api_key, sandbox.api_base)
    await tave.setting(api.JOB_TYPES, "Wedding", "job_type")
    await tave.setting(api.LEAD_STATUSES, "Completed", "status_completed")


def calls(sandbox: Any, before: Counter[str]) -> Counter[str]:
    """The sandbox calls since ``before`` as ``METHOD /resource`` (``/{id}`` for one record)."""
    out: Counter[str] = Counter()
    for key, count in (Counter(sandbox.requests) - before).items():
        method, path = key.split(" ", 1)
        parts = path.removeprefix(PREFIX + "/").split("/")
        out[f"{method} /{parts[0]}" + ("/{id}" if len(parts) > 1 else "")] += count
    return out


def reads(counted: Counter[str]) -> int:
    return sum(n for call, n in counted.items() if call.startswith("GET "))


def synced(result_or_error: Any, kind: str) -> list[Any]:
    return [r for r in result_or_error.records if r.kind == kind]


async def measure(sandbox: Any, push: Any, item: Any, **kwargs: Any) -> tuple[Any, Counter[str]]:
    before = Counter(sandbox.requests)
    result = await push(item, **kwargs)
    return result, calls(sandbox, before)


STEP = {"name": "Contract signed", "type": "task"}


# --- calls per event ------------------------------------------------------------------------------


async def test_calls_per_event_on_a_first_attempt_with_what_the_hub_knows(
    sandbox, push, new_event, new_task, warm
):
    """Each event is a new task (attempt 1) and the hub knows what the earlier ones did."""
    _, started = await measure(sandbox, push, new_event())
    assert started == {"POST /address-book": 1, "POST /job": 1, "POST /job-contact": 1}

    _, step = await measure(sandbox, push, new_task(new_event("step_completed", step=STEP)))
    assert step == {"POST /note": 1}

    changed = new_event("client_updated", client=RENAMED, wedding={"date": "2026-09-12"})
    _, updated = await measure(sandbox, push, new_task(changed, "tsk_update_1"))
    assert updated == {"PUT /address-book/{id}": 1, "PUT /job/{id}": 1}

    # The same values again: the hub knows them, so nothing is written.
    _, unchanged = await measure(sandbox, push, new_task(changed, "tsk_update_2"))
    assert unchanged == {}

    _, completed = await measure(sandbox, push, new_event("journey_completed"))
    assert completed == {"PUT /job/{id}": 1}

    # A second journey of the same client: its contact is known and unchanged.
    second = new_event(
        "journey_started",
        id="evt_second",
        journey_instance_id="ji_002",
        client=RENAMED,
        wedding={"date": "2026-09-12"},
    )
    _, again = await measure(sandbox, push, second)
    assert again == {"POST /job": 1, "POST /job-contact": 1}

    assert len(sandbox.contacts) == 1 and len(sandbox.jobs) == 2 and len(sandbox.notes) == 1
    job = next(j for j in sandbox.jobs if MAPS.has(j, "ji_001"))
    assert (job["eventDate"], job["leadStatusName"]) == ("2026-09-12", "Completed")
    assert sandbox.contacts[0]["lastName"] == "King"


async def test_the_bench_mix_costs_at_most_2_5_calls_per_event(sandbox, push, new_event, new_task):
    """50 % journey_started (new clients), 35 % step_completed, 15 % client_updated (name and
    wedding date), the studio settings read cold once."""
    api._NAMES.clear()
    before = Counter(sandbox.requests)
    events = []
    for n in range(10):
        client = {"id": f"cl_{n}", "name": f"Client {n}", "email": f"c{n}@example.com"}
        events.append(new_event(id=f"evt_start_{n}", journey_instance_id=f"ji_{n}", client=client))
    for n in range(7):
        events.append(
            new_event(
                "step_completed",
                id=f"evt_step_{n}",
                journey_instance_id=f"ji_{n}",
                client={"id": f"cl_{n}"},
                step=STEP,
            )
        )
    for n in range(3):
        renamed = {"id": f"cl_{n}", "name": f"Renamed {n}", "email": f"c{n}@example.com"}
        events.append(
            new_event(
                "client_updated",
                id=f"evt_update_{n}",
                journey_instance_id=f"ji_{n}",
                client=renamed,
                wedding={"date": "2027-05-01"},
            )
        )
    for event in events:
        await push(new_task(event))

    total = sum(calls(sandbox, before).values())
    # 10 x 3 + 7 x 1 + 3 x 2, and the job type list once: 44 calls for 20 events.
    assert total / len(events) <= 2.5, (total, calls(sandbox, before))
    assert total == 44, calls(sandbox, before)
    assert len(sandbox.contacts) == len(sandbox.jobs) == len(sandbox.job_contacts) == 10


@pytest.mark.parametrize(
    ("event_type", "expected"),
    [
        ("journey_started", {"POST /address-book": 1, "POST /job": 1, "POST /job-contact": 1}),
        (
            "step_completed",
            {"POST /address-book": 1, "POST /job": 1, "POST /job-contact": 1, "POST /note": 1},
        ),
        ("journey_completed", {"POST /address-book": 1, "POST /job": 1, "POST /job-contact": 1}),
        ("client_updated", {"POST /address-book": 1}),
    ],
)
async def test_an_empty_known_on_a_first_attempt_makes_no_lookup(
    sandbox, push, new_event, warm, event_type, expected
):
    # A lookup by email would find (and adopt) this contact; a first attempt does not look.
    sandbox.vendor_create("address-book", kind="person", firstName="Ada", email="ada@example.com")
    event = new_event(event_type, step=STEP if event_type == "step_completed" else None)

    result, counted = await measure(sandbox, push, event, known=Known())

    assert counted == expected
    assert reads(counted) == 0
    ours = [c for c in sandbox.contacts if MAPS.has(c, "cl_001")]
    assert len(ours) == 1 and result.external_ids["contact"] == ours[0]["id"]
    if event_type == "journey_completed":
        # A job the status event makes is made with the status: no PUT after it.
        assert sandbox.jobs[0]["leadStatusName"] == "Completed"


async def test_an_event_that_overtook_its_journey_started_lands_on_one_job(
    sandbox, push, new_event, new_task, warm
):
    await push(new_event())  # the hub knows the client's contact from its first journey
    overtaking = new_event("step_completed", journey_instance_id="ji_002", step=STEP)

    result, counted = await measure(sandbox, push, new_task(overtaking))
    assert counted == {"POST /job": 1, "POST /job-contact": 1, "POST /note": 1}
    job = synced(result, "job")[0]
    assert job.ref == "ji_002"

    # Its journey_started, when it comes: everything is known, nothing is written.
    started = new_event(id="evt_started_2", journey_instance_id="ji_002")
    _, counted = await measure(sandbox, push, started)
    assert counted == {}
    assert len(sandbox.contacts) == 1 and len(sandbox.jobs) == 2
    assert {link["jobId"] for link in sandbox.job_contacts} == {j["id"] for j in sandbox.jobs}
    assert sandbox.notes[0]["jobId"] == job.vendor_id


async def test_a_retry_that_finds_the_job_reports_the_contact_and_link_made_before(
    sandbox, push, hub, new_event, new_task, warm
):
    """A step overtook its journey_started, made the contact, the job and their link, and its
    outcome was lost (the worker died). Its retry finds the job, and reports the contact and
    the link too: the journey_started after it, a first attempt that trusts the map, then
    makes no second link."""
    step = new_task(new_event("step_completed", step=STEP), "tsk_step_lost")
    await push(step)
    hub.links.clear()  # the outcome was never recorded

    retry, counted = await measure(sandbox, push, step)
    assert {r.kind for r in retry.records} >= {"contact", "job", "job_contact", "note"}
    assert "POST /job-contact" not in counted and "POST /address-book" not in counted

    _, counted = await measure(sandbox, push, new_event(id="evt_started_late"))
    assert not [call for call in counted if call.startswith("POST")], counted
    assert len(sandbox.contacts) == len(sandbox.jobs) == len(sandbox.job_contacts) == 1


# --- what is reported -----------------------------------------------------------------------------


async def test_records_are_reported_in_the_pulls_fields_with_their_refs(
    sandbox, push, new_event, new_task, warm
):
    started = await push(new_event())
    contact, job, link = sandbox.contacts[0], sandbox.jobs[0], sandbox.job_contacts[0]

    def pulled(record: Any) -> dict[str, Any]:
        return {k: v for k, v in record.fields.items() if v is not None}

    [c] = synced(started, "contact")
    assert (c.vendor_id, c.our_id, c.email, c.ref) == (
        contact["id"],
        "cl_001",
        "ada@example.com",
        None,
    )
    assert c.fields == pulled(read_record("contact", contact, MAPS))
    [j] = synced(started, "job")
    assert (j.vendor_id, j.our_id, j.ref) == (job["id"], "cl_001", "ji_001")
    assert j.fields == pulled(read_record("job", job, MAPS))
    [jc] = synced(started, "job_contact")
    assert (jc.vendor_id, jc.our_id, jc.ref) == (link["id"], "cl_001", "ji_001")

    step = await push(new_task(new_event("step_completed", step=STEP), "tsk_step_a"))
    [note] = synced(step, "note")
    assert (note.vendor_id, note.ref) == (sandbox.notes[0]["id"], "tsk_step_a")
    # The job was used, not written: no fields, so nothing of it passes for our echo.
    [used] = synced(step, "job")
    assert (used.vendor_id, used.ref, used.fields) == (job["id"], "ji_001", {})

    # A studio edit the pull has not seen yet, on a field the update does not write.
    sandbox.vendor_edit("job", job["id"], guestCount=150)
    changed = new_event("client_updated", client=RENAMED, wedding={"date": "2026-09-12"})
    updated = await push(changed)
    # Only what the PUTs wrote, as the next pull will read it (our own echo).
    contact_now = pulled(read_record("contact", sandbox.contacts[0], MAPS))
    [c] = synced(updated, "contact")
    assert c.fields == {
        k: contact_now[k] for k in ("first_name", "last_name", "name", "email", "phone")
    }
    assert c.fields["name"] == "Ada King"
    [j] = synced(updated, "job")
    assert j.fields == {"wedding_date": "2026-09-12"}  # not the studio's guest count
    # PUT replaces the job: it carries the hub's known guest count, so the studio's edit that the
    # pull had not read is written over (the README's window of the pull interval).
    assert sandbox.jobs[0]["guestCount"] == 120


# --- retries --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("late_call", "kind"),
    [("/address-book", "contact"), ("/job", "job"), ("/job-contact", "job_contact")],
)
async def test_a_retry_after_a_timeout_finds_what_the_vendor_made(
    sandbox, push, new_event, new_task, warm, late, late_call, kind
):
    """The vendor committed but its answer came too late: the outcome is unknown, so the retry
    (attempt 2) looks up before it creates, and nothing is made twice."""
    task = new_task(new_event())
    late.arm("POST", late_call)
    with pytest.raises(RetryableError, match="timed out") as failed:
        await push(task)
    made_first = {r.kind for r in failed.value.records}

    retry, counted = await measure(sandbox, push, task)

    assert reads(counted) >= 1, counted  # the retry looked before creating
    assert len(sandbox.contacts) == len(sandbox.jobs) == len(sandbox.job_contacts) == 1
    assert sandbox.creates("address-book", "cl_001") == 1 and sandbox.creates("job", "ji_001") == 1
    assert kind not in made_first  # it was unknown to the hub: the lookup found it
    assert {r.kind for r in retry.records} >= {"contact", "job", "job_contact"}
    assert retry.external_ids["job"] == sandbox.jobs[0]["id"]


async def test_a_step_note_that_timed_out_is_found_on_the_retry(
    sandbox, push, new_event, new_task, warm, late
):
    await push(new_event())
    step = new_task(new_event("step_completed", step=STEP), "tsk_step_late")
    late.arm("POST", "/note")
    with pytest.raises(RetryableError, match="timed out"):
        await push(step)

    retry, counted = await measure(sandbox, push, step)
    assert counted == {"GET /note": 1}
    assert len(sandbox.notes) == 1 and sandbox.creates("note") == 1
    assert retry.external_ids["note"] == sandbox.notes[0]["id"]


# --- stale ids ------------------------------------------------------------------------------------


@pytest.mark.parametrize("event_type", ["step_completed", "journey_completed"])
async def test_a_known_job_the_studio_deleted_is_made_again_and_reported_deleted(
    sandbox, push, new_event, new_task, warm, event_type
):
    await push(new_event())
    stale = sandbox.jobs[0]["id"]
    sandbox.vendor_delete("job", stale)

    result = await push(new_task(new_event(event_type, step=STEP)))

    [gone] = [r for r in result.records if r.deleted]
    assert (gone.kind, gone.vendor_id) == ("job", stale)
    [job] = sandbox.jobs
    assert job["id"] != stale and MAPS.has(job, "ji_001")
    assert result.external_ids["job"] == job["id"]
    assert [link["jobId"] for link in sandbox.job_contacts if link["jobId"] != stale] == [job["id"]]
    assert len(sandbox.contacts) == 1  # the known contact was used, not made again
    if event_type == "step_completed":
        assert [n["jobId"] for n in sandbox.notes] == [job["id"]]
    else:
        assert job["leadStatusName"] == "Completed"

    # The hub forgot the stale id: the next event goes straight to the new job.
    _, counted = await measure(
        sandbox, push, new_task(new_event("step_completed", step=STEP), "tsk_after")
    )
    assert counted == {"POST /note": 1}


async def test_a_known_contact_the_studio_deleted_is_made_again_and_reported_deleted(
    sandbox, push, new_event, warm
):
    await push(new_event())
    stale = sandbox.contacts[0]["id"]
    sandbox.vendor_delete("address-book", stale)

    changed = new_event("client_updated", client=RENAMED)
    result = await push(changed)

    assert [(r.kind, r.vendor_id) for r in result.records if r.deleted] == [("contact", stale)]
    [contact] = sandbox.contacts
    assert contact["id"] != stale and MAPS.has(contact, "cl_001")
    assert contact["lastName"] == "King"
    assert result.external_ids["contact"] == contact["id"]


async def test_a_deleted_contact_named_by_a_new_link_is_made_again(sandbox, push, new_event, warm):
    """The contact is known and unchanged, so only the link names it: the vendor refuses the
    link, the contact is found gone, made again, and linked."""
    await push(new_event())
    stale = sandbox.contacts[0]["id"]
    sandbox.vendor_delete("address-book", stale)

    second = new_event(id="evt_second", journey_instance_id="ji_002")
    result = await push(second)

    assert [(r.kind, r.vendor_id) for r in result.records if r.deleted] == [("contact", stale)]
    [contact] = sandbox.contacts
    job = next(j for j in sandbox.jobs if MAPS.has(j, "ji_002"))
    link = next(lk for lk in sandbox.job_contacts if lk["jobId"] == job["id"])
    assert link["contactId"] == contact["id"] != stale
    assert sandbox.creates("job", "ji_002") == 1


# --- failures -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "error"), [(Fault(status=500), RetryableError), (Fault(status=422), PermanentError)]
)
async def test_a_failure_after_the_contact_was_made_carries_it(
    sandbox, push, new_event, warm, fault, error
):
    sandbox.faults.plan(Fault(), fault)  # the contact goes through, the job is refused
    with pytest.raises(error) as failed:
        await push(new_event())

    [contact] = sandbox.contacts
    [record] = failed.value.records
    assert (record.kind, record.vendor_id, record.our_id) == ("contact", contact["id"], "cl_001")
    assert record.email == "ada@example.com"
    assert record.fields == {
        k: v for k, v in read_record("contact", contact, MAPS).fields.items() if v is not None
    }

    # The retry knows the contact: it is not looked for, nor made again.
    _, counted = await measure(sandbox, push, new_event())
    assert counted == {"GET /job": 1, "POST /job": 1, "POST /job-contact": 1}
    assert len(sandbox.contacts) == 1 and len(sandbox.jobs) == 1


async def test_skipped_and_unknown_status_make_no_write(sandbox, push, new_event, new_connection):
    connection = new_connection(sandbox, status_completed="Archived forever")
    with pytest.raises(PermanentError, match="Archived forever") as failed:
        await push(new_event("journey_completed"), connection=connection)
    assert failed.value.records == []
    assert not sandbox.contacts and not sandbox.jobs


async def test_a_retry_finds_the_contact_by_email_when_nothing_is_known(
    sandbox, push, new_event, warm
):
    """The hub lost what the first attempt made (or never learnt it): attempt 2 looks."""
    await push(new_event(), known=Known())
    before = Counter(sandbox.requests)
    result = await push(new_event(), known=Known(attempt=2))
    counted = calls(sandbox, before)
    assert "POST /address-book" not in counted and "POST /job" not in counted
    assert result.external_ids["contact"] == sandbox.contacts[0]["id"]
    assert len(sandbox.job_contacts) == 1
