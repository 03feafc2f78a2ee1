"""Zaps POST HoneyBook's triggers to journeyhub: verified over HTTP, then turned into drafts."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest
from journeyhub_honeybook.sandbox import HoneyBookSandbox as HB


async def test_three_triggers_become_three_drafts(sandbox, gateway, hook, http):
    for data in (HB.client_created(), HB.project_booked(), HB.payment_paid()):
        answer = await sandbox.send(http, gateway.url, data)
        assert answer.status_code == 200, answer.text
    assert [w.event_id for w in gateway.accepted] == [
        "client_created:hb_client_1",
        "project_booked:hb_project_1",
        "payment_paid:hb_payment_1",
    ]
    assert all("x-journeyhub-token" not in w.headers for w in gateway.accepted)
    drafts = [await hook("journeyhub_handle_webhook", webhook=w) for w in gateway.accepted]
    [client], [project], [payment] = drafts

    assert client.type == "client_updated"
    assert client.source_event_id == "client_created:hb_client_1"
    assert client.vendor_record_id == "hb_client_1" and client.client_email == "ada@example.com"
    assert client.occurred_at == datetime(2026, 3, 1, 12, tzinfo=UTC)
    assert client.data["change"] == "created" and client.data["client_name"] == "Ada Lovelace"

    assert project.type == "project_status_changed"
    assert project.data["status"] == "booked"
    assert project.data["project_name"] == "Ada & Charles"
    assert project.data["project_date"] == "2026-09-12"
    assert project.data["honeybook_project_id"] == "hb_project_1"
    assert project.occurred_at == datetime(2026, 3, 2, 9, 30, tzinfo=UTC)

    assert payment.type == "payment_received"
    assert payment.source_event_id == "honeybook:payment:hb_payment_1"
    assert payment.data["amount"] == 150000 and payment.data["currency"] == "USD"
    assert payment.data["amount_display"] == "$1,500.00"
    assert payment.data["invoice"] == "Invoice #1001"
    assert payment.client_email == "ada@example.com"
    assert payment.occurred_at == datetime(2026, 3, 3, 15, tzinfo=UTC)


async def test_token_in_the_url_and_form_payloads_work(sandbox, gateway, hook, http):
    answer = await sandbox.send(
        http, gateway.url, HB.payment_paid(amount="250"), auth_in="query", payload_type="form"
    )
    assert answer.status_code == 200, answer.text
    [payment] = await hook("journeyhub_handle_webhook", webhook=gateway.accepted[0])
    assert payment.data["amount"] == 25000


@pytest.mark.parametrize(
    ("token", "reason"),
    [("", "missing_signature"), ("whsec_d3JvbmctdG9rZW4tZm9yLXRlc3Q=", "bad_token")],
)
async def test_wrong_or_missing_tokens_are_refused(sandbox, gateway, http, token, reason):
    answer = await sandbox.send(http, gateway.url, HB.payment_paid(), token=token)
    assert answer.status_code == 401 and answer.json() == {"reason": reason}
    assert not gateway.accepted


async def test_a_body_without_a_trigger_is_refused(sandbox, gateway, http):
    answer = await sandbox.send(http, gateway.url, {"id": "x", "amount": "1"})
    assert answer.status_code == 401 and answer.json() == {"reason": "bad_body"}


async def test_hand_made_zaps_with_honeybook_labels_are_understood(hook, new_stored):
    body = msgspec.json.encode(
        {
            "Trigger": "New Payment Paid",
            "ID": "p77",
            "Client Email": "Grace@Example.com",
            "Amount Paid": "(1,000.50)",
            "Payment Date": "03/10/2026",
            "Currency": "cad",
        }
    )
    [payment] = await hook("journeyhub_handle_webhook", webhook=new_stored(body, None))
    assert payment.source_event_id == "honeybook:payment:p77"
    assert payment.data["amount"] == -100050 and payment.data["currency"] == "CAD"
    assert payment.client_email == "grace@example.com"
    assert payment.occurred_at == datetime(2026, 3, 10, tzinfo=UTC)


async def test_an_unreadable_amount_is_kept_as_sent(hook, new_stored):
    body = msgspec.json.encode({"trigger": "payment_paid", "id": "p1", "amount": "a lot"})
    [payment] = await hook("journeyhub_handle_webhook", webhook=new_stored(body, None))
    assert payment.data["amount"] is None and payment.data["amount_display"] == "a lot"


async def test_the_trigger_may_come_from_the_stored_event_type(hook, new_stored):
    body = msgspec.json.encode({"id": "c5", "client_email": "x@example.com"})
    [draft] = await hook("journeyhub_handle_webhook", webhook=new_stored(body, "client_created"))
    assert draft.type == "client_updated" and draft.vendor_record_id == "c5"


async def test_unknown_triggers_are_acknowledged_and_ignored(hook, new_stored):
    body = msgspec.json.encode({"trigger": "meeting_scheduled", "id": "m1"})
    assert await hook("journeyhub_handle_webhook", webhook=new_stored(body, None)) is None
