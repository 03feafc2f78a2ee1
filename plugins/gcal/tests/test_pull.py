"""Pull: full sync over pages, incremental sync with the sync token, 410 → full resync,
deletions, and recognising our own pushed events (echo)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from journeyhub.errors import AuthExpired, PermanentError
from journeyhub.model import PulledRecord
from journeyhub_gcal import GcalConfig, list_events_page
from journeyhub_gcal import events as ev


def add_events(sandbox, count: int, start: str = "2026-05-01") -> list[str]:
    day = datetime.fromisoformat(start)
    ids = []
    for n in range(count):
        first = (day + timedelta(days=n)).date()
        event = sandbox.user_add(
            summary=f"Shoot {n}",
            start={"date": first.isoformat()},
            end={"date": (first + timedelta(days=1)).isoformat()},
        )
        ids.append(event["id"])
    return ids


async def pull_all(hook, cursor=None, **kwargs):
    """Pages until has_more is false: (records, pages, final cursor)."""
    records, pages = [], []
    while True:
        page = await hook("journeyhub_pull", cursor=cursor, **kwargs)
        pages.append(page)
        records.extend(page.records)
        cursor = page.next_cursor
        if not page.has_more:
            return records, pages, cursor


async def test_full_sync_pages_then_incremental_sees_only_the_change(hook, sandbox, new_connection):
    ids = add_events(sandbox, 5)
    conn = new_connection(sandbox, page_size=2)
    records, pages, cursor = await pull_all(hook, connection=conn)
    assert [r.vendor_id for r in records] == ids
    assert [p.has_more for p in pages] == [True, True, False]
    # Intermediate cursors carry the page token and the full sync's bound, not a sync token.
    middle = json.loads(pages[0].next_cursor)
    assert middle["page_token"] and middle["time_min"] and "sync_token" not in middle
    assert set(json.loads(cursor)) == {"sync_token"}

    sandbox.user_edit(
        ids[3], summary="Shoot 3 (moved)", start={"date": "2026-05-10"}, end={"date": "2026-05-11"}
    )
    records, pages, cursor2 = await pull_all(hook, cursor=cursor, connection=conn)
    assert len(pages) == 1
    assert [(r.vendor_id, r.fields["summary"], r.fields["start"]) for r in records] == [
        (ids[3], "Shoot 3 (moved)", "2026-05-10")
    ]
    assert records[0].modified_at is not None and records[0].kind == "calendar_event"
    # Nothing changed since: an empty page, and the cursor still works.
    records, _, _ = await pull_all(hook, cursor=cursor2, connection=conn)
    assert records == []


async def test_the_same_page_asked_twice_gives_the_same_records(hook, sandbox, new_connection):
    add_events(sandbox, 3)
    conn = new_connection(sandbox, page_size=2)
    first = await hook("journeyhub_pull", cursor=None, connection=conn)
    second_a = await hook("journeyhub_pull", cursor=first.next_cursor, connection=conn)
    second_b = await hook("journeyhub_pull", cursor=first.next_cursor, connection=conn)
    assert [r.vendor_id for r in second_a.records] == [r.vendor_id for r in second_b.records]
    assert second_a.records


async def test_an_expired_sync_token_starts_a_full_resync(hook, sandbox, new_connection):
    ids = add_events(sandbox, 3)
    conn = new_connection(sandbox, page_size=2)
    _, _, cursor = await pull_all(hook, connection=conn)
    sandbox.invalidate_sync_tokens()
    page = await hook("journeyhub_pull", cursor=cursor, connection=conn)
    assert [r.vendor_id for r in page.records] == ids[:2]  # the first page of a full sync
    assert page.has_more
    assert json.loads(page.next_cursor)["resync"] is True
    rest, pages, final = await pull_all(hook, cursor=page.next_cursor, connection=conn)
    assert [r.vendor_id for r in rest] == ids[2:]
    assert json.loads(pages[-1].next_cursor)["resync"] is True  # the resync's last page
    # The resync's sync token works incrementally, and its flag does not stick.
    sandbox.user_edit(ids[0], summary="changed")
    page = await hook("journeyhub_pull", cursor=final, connection=conn)
    assert [r.vendor_id for r in page.records] == [ids[0]]
    assert "resync" not in json.loads(page.next_cursor)


async def test_a_deleted_event_is_a_deleted_record(hook, sandbox):
    ids = add_events(sandbox, 2)
    _, _, cursor = await pull_all(hook)
    sandbox.user_delete(ids[1])
    records, _, _ = await pull_all(hook, cursor=cursor)
    assert [(r.vendor_id, r.deleted, r.fields["status"]) for r in records] == [
        (ids[1], True, "cancelled")
    ]


async def test_the_full_sync_window_leaves_old_events_out(hook, sandbox, new_connection):
    today = datetime.now(UTC).date()
    old = sandbox.user_add(
        summary="Old",
        start={"date": (today - timedelta(days=40)).isoformat()},
        end={"date": (today - timedelta(days=39)).isoformat()},
    )
    recent = sandbox.user_add(
        summary="Recent",
        start={"date": today.isoformat()},
        end={"date": (today + timedelta(days=1)).isoformat()},
    )
    records, _, _ = await pull_all(hook, connection=new_connection(sandbox, sync_window_days=30))
    assert [r.vendor_id for r in records] == [recent["id"]]
    assert old["id"] not in [r.vendor_id for r in records]


async def test_our_pushed_event_comes_back_as_our_echo(hook, push, new_event, sandbox):
    await push(new_event())
    records, _, cursor = await pull_all(hook)
    (record,) = records
    pushed = sandbox.event(ev.wedding_event_id("ji_001"))["extendedProperties"]["private"]
    assert record.our_id == "cl_001"
    assert record.fields["journeyhub_fingerprint"] == pushed[ev.P_FINGERPRINT]
    assert record.fields["fingerprint"] == pushed[ev.P_FINGERPRINT]
    assert record.fields["journeyhub_echo"] is True
    assert record.fields["journeyhub_journey_instance_id"] == "ji_001"
    # The user moves the wedding: the next sync sees a change that is not ours.
    sandbox.user_edit(record.vendor_id, start={"date": "2026-06-27"}, end={"date": "2026-06-28"})
    records, _, _ = await pull_all(hook, cursor=cursor)
    (moved,) = records
    assert moved.fields["journeyhub_echo"] is False
    assert moved.fields["fingerprint"] != moved.fields["journeyhub_fingerprint"]
    assert moved.fields["start"] == "2026-06-27"


async def test_a_timed_echo_matches_however_google_writes_the_time(
    hook, push, new_event, new_task, sandbox, new_connection
):
    conn = new_connection(sandbox, time_zone="America/New_York")
    task = new_task(new_event())
    task.mapped["date"] = "2026-06-20T16:00:00"
    await push(task, connection=conn)
    # In UTC we send "+00:00" and Google writes "Z": the fingerprint compares instants.
    step = {
        "id": "st_1",
        "name": "Call",
        "type": "meeting",
        "data": {"start": "2026-04-11T10:00:00+00:00"},
    }
    await push(new_event("step_completed", step=step))
    records, _, _ = await pull_all(hook, connection=conn)
    starts = {r.fields["journeyhub_kind"]: r.fields["start"] for r in records}
    assert starts == {"wedding": "2026-06-20T16:00:00-04:00", "step": "2026-04-11T10:00:00Z"}
    assert all(r.fields["journeyhub_echo"] is True for r in records)


async def test_list_events_page_is_reusable_by_other_connectors(http, sandbox, fresh):
    add_events(sandbox, 3)
    config = GcalConfig(api_base=sandbox.api_base, token_url=sandbox.token_url, page_size=10)

    def shoots_only(item):
        if item.get("summary") == "Shoot 1":
            return None
        return PulledRecord(vendor_id=item["id"], kind="shoot", fields={"title": item["summary"]})

    page = await list_events_page(http, config, fresh, None, record=shoots_only)
    assert [r.vendor_id for r in page.records] == [e["id"] for e in sandbox.events()][::2]
    assert {r.kind for r in page.records} == {"shoot"}
    assert not page.has_more and json.loads(page.next_cursor)["sync_token"]


async def test_pull_needs_an_access_token_and_a_readable_cursor(hook, credentials):
    with pytest.raises(AuthExpired):
        await hook("journeyhub_pull", cursor=None, credentials=credentials)
    with pytest.raises(PermanentError, match="cursor"):
        await hook("journeyhub_pull", cursor="{not json")
