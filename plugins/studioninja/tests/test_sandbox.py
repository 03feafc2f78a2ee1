"""The fake enquiry form answers as the README says; entries are written as Studio Ninja's
sync is assumed to write them."""

from __future__ import annotations

from datetime import date, datetime


async def test_the_form_page_and_its_submissions(http, sandbox):
    page = await http.get(sandbox.forms.hosted_url)
    assert page.status_code == 200 and '<form method="post">' in page.text
    assert (await http.get(sandbox.forms.url + "/contactform/parser/a/b")).status_code == 404

    ok = await http.post(sandbox.forms.hosted_url, data={"first_name": "Ada", "email": "a@b.c"})
    assert ok.status_code == 200 and "Thank you" in ok.text
    twice = await http.post(sandbox.forms.form_url, json={"first_name": "Ada", "email": "a@b.c"})
    assert twice.status_code == 200
    # No duplicate check at the form: the same lead twice is two leads.
    assert [s.encoding for s in sandbox.submissions] == ["form", "json"]
    missing = await http.post(sandbox.forms.form_url, data={"email": "a@b.c"})
    assert missing.status_code == 400 and "first_name" in missing.text
    bad_json = await http.post(
        sandbox.forms.form_url, content=b"[1]", headers={"content-type": "application/json"}
    )
    assert bad_json.status_code == 400
    assert len(sandbox.submissions) == 2
    assert sandbox.forms.requests["POST 400"] == 2


def test_entries_are_titled_and_relabelled_like_studio_ninja(sandbox):
    lead = sandbox.add_entry("MAIN SHOOT", "Gus & Hal", date(2026, 6, 20), lead=True)
    timed = sandbox.add_entry("APPOINTMENT", "Call", datetime(2026, 4, 2, 10, 0))
    assert lead["summary"] == "MAIN SHOOT (LEAD): Gus & Hal"
    assert (lead["start"], lead["end"]) == ({"date": "2026-06-20"}, {"date": "2026-06-21"})
    assert timed["end"] == {"dateTime": "2026-04-02T11:00:00Z"}
    booked = sandbox.book_lead(lead["id"])
    assert (booked["id"], booked["summary"]) == (lead["id"], "MAIN SHOOT: Gus & Hal")
    other = sandbox.add_entry("LEAD", "Cleo", date(2026, 7, 1))
    fresh = sandbox.book_lead_as_new_event(other["id"])
    assert fresh["summary"] == "SHOOT: Cleo" and fresh["id"] != other["id"]
    assert sandbox.google.event(other["id"])["status"] == "cancelled"
    moved = sandbox.move(timed["id"], date(2026, 4, 3))  # timed → all-day
    assert (moved["start"], moved["end"]) == ({"date": "2026-04-03"}, {"date": "2026-04-04"})
