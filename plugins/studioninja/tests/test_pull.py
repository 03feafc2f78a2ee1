"""Pull: Studio Ninja's calendar entries become shoot and job records through gcal's paging and
sync tokens; other events are ignored; a booked lead changes its job's status."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta

import pytest
from journeyhub.change_detection import compare, trigger_type
from journeyhub.errors import AuthExpired, PermanentError

DAY = date(2026, 6, 20)


async def pull_all(pull, cursor=None, **kwargs):
    """Pages until has_more is false: (records, pages, final cursor)."""
    records, pages = [], []
    while True:
        page = await pull(cursor, **kwargs)
        pages.append(page)
        records.extend(page.records)
        cursor = page.next_cursor
        if not page.has_more:
            return records, pages, cursor


def by_kind(records, kind):
    return {r.vendor_id: r for r in records if r.kind == kind}


async def test_entries_become_records_with_their_type_and_status(pull, sandbox):
    shoot = sandbox.add_entry("SHOOT", "Ada & Ben Wedding", DAY, location="Rose Barn")
    lead = sandbox.add_entry("LEAD", "Cleo & Dan Wedding", DAY + timedelta(days=7))
    main = sandbox.add_entry("MAIN SHOOT", "Eve & Finn Wedding", DAY + timedelta(days=14))
    main_lead = sandbox.add_entry("MAIN SHOOT", "Gus & Hal", DAY + timedelta(days=21), lead=True)
    appt = sandbox.add_entry("APPOINTMENT", "Consultation Ada", datetime(2026, 4, 2, 10, 0))
    appt_lead = sandbox.add_entry("APPOINTMENT", "Call Cleo", datetime(2026, 4, 3, 9), lead=True)
    sandbox.google.user_add(
        summary="Dentist", start={"date": "2026-05-01"}, end={"date": "2026-05-02"}
    )
    sandbox.google.user_add(
        summary="Shoot with Sam (personal)",
        start={"date": "2026-05-03"},
        end={"date": "2026-05-04"},
    )

    records, _, _ = await pull_all(pull)
    shoots = by_kind(records, "shoot")
    got = {
        vid: (r.fields["entry_type"], r.fields["status"], r.fields["name"])
        for vid, r in shoots.items()
    }
    assert got == {
        shoot["id"]: ("SHOOT", "confirmed", "Ada & Ben Wedding"),
        lead["id"]: ("LEAD", "lead", "Cleo & Dan Wedding"),
        main["id"]: ("MAIN SHOOT", "confirmed", "Eve & Finn Wedding"),
        main_lead["id"]: ("MAIN SHOOT", "lead", "Gus & Hal"),
        appt["id"]: ("APPOINTMENT", "scheduled", "Consultation Ada"),
        appt_lead["id"]: ("APPOINTMENT", "lead", "Call Cleo"),
    }  # the dentist and the personal "Shoot with Sam" are not Studio Ninja's
    first = shoots[shoot["id"]].fields
    assert first["title"] == "SHOOT: Ada & Ben Wedding"
    assert (first["start"], first["end"], first["all_day"]) == ("2026-06-20", "2026-06-21", True)
    assert first["location"] == "Rose Barn"
    assert shoots[appt["id"]].fields["all_day"] is False
    assert shoots[shoot["id"]].modified_at is not None
    # Shoot-date entries speak for their job; appointments do not.
    jobs = {vid: r.fields for vid, r in by_kind(records, "job").items()}
    assert jobs == {
        "job:name:ada & ben wedding": {"status": "confirmed"},
        "job:name:cleo & dan wedding": {"status": "lead"},
        "job:name:eve & finn wedding": {"status": "confirmed"},
        "job:name:gus & hal": {"status": "lead"},
    }


async def test_paging_and_cursor_resume_through_gcal(pull, sandbox, new_connection):
    ids = [
        sandbox.add_entry("SHOOT", f"Couple {n}", DAY + timedelta(days=n))["id"] for n in range(5)
    ]
    sandbox.google.user_add(
        summary="Lunch", start={"date": "2026-06-22"}, end={"date": "2026-06-23"}
    )
    conn = new_connection(sandbox.config(page_size=2))
    records, pages, cursor = await pull_all(pull, connection=conn)
    assert [p.has_more for p in pages] == [True, True, False]  # 6 events, 2 a page
    assert [r.vendor_id for r in records if r.kind == "shoot"] == ids
    assert set(json.loads(pages[0].next_cursor)) == {"page_token", "time_min"}
    assert set(json.loads(cursor)) == {"sync_token"}
    # The same page asked again (the kernel saves a cursor only after the page's effects).
    again = await pull(pages[0].next_cursor, connection=conn)
    assert [r.vendor_id for r in again.records] == [r.vendor_id for r in pages[1].records]

    # Resuming from the final cursor: only what changed since.
    sandbox.move(ids[3], DAY + timedelta(days=30))
    records, pages, cursor2 = await pull_all(pull, cursor, connection=conn)
    assert len(pages) == 1
    assert [(r.kind, r.vendor_id) for r in records] == [
        ("shoot", ids[3]),
        ("job", "job:name:couple 3"),
    ]
    assert records[0].fields["start"] == "2026-07-20"
    records, _, _ = await pull_all(pull, cursor2, connection=conn)
    assert records == []

    # A 410 from Google: gcal starts a full resync, and every entry comes again.
    sandbox.google.invalidate_sync_tokens()
    records, pages, _ = await pull_all(pull, cursor2, connection=conn)
    assert [r.vendor_id for r in records if r.kind == "shoot"] == ids
    assert json.loads(pages[0].next_cursor)["resync"] is True


async def test_a_booked_lead_changes_its_job_status(pull, sandbox):
    lead = sandbox.add_entry("LEAD", "Cleo & Dan Wedding", DAY)
    before, _, cursor = await pull_all(pull)
    sandbox.book_lead(lead["id"])  # Studio Ninja relabels the same event
    after, _, _ = await pull_all(pull, cursor)

    old_job, new_job = by_kind(before, "job"), by_kind(after, "job")
    assert list(new_job) == list(old_job) == ["job:name:cleo & dan wedding"]
    (job,) = new_job.values()
    # What the kernel's sync does with it: the status changed → project_status_changed.
    outcome = compare(job, old_job[job.vendor_id].fields, None, pushed_at=None)
    assert outcome.changes == {"status": {"old": "lead", "new": "confirmed"}}
    assert [d.type for d in outcome.drafts(job, "f" * 64)] == ["project_status_changed"]
    # The entry itself changed too (kind shoot → calendar_event_changed).
    (shoot,) = by_kind(after, "shoot").values()
    assert (shoot.vendor_id, shoot.fields["entry_type"], shoot.fields["title"]) == (
        lead["id"],
        "SHOOT",
        "SHOOT: Cleo & Dan Wedding",
    )
    assert trigger_type("shoot", "status") == "calendar_event_changed"


async def test_a_lead_booked_as_a_new_event_is_still_the_same_job(pull, sandbox):
    lead = sandbox.add_entry("MAIN SHOOT", "Gus & Hal", DAY, lead=True)
    _, _, cursor = await pull_all(pull)
    fresh = sandbox.book_lead_as_new_event(lead["id"])
    records, _, _ = await pull_all(pull, cursor)
    shoots = by_kind(records, "shoot")
    assert shoots[lead["id"]].deleted is True
    assert shoots[fresh["id"]].fields["status"] == "confirmed"
    # Keyed by the job, not the event: the kernel sees the same job's status change.
    jobs = {vid: r.fields for vid, r in by_kind(records, "job").items()}
    assert jobs == {"job:name:gus & hal": {"status": "confirmed"}}


async def test_deleted_entries_and_id_only_cancellations(pull, sandbox):
    entry = sandbox.add_entry("SHOOT", "Ada & Ben Wedding", DAY)
    foreign = sandbox.google.user_add(
        summary="Dentist", start={"date": "2026-05-01"}, end={"date": "2026-05-02"}
    )
    _, _, cursor = await pull_all(pull)
    sandbox.google.user_delete(entry["id"])
    sandbox.google.user_delete(foreign["id"])
    records, _, cursor = await pull_all(pull, cursor)
    # A deleted entry is a deleted shoot and no job record; a deleted foreign event that still
    # shows its title is not Studio Ninja's.
    assert [(r.kind, r.vendor_id, r.deleted) for r in records] == [("shoot", entry["id"], True)]

    # Google only promises the id of a deleted event: such a cancellation is passed on.
    other = sandbox.add_entry("SHOOT", "Eve & Finn", DAY)
    _, _, cursor = await pull_all(pull, cursor)
    sandbox.google.user_edit(other["id"], status="cancelled", summary=None)
    records, _, _ = await pull_all(pull, cursor)
    assert [(r.kind, r.vendor_id, r.deleted, r.fields) for r in records] == [
        ("shoot", other["id"], True, {})
    ]


async def test_title_patterns_and_job_ids_are_configurable(pull, sandbox, new_connection):
    sandbox.add_entry("SHOOT", "Ada & Ben", DAY, description="Studio Ninja job #4711")
    # Another studio's sync writes "Shoot - …": a case-insensitive pattern of its own.
    sandbox.google.user_add(
        summary="Shoot - Eve & Finn", start={"date": "2026-07-01"}, end={"date": "2026-07-02"}
    )
    sandbox.add_entry("APPOINTMENT", "Consultation", DAY)
    conn = new_connection(
        sandbox.config(
            title_patterns={"SHOOT": r"(?i)^shoot\s*[-:]\s*(?P<name>.+)$", "APPOINTMENT": ""},
            job_id_pattern=r"job #(\d+)",
        )
    )
    records, _, _ = await pull_all(pull, connection=conn)
    assert sorted(
        (r.fields["entry_type"], r.fields["name"]) for r in records if r.kind == "shoot"
    ) == [("SHOOT", "Ada & Ben"), ("SHOOT", "Eve & Finn")]
    assert sorted(by_kind(records, "job")) == ["job:id:4711", "job:name:eve & finn"]


async def test_pull_needs_a_token_and_a_readable_cursor(hook, pull, credentials):
    with pytest.raises(AuthExpired):
        await hook("journeyhub_pull", cursor=None, credentials=credentials)
    with pytest.raises(PermanentError, match="cursor"):
        await pull("{not json")
