"""Push: a new journey posts one enquiry to Studio Ninja's form; repeats in this process do
not post again; the form's refusals and failures map to the kernel's errors."""

from __future__ import annotations

import asyncio

import pytest
from journeyhub.errors import (
    OutcomeUnknown,
    PermanentError,
    RateLimited,
    RetryableError,
    VendorUnreachable,
)
from journeyhub.model import FieldMapping
from journeyhub.testing.sandbox import Fault
from journeyhub_studioninja.enquiry import submission_id


async def test_a_new_journey_posts_the_form_once(push, new_event, sandbox):
    event = new_event()
    result = await push(event)
    assert result.status == "delivered" and result.vendor_status == 200
    assert result.external_ids == {"enquiry": submission_id(event)}
    (sent,) = sandbox.submissions
    assert sent.encoding == "form"
    assert sent.fields == {
        "first_name": "Ada",
        "last_name": "King Lovelace",
        "email": "ada@example.com",
        "phone": "+44 20 7946 0100",
        "event_date": "2026-06-20",
        "location": "Rose Barn, 1 Lane, Bath",
        "job_type": "Wedding",
        "message": "Golden hour portraits, please.",
        "journeyhub_reference": submission_id(event),
    }
    # The same task again (a redelivery), and the journey started again under another event
    # id: the same enquiry, already posted by this process.
    again = await push(event)
    restarted = await push(new_event(id="evt_other_id"))
    assert (again.status, restarted.status) == ("already_delivered", "already_delivered")
    assert len(sandbox.submissions) == 1
    # Another journey of the same client is another enquiry.
    await push(new_event(id="evt_2", journey_instance_id="ji_002"))
    assert len(sandbox.submissions) == 2


async def test_field_names_encoding_and_reference_follow_the_connection(
    push, new_event, new_task, new_connection, sandbox
):
    conn = new_connection(
        sandbox.config(enquiry_encoding="json", reference_field=None),
        field_mappings=[
            FieldMapping(source="client.name", target="first_name"),
            FieldMapping(source="wedding.date", target="event_date", transform="date:%d/%m/%Y"),
        ],
    )
    await push(new_task(new_event(), conn), connection=conn)
    (sent,) = sandbox.submissions
    assert sent.encoding == "json"
    assert sent.fields["first_name"] == "Ada King Lovelace"
    assert sent.fields["event_date"] == "20/06/2026"
    assert "journeyhub_reference" not in sent.fields


async def test_only_new_journeys_go_to_the_form(push, new_event, sandbox):
    result = await push(new_event("client_updated"))
    assert result.status == "skipped"
    assert sandbox.submissions == []


async def test_a_rate_limit_and_a_server_error_are_retried_and_post_once(push, new_event, sandbox):
    sandbox.faults.plan(Fault(status=429, retry_after=7), Fault(status=503))
    with pytest.raises(RateLimited) as limited:
        await push(new_event())
    assert limited.value.retry_after == 7
    with pytest.raises(RetryableError) as failed:
        await push(new_event())
    assert failed.value.vendor_status == 503
    assert sandbox.submissions == []
    assert (await push(new_event())).status == "delivered"
    assert len(sandbox.submissions) == 1


async def test_a_concurrent_repeat_is_retried_not_posted(push, new_event, sandbox):
    sandbox.faults.plan(Fault(delay=0.5))  # the first post is still on its way …
    first = asyncio.create_task(push(new_event()))
    await asyncio.sleep(0.1)
    with pytest.raises(RetryableError, match="being posted"):  # … when the repeat comes
        await push(new_event(id="evt_repeat"))
    assert (await first).status == "delivered"
    assert (await push(new_event(id="evt_repeat"))).status == "already_delivered"
    assert len(sandbox.submissions) == 1


async def test_a_timeout_is_retryable(push, new_event, new_task, new_connection, sandbox):
    conn = new_connection(sandbox.config(timeout_seconds=0.3))
    sandbox.faults.plan(Fault(delay=1.0))
    # Sent, no answer in time: the form may have taken it (the kernel's OutcomeUnknown).
    with pytest.raises(OutcomeUnknown, match="timed out") as caught:
        await push(new_task(new_event(), conn), connection=conn)
    assert isinstance(caught.value, RetryableError)
    await asyncio.sleep(0.8)  # the abandoned call is over at the sandbox before its reset


async def test_an_unreachable_form_is_retryable_and_nothing_was_sent(
    push, new_event, new_task, new_connection, sandbox
):
    # Nothing listens on port 9: the enquiry never left, so a retry cannot make a second lead.
    down = new_connection(
        sandbox.config(enquiry_form_url="http://127.0.0.1:9/contactform/parser/a/b")
    )
    with pytest.raises(VendorUnreachable) as caught:
        await push(new_task(new_event(), down), connection=down)
    assert isinstance(caught.value, RetryableError)
    assert sandbox.submissions == []
    # Not remembered as sent: the retry posts it.
    assert (await push(new_event())).status == "delivered"
    assert len(sandbox.submissions) == 1


async def test_refusals_are_permanent(push, new_event, new_task, new_connection, sandbox):
    no_email = new_event(client={"id": "cl_9", "name": "Nell"})
    with pytest.raises(PermanentError, match="refused the fields") as refused:
        await push(no_email)
    assert refused.value.vendor_status == 400
    # Refused, so not remembered as sent: fixed mappings may post it later.
    gone = new_connection(
        sandbox.config(enquiry_form_url=sandbox.forms.url + "/contactform/parser/x/y")
    )
    with pytest.raises(PermanentError, match="no such form"):
        await push(new_task(new_event(), gone), connection=gone)
    assert sandbox.submissions == []
    assert (await push(new_event())).status == "delivered"


async def test_a_connection_without_a_form_cannot_push(
    push, new_event, new_task, new_connection, sandbox
):
    conn = new_connection(sandbox.config(enquiry_form_url=None))
    with pytest.raises(PermanentError, match="enquiry_form_url"):
        await push(new_task(new_event(), conn), connection=conn)
    bad = new_connection(
        sandbox.config(),
        field_mappings=[FieldMapping(source="client.id", target="journeyhub_reference")],
    )
    with pytest.raises(PermanentError, match="reference_field"):
        await push(new_task(new_event(), bad), connection=bad)
    assert sandbox.submissions == []
