"""Stripe events → trigger drafts, through journeyhub_handle_webhook on stored bodies, with
objects in the pinned API version's shape (the sandbox's factories)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from journeyhub.errors import PermanentError
from journeyhub_stripe import plugin
from journeyhub_stripe.mapping import API_VERSION
from journeyhub_stripe.sandbox import (
    StripeSandbox,
    charge,
    checkout_session,
    dispute,
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
        invoice(300_000, customer="cus_A", customer_email="inv@example.com", off_stripe=True),
        "invoice_paid",
        300_000,
        "inv@example.com",
    ),
    (
        "checkout.session.async_payment_succeeded",
        checkout_session(80_000, "eur", customer="cus_A", email="sepa@example.com"),
        "payment_received",
        80_000,
        "sepa@example.com",
    ),
    (
        "checkout.session.async_payment_failed",
        checkout_session(80_000, "eur", email="sepa@example.com", payment_status="unpaid"),
        "payment_failed",
        80_000,
        "sepa@example.com",
    ),
    (
        "payment_intent.canceled",
        payment_intent(60_000, customer="cus_A", receipt_email="a@example.com", canceled="expired"),
        "payment_failed",
        60_000,
        "a@example.com",
    ),
    ("charge.dispute.created", dispute(150_000), "payment_disputed", 150_000, None),
    (
        "charge.dispute.updated",
        dispute(150_000, status="under_review"),
        "payment_disputed",
        150_000,
        None,
    ),
    ("charge.dispute.closed", dispute(150_000, status="lost"), "payment_disputed", 150_000, None),
    (
        "charge.refund.updated",
        refund(
            40_000, customer="cus_A", status="failed", failure_reason="expired_or_canceled_card"
        ),
        "refund_issued",
        40_000,
        None,
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
    assert draft.data["stripe_api_version"] == API_VERSION
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
    obj = invoice(paid=False)
    obj["customer"] = {"id": "cus_expanded", "object": "customer"}
    [draft] = handle(kit, StripeSandbox().emit("invoice.payment_failed", obj))
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


def test_every_mapped_type_has_a_case():
    assert {case[0] for case in CASES} == set(plugin.EVENT_TYPES)


def test_a_canceled_payment_intent_is_a_failure_that_says_canceled(kit):
    obj = payment_intent(canceled="requested_by_customer")
    [draft] = handle(kit, StripeSandbox().emit("payment_intent.canceled", obj))
    assert draft.type == "payment_failed"
    assert draft.data["reason"] == "canceled"
    assert draft.data["cancellation_reason"] == "requested_by_customer"
    [declined] = handle(
        kit, StripeSandbox().emit("payment_intent.payment_failed", payment_intent(failed=True))
    )
    assert declined.data["reason"] == "failed"


def test_a_failed_refund_is_told_apart_from_a_good_one(kit):
    sandbox = StripeSandbox()
    charge_id = "ch_refunded"
    failed = refund(status="failed", failure_reason="lost_or_stolen_card", charge_id=charge_id)
    [bad] = handle(kit, sandbox.emit("charge.refund.updated", failed))
    [good] = handle(kit, sandbox.emit("charge.refund.updated", refund(charge_id=charge_id)))
    assert (bad.data["status"], bad.data["failure_reason"]) == ("failed", "lost_or_stolen_card")
    assert (good.data["status"], good.data["failure_reason"]) == ("succeeded", None)
    assert bad.data["charge"] == good.data["charge"] == charge_id


def test_a_dispute_carries_its_status_amount_reason_and_payment(kit):
    obj = dispute(75_000, "gbp", status="warning_needs_response", reason="product_not_received")
    [draft] = handle(kit, StripeSandbox().emit("charge.dispute.created", obj))
    assert draft.type == "payment_disputed"
    assert draft.data["status"] == "warning_needs_response"
    assert draft.data["reason"] == "product_not_received"
    assert (draft.data["amount"], draft.data["currency"]) == (75_000, "gbp")
    assert draft.data["charge"] == obj["charge"]
    assert draft.data["payment_intent"] == obj["payment_intent"]
    assert draft.data["evidence_due_by"] == obj["evidence_details"]["due_by"]


def test_an_invoice_paid_through_stripe_gives_no_second_trigger(kit):
    # Its PaymentIntent's payment_intent.succeeded is the payment_received for that money.
    assert handle(kit, StripeSandbox().emit("invoice.paid", invoice())) == []


def test_an_invoice_paid_outside_stripe_in_an_older_shape_is_still_invoice_paid(kit):
    obj = invoice(off_stripe=True)
    del obj["amount_paid_off_stripe"]
    obj["paid_out_of_band"] = True  # how versions before 2025-03-31.basil said it
    event = StripeSandbox().emit("invoice.paid", obj, api_version="2024-06-20")
    [draft] = handle(kit, event)
    assert draft.type == "invoice_paid"
    assert draft.data["stripe_api_version"] == "2024-06-20"
