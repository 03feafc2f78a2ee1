"""Stripe events → trigger drafts, through journeyhub_handle_webhook on stored bodies."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from journeyhub.errors import PermanentError
from journeyhub_stripe import plugin
from journeyhub_stripe.sandbox import (
    StripeSandbox,
    charge,
    checkout_session,
    invoice,
    payment_intent,
    refund,
)

CREATED = 1_748_779_200  # 2025-06-01T12:00:00Z


def handle(kit, event):
    body = json.dumps(event, indent=2).encode()
    return plugin.journeyhub_handle_webhook(webhook=kit.stored(body, event["id"], event["type"]))


CASES = [
    # event type, object, trigger, amount, email the draft should carry
    (
        "payment_intent.succeeded",
        payment_intent(120_000, "eur", customer="cus_A", receipt_email="a@example.com"),
        "payment_received",
        120_000,
        "a@example.com",
    ),
    (
        "checkout.session.completed",
        checkout_session(250_000, "usd", customer="cus_A", email="typed@example.com"),
        "payment_received",
        250_000,
        "typed@example.com",
    ),
    (
        "payment_intent.payment_failed",
        payment_intent(90_000, "gbp", customer="cus_A", receipt_email="a@example.com", failed=True),
        "payment_failed",
        90_000,
        "a@example.com",
    ),
    (
        "invoice.payment_failed",
        invoice(300_000, customer="cus_A", customer_email="inv@example.com", paid=False),
        "payment_failed",
        300_000,
        "inv@example.com",
    ),
    (
        "invoice.paid",
        invoice(300_000, customer="cus_A", customer_email="inv@example.com"),
        "invoice_paid",
        300_000,
        "inv@example.com",
    ),
    (
        "charge.refunded",
        charge(150_000, amount_refunded=40_000, customer="cus_A", email="card@example.com"),
        "refund_issued",
        40_000,
        "card@example.com",
    ),
    ("refund.created", refund(40_000, "usd"), "refund_issued", 40_000, None),
]


@pytest.mark.parametrize(
    "event_type, obj, trigger, amount, email", CASES, ids=[c[0] for c in CASES]
)
def test_each_mapped_type(kit, event_type, obj, trigger, amount, email):
    event = StripeSandbox().emit(event_type, obj, created=CREATED)
    [draft] = handle(kit, event)
    assert draft.type == trigger
    assert draft.source_event_id == event["id"]
    assert draft.occurred_at == datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
    assert draft.client_id is None
    assert draft.client_email == email
    assert draft.data["amount"] == amount
    assert draft.data["currency"] == obj["currency"]
    assert draft.data["stripe_object_id"] == obj["id"]
    assert draft.data["stripe_object_type"] == obj["object"]
    assert draft.data["livemode"] is False
    customer = obj.get("customer")
    assert draft.data["customer"] == customer
    assert draft.vendor_record_id == customer


def test_payment_intent_failure_says_why(kit):
    event = StripeSandbox().emit("payment_intent.payment_failed", payment_intent(failed=True))
    [draft] = handle(kit, event)
    assert draft.data["failure_code"] == "card_declined"
    assert draft.data["decline_code"] == "insufficient_funds"
    assert draft.data["failure_message"] == "Your card has insufficient funds."


def test_invoice_failure_says_how_far_retries_went(kit):
    obj = invoice(paid=False)
    [draft] = handle(kit, StripeSandbox().emit("invoice.payment_failed", obj))
    assert draft.data["attempt_count"] == 1
    assert draft.data["next_payment_attempt"] == obj["next_payment_attempt"]
    assert draft.data["amount"] == obj["amount_due"]


def test_client_id_from_metadata_wins_over_email(kit):
    obj = payment_intent(receipt_email="a@example.com", metadata={"client_id": "cli_42"})
    [draft] = handle(kit, StripeSandbox().emit("payment_intent.succeeded", obj))
    assert draft.client_id == "cli_42"
    assert draft.client_email is None


def test_checkout_email_falls_back_to_the_prefilled_one(kit):
    obj = checkout_session(email=None)
    obj["customer_email"] = "prefilled@example.com"
    [draft] = handle(kit, StripeSandbox().emit("checkout.session.completed", obj))
    assert draft.client_email == "prefilled@example.com"


def test_expanded_customer_object_gives_its_id(kit):
    obj = invoice()
    obj["customer"] = {"id": "cus_expanded", "object": "customer"}
    [draft] = handle(kit, StripeSandbox().emit("invoice.paid", obj))
    assert draft.vendor_record_id == "cus_expanded"


def test_unpaid_checkout_is_known_but_not_a_payment_yet(kit):
    obj = checkout_session(payment_status="unpaid")  # e.g. a bank debit still processing
    assert handle(kit, StripeSandbox().emit("checkout.session.completed", obj)) == []


@pytest.mark.parametrize("event_type", ["customer.created", "payment_intent.created", "ping"])
def test_unknown_type_is_none(kit, event_type):
    assert handle(kit, StripeSandbox().emit(event_type, {"id": "x", "object": "y"})) is None


def test_an_event_without_its_object_still_maps_without_crashing(kit):
    [draft] = handle(kit, {"id": "evt_bare", "type": "invoice.paid"})
    assert draft.source_event_id == "evt_bare"
    assert draft.data["amount"] is None
    assert draft.occurred_at is None


def test_a_stored_body_that_is_not_json_is_permanent(kit):
    with pytest.raises(PermanentError):
        plugin.journeyhub_handle_webhook(webhook=kit.stored(b"not json"))
