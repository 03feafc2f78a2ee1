"""REST hook pings: token check at the gateway, then the record re-fetched from the API."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest
from journeyhub.errors import ReauthRequired, WebhookRejected
from journeyhub.model import StoredWebhook

TOKEN = "tok_0123456789abcdef"  # the credentials fixture's webhook_token


def ping(target: str, event: str | None = None, **extra) -> bytes:
    body = {"targetId": target, **extra}
    if event:
        body["event"] = event
    return msgspec.json.encode(body)


async def verify(hook, body: bytes, query: dict[str, str], credentials=None):
    kwargs = {"headers": {}, "body": body, "now": datetime.now(UTC), "query": query}
    if credentials is not None:
        kwargs["credentials"] = credentials
    return await hook("journeyhub_verify_webhook", **kwargs)


def stored(body: bytes, receipt) -> StoredWebhook:
    return StoredWebhook(
        vendor="tave",
        connection_id="con_test",
        tenant_id="ten_test",
        event_id=receipt.event_id,
        event_type=receipt.event_type,
        received_at=datetime.now(UTC),
        headers={},
        body=body,
    )


async def test_a_ping_with_the_token_is_accepted(hook):
    receipt = await verify(hook, ping("01abc", "contact.created"), {"token": TOKEN})
    assert (receipt.event_id, receipt.event_type) == ("contact.created:01abc", "contact.created")

    # The event may come from the hook URL instead of the body.
    receipt = await verify(hook, ping("01abc"), {"token": TOKEN, "event": "job.created"})
    assert (receipt.event_id, receipt.event_type) == ("job.created:01abc", "job.created")


@pytest.mark.parametrize(
    ("query", "creds", "reason"),
    [
        ({}, None, "missing_signature"),
        ({"token": ""}, None, "missing_signature"),
        ({"token": "tok_wrong_wrong_wrong"}, None, "bad_token"),
        ({"token": "\udcff\ud800"}, None, "bad_token"),
        ({"token": TOKEN}, {"api_key": "k"}, "bad_token"),  # no webhook_token configured
    ],
)
async def test_a_ping_without_the_right_token_is_rejected(hook, query, creds, reason):
    with pytest.raises(WebhookRejected) as rejected:
        await verify(hook, ping("01abc", "contact.created"), query, creds)
    assert rejected.value.reason == reason
    assert TOKEN not in str(rejected.value)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"\xff\xfe\x00",
        b"[]",
        b"null",
        b'{"targetId": {"x": 1}}',
        b'{"targetId": ""}',
        b'{"event": "contact.created"}',
        b'{"targetId": "01abc", "event": "contact.exploded"}',
        b'{"targetId": true}',
        b'{"targetId": "' + b"x" * 65 + b'"}',
    ],
)
async def test_garbage_bodies_are_bad_body_never_a_crash(hook, body):
    with pytest.raises(WebhookRejected) as rejected:
        await verify(hook, body, {"token": TOKEN})
    assert rejected.value.reason == "bad_body"


async def test_contact_ping_reads_the_contact_from_the_api(sandbox, hook, push, new_event):
    await push(new_event())
    contact = sandbox.contacts[0]
    body = ping(contact["id"], "contact.created", email="evil@attacker.example", name="Mallory")
    receipt = await verify(hook, body, {"token": TOKEN})

    drafts = await hook("journeyhub_handle_webhook", webhook=stored(body, receipt))

    (draft,) = drafts
    assert draft.type == "client_updated"
    assert draft.source_event_id == f"contact.created:{contact['id']}"
    assert draft.client_id == "cl_001"
    assert draft.client_email == "ada@example.com"
    assert draft.vendor_record_id == contact["id"]
    assert draft.data["name"] == "Ada Lovelace"


async def test_job_ping_is_a_project_status_change(sandbox, hook, push, new_event):
    await push(new_event())
    job = sandbox.jobs[0]
    body = ping(job["id"], "job.created")
    receipt = await verify(hook, body, {"token": TOKEN})

    (draft,) = await hook("journeyhub_handle_webhook", webhook=stored(body, receipt))

    assert draft.type == "project_status_changed"
    assert (draft.client_id, draft.client_email) == ("cl_001", "ada@example.com")
    assert draft.data["wedding_date"] == "2026-06-20"
    assert draft.data["journey_instance_id"] == "ji_001"


@pytest.mark.parametrize(
    ("status", "trigger"),
    [("posted", "payment_received"), ("failed", "payment_failed"), ("future", None)],
)
async def test_payment_ping_uses_the_fetched_amount(
    sandbox, hook, push, new_event, status, trigger
):
    await push(new_event())
    payment = sandbox.add_payment(sandbox.jobs[0]["id"], amount=250000, status=status)
    body = ping(payment["id"], "payment.created", amount=1)  # the body's amount is not trusted
    receipt = await verify(hook, body, {"token": TOKEN})

    drafts = await hook("journeyhub_handle_webhook", webhook=stored(body, receipt))

    if trigger is None:
        assert drafts == []
        return
    (draft,) = drafts
    assert (draft.type, draft.data["amount"], draft.client_id) == (trigger, 250000, "cl_001")


async def test_pings_for_vanished_records_and_unknown_events(sandbox, hook):
    body = ping("01gone00000000000000000000", "contact.created")
    receipt = await verify(hook, body, {"token": TOKEN})
    assert await hook("journeyhub_handle_webhook", webhook=stored(body, receipt)) == []

    order = ping("01order0000000000000000000", "order.booked")
    receipt = await verify(hook, order, {"token": TOKEN})
    assert await hook("journeyhub_handle_webhook", webhook=stored(order, receipt)) == []

    unknown = ping("01abc")
    receipt = await verify(hook, unknown, {"token": TOKEN})
    assert receipt.event_type is None
    assert await hook("journeyhub_handle_webhook", webhook=stored(unknown, receipt)) is None


async def test_check_connection_reports_the_studio(sandbox, hook):
    assert "Sandbox Studio" in await hook("journeyhub_check_connection")
    with pytest.raises(ReauthRequired) as refused:
        await hook("journeyhub_check_connection", credentials={"api_key": "nope-nope-nope"})
    assert "nope-nope-nope" not in str(refused.value)


async def test_a_booked_order_is_the_booking_with_its_amount_and_date(
    sandbox, hook, push, new_event
):
    await push(new_event())
    order = sandbox.add_order(sandbox.jobs[0]["id"], total=480000, booked_on="2026-02-01")
    body = ping(order["id"], "order.booked")
    receipt = await verify(hook, body, {"token": TOKEN})

    (draft,) = await hook("journeyhub_handle_webhook", webhook=stored(body, receipt))

    assert (draft.type, draft.client_id, draft.vendor_record_id) == (
        "project_status_changed",
        "cl_001",
        sandbox.jobs[0]["id"],
    )
    assert {k: draft.data[k] for k in ("status", "amount", "date", "order_id")} == {
        "status": "booked",
        "amount": 480000,
        "date": "2026-02-01",
        "order_id": order["id"],
    }


async def pull_triggers(hook, cursor=None):
    """One sync run: its triggers and the cursor it ends with."""
    triggers, more = [], True
    while more:
        page = await hook("journeyhub_pull", cursor=cursor)
        triggers += page.triggers
        cursor, more = page.next_cursor, page.has_more
    return triggers, cursor


async def test_a_scheduled_payment_is_received_once_when_it_is_posted(
    sandbox, hook, push, new_event
):
    await push(new_event())
    sandbox.freeze()
    _, cursor = await pull_triggers(hook)  # the first run only sets the watermarks
    sandbox.advance(5)
    payment = sandbox.add_payment(sandbox.jobs[0]["id"], amount=120000, status="confirmed-future")
    body = ping(payment["id"], "payment.created")
    receipt = await verify(hook, body, {"token": TOKEN})
    assert await hook("journeyhub_handle_webhook", webhook=stored(body, receipt)) == []
    scheduled, cursor = await pull_triggers(hook, cursor)
    assert scheduled == []

    sandbox.advance(86400)
    sandbox.vendor_edit("payment", payment["id"], status="posted", received="2026-03-01")
    posted, cursor = await pull_triggers(hook, cursor)
    again, _ = await pull_triggers(hook, cursor)  # the watermark's second is read again

    (received,) = {(t.type, t.source_event_id) for t in posted + again}
    assert received == ("payment_received", f"payment:{payment['id']}:posted")
    draft = posted[0]
    assert (draft.data["amount"], draft.vendor_record_id) == (120000, sandbox.jobs[0]["id"])


async def test_a_posted_payment_has_one_source_id_by_hook_and_by_pull(
    sandbox, hook, push, new_event
):
    await push(new_event())
    sandbox.freeze()
    _, cursor = await pull_triggers(hook)
    sandbox.advance(5)
    payment = sandbox.add_payment(sandbox.jobs[0]["id"], amount=50000)
    body = ping(payment["id"], "payment.created")
    receipt = await verify(hook, body, {"token": TOKEN})

    (hooked,) = await hook("journeyhub_handle_webhook", webhook=stored(body, receipt))
    (pulled,), _ = await pull_triggers(hook, cursor)

    assert hooked.source_event_id == pulled.source_event_id == f"payment:{payment['id']}:posted"
    assert hooked.type == pulled.type == "payment_received"
