"""Pulling contacts and jobs by ``modified desc`` down to a watermark."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest
from journeyhub.errors import PermanentError


async def run(hook, connection, cursor=None, max_pages=50):
    """One sync run: pages until has_more is False. Returns (records, pages, final cursor)."""
    records, pages = [], []
    for _ in range(max_pages):
        page = await hook("journeyhub_pull", connection=connection, cursor=cursor)
        pages.append((cursor, page))
        records.extend(page.records)
        cursor = page.next_cursor
        if not page.has_more:
            return records, pages, cursor
    raise AssertionError("the run did not end")


def ids(records, kind):
    return [r.vendor_id for r in records if r.kind == kind]


@pytest.fixture
def paged(sandbox, new_connection):
    return new_connection(sandbox, page_size=10)


def seed(sandbox, contacts=25, jobs=12, step=0.0):
    made = {"contact": [], "job": []}
    for n in range(contacts):
        made["contact"].append(
            sandbox.vendor_create(
                "address-book",
                kind="person",
                firstName=f"C{n}",
                lastName="X",
                email=f"c{n}@example.com",
            )["id"]
        )
        if step:
            sandbox.advance(step)
    for n in range(jobs):
        made["job"].append(sandbox.vendor_create("job", name=f"J{n}", eventDate="2026-05-01")["id"])
        if step:
            sandbox.advance(step)
    return made


async def test_a_run_pages_through_everything_once_even_when_modified_times_tie(
    sandbox, hook, paged
):
    sandbox.freeze(datetime(2026, 1, 1, tzinfo=UTC))  # every record shares one modified second
    made = seed(sandbox)

    records, pages, cursor = await run(hook, paged)

    assert sorted(ids(records, "contact")) == sorted(made["contact"])
    assert sorted(ids(records, "job")) == sorted(made["job"])
    assert len(pages) == 3 + 2 + 1  # 25 contacts in pages of 10, 12 jobs, then the payments
    first = next(r for r in records if r.kind == "contact")
    assert first.fields["email"].endswith("@example.com")
    assert first.modified_at == datetime(2026, 1, 1, tzinfo=UTC)

    # Nothing changed: the next run reads again only what shares the watermark's second (here
    # everything); the kernel's fingerprints make that a no-op, and an edit in that second
    # is not lost.
    again, _, cursor = await run(hook, paged, cursor)
    assert sorted(ids(again, "contact")) == sorted(made["contact"])

    # A new record in the very same second as the watermark is not skipped.
    late = sandbox.vendor_create("address-book", kind="person", firstName="Late", email="l@x.io")
    newer, _, _ = await run(hook, paged, cursor)
    assert late["id"] in ids(newer, "contact")


async def test_a_repeated_page_gives_the_same_records(sandbox, hook, paged):
    seed(sandbox, contacts=25, jobs=0, step=1)
    first = await hook("journeyhub_pull", connection=paged, cursor=None)
    second_page = await hook("journeyhub_pull", connection=paged, cursor=first.next_cursor)
    repeated = await hook("journeyhub_pull", connection=paged, cursor=first.next_cursor)

    assert [r.vendor_id for r in second_page.records] == [r.vendor_id for r in repeated.records]
    assert second_page.next_cursor == repeated.next_cursor
    assert len(second_page.records) == 10
    assert not {r.vendor_id for r in first.records} & {r.vendor_id for r in second_page.records}


async def test_resuming_from_the_cursor_only_brings_changes(sandbox, hook, paged):
    sandbox.freeze(datetime(2026, 1, 1, tzinfo=UTC))
    made = seed(sandbox, step=1)
    _, _, cursor = await run(hook, paged)

    sandbox.advance(60)
    sandbox.vendor_edit("address-book", made["contact"][3], email="moved@example.com")
    sandbox.vendor_edit("job", made["job"][0], eventDate="2026-07-04")
    records, pages, _ = await run(hook, paged, cursor)

    # The edits, plus at most what shares the old watermark's second (read again on purpose).
    by_id = {r.vendor_id: r for r in records}
    assert made["contact"][3] in by_id and made["job"][0] in by_id
    assert by_id[made["contact"][3]].fields["email"] == "moved@example.com"
    assert by_id[made["job"][0]].fields["wedding_date"] == "2026-07-04"
    assert len(records) <= 4
    assert len(pages) == 3  # one page of each collection: the walk stops at the watermark


async def test_a_record_deleted_mid_run_does_not_make_the_next_one_skipped(sandbox, hook, paged):
    sandbox.freeze(datetime(2026, 1, 1, tzinfo=UTC))
    made = seed(sandbox, contacts=25, jobs=0, step=1)
    first = await hook("journeyhub_pull", connection=paged, cursor=None)
    sandbox.vendor_delete("address-book", first.records[0].vendor_id)  # pages shift up by one

    rest, _, _ = await run(hook, paged, first.next_cursor)

    seen = set(ids(first.records, "contact")) | set(ids(rest, "contact"))
    assert seen >= set(made["contact"]) - {first.records[0].vendor_id}


async def test_pulled_records_carry_our_ids_and_deletions(sandbox, hook, push, new_event, paged):
    await push(new_event())
    contact_id = sandbox.contacts[0]["id"]
    sandbox.vendor_edit("address-book", contact_id, hidden=True)

    records, _, _ = await run(hook, paged)

    contact = next(r for r in records if r.kind == "contact")
    job = next(r for r in records if r.kind == "job")
    assert (contact.our_id, contact.deleted) == ("cl_001", True)
    assert job.our_id is None  # a job's client comes from the link our push recorded
    assert (
        job.fields["journey_instance_id"],
        job.fields["wedding_date"],
        job.fields["job_type"],
    ) == ("ji_001", "2026-06-20", "Wedding")
    assert contact.fields["name"] == "Ada Lovelace"


async def test_a_job_is_never_read_as_deleted_from_a_field_a_job_lacks(
    sandbox, hook, push, new_event, paged
):
    """A Job has no ``hidden`` field (a deleted one stops answering: the push reads that), and
    a closed job is a closed job, not a deleted one."""
    await push(new_event())
    job_id = sandbox.jobs[0]["id"]
    sandbox.vendor_edit("job", job_id, hidden=True, closed=True)

    records, _, _ = await run(hook, paged)

    job = next(r for r in records if r.kind == "job")
    assert (job.vendor_id, job.deleted, job.fields["closed"]) == (job_id, False, True)


async def test_an_unreadable_cursor_is_permanent(hook, paged):
    with pytest.raises(PermanentError):
        await hook("journeyhub_pull", connection=paged, cursor="{not json")
    bad = msgspec.json.encode({"v": 1, "kind": "invoice", "page": 1}).decode()
    with pytest.raises(PermanentError):
        await hook("journeyhub_pull", connection=paged, cursor=bad)
