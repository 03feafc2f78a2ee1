"""Updates send the whole record the published schema describes (PUT replaces it), made from
what the hub knows without reading it first; and only the events that set a client's fields
(``sets_client_fields``) change them: a later event's stale snapshot leaves the studio's edits."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import pytest_asyncio
from journeyhub.model import Known, KnownRecord, SyncedRecord
from journeyhub.vendor_http import VendorHttp
from journeyhub_tave import client as api
from journeyhub_tave.sandbox import PREFIX

STEP = {"name": "Contract signed", "type": "task"}


@pytest_asyncio.fixture
async def warm(sandbox: Any, http: VendorHttp) -> None:
    """The studio's settings read once, as the 5-minute cache keeps them."""
    api._NAMES.clear()
    tave = api.TaveClient(http, sandbox.api_key, sandbox.api_base)
    await tave.setting(api.JOB_TYPES, "Wedding", "job_type")
    await tave.setting(api.LEAD_STATUSES, "Completed", "status_completed")


async def measure(sandbox: Any, push: Any, item: Any, **kwargs: Any) -> Counter[str]:
    before = Counter(sandbox.requests)
    await push(item, **kwargs)
    out: Counter[str] = Counter()
    for key, count in (Counter(sandbox.requests) - before).items():
        method, path = key.split(" ", 1)
        parts = path.removeprefix(PREFIX + "/").split("/")
        out[f"{method} /{parts[0]}" + ("/{id}" if len(parts) > 1 else "")] += count
    return out


async def pull_into(hub: Any, hook: Any, client_id: str = "cl_001") -> None:
    """A sync run whose records the hub keeps, as the kernel's sync links do."""
    cursor, more = None, True
    while more:
        page = await hook("journeyhub_pull", cursor=cursor)
        learnt = [
            SyncedRecord(kind=r.kind, vendor_id=r.vendor_id, fields=r.fields) for r in page.records
        ]
        hub.learn(client_id, learnt)
        cursor, more = page.next_cursor, page.has_more


async def test_a_contact_update_sends_the_whole_person_without_reading_it(
    sandbox, push, new_event, new_task, warm
):
    await push(new_event())
    moved = new_event(
        "client_updated",
        client={
            "id": "cl_001",
            "name": "Ada Lovelace",
            "email": "ada@example.com",
            "phone": "+44 20 7946",
        },
    )
    counted = await measure(sandbox, push, new_task(moved))

    assert counted == {"PUT /address-book/{id}": 1}
    [contact] = sandbox.contacts
    assert (contact["kind"], contact["firstName"], contact["lastName"]) == (
        "person",
        "Ada",
        "Lovelace",
    )
    assert (contact["email"], contact["cellPhone"]["formatted"]) == (
        "ada@example.com",
        "+44 20 7946",
    )


async def test_a_status_keeps_every_field_of_the_job_it_puts(sandbox, push, new_event, warm):
    await push(new_event())
    counted = await measure(sandbox, push, new_event("journey_completed"))

    assert counted == {"PUT /job/{id}": 1}
    [job] = sandbox.jobs
    assert job["leadStatusName"] == "Completed"
    assert (job["name"], job["eventDate"], job["guestCount"]) == (
        "Ada Lovelace wedding",
        "2026-06-20",
        120,
    )
    assert (job["jobTypeName"], job["leadNotes"]) == ("Wedding", "Venue: Rose Barn, 1 Lane")


async def test_a_record_the_hub_knows_without_its_fields_is_read_before_its_put(
    sandbox, push, new_event, warm
):
    await push(new_event())
    job = sandbox.jobs[0]
    bare = KnownRecord(kind="job", vendor_id=job["id"], ref="ji_001", our_id="cl_001")

    counted = await measure(
        sandbox, push, new_event("journey_completed"), known=Known(records=(bare,))
    )

    assert counted == {"GET /job/{id}": 1, "PUT /job/{id}": 1}
    [after] = sandbox.jobs
    assert (after["eventDate"], after["leadNotes"], after["leadStatusName"]) == (
        "2026-06-20",
        "Venue: Rose Barn, 1 Lane",
        "Completed",
    )


@pytest.mark.parametrize("event_type", ["step_completed", "journey_completed"])
@pytest.mark.parametrize("instance", ["ji_001", "ji_002"])  # ji_002: it overtook its start
async def test_a_later_events_stale_snapshot_leaves_the_studios_changes(
    sandbox, push, hub, hook, new_event, new_task, warm, event_type, instance
):
    await push(new_event())
    contact, job = sandbox.contacts[0], sandbox.jobs[0]
    sandbox.vendor_edit("address-book", contact["id"], lastName="Byron")
    sandbox.vendor_edit("job", job["id"], eventDate="2026-07-04")
    await pull_into(hub, hook)

    # The event still carries the client and the wedding as they were when the journey began.
    stale = new_event(event_type, step=STEP, journey_instance_id=instance)
    assert stale.wedding is not None and str(stale.wedding.date) == "2026-06-20"
    counted = await measure(sandbox, push, new_task(stale))

    assert "PUT /address-book/{id}" not in counted
    assert sandbox.contacts[0]["lastName"] == "Byron"
    assert sandbox.record("job", job["id"])["eventDate"] == "2026-07-04"
