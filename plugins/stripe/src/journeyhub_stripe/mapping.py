"""Stripe events → trigger drafts. One function for webhooks and for pulled events, so the
same Stripe event always gives the same draft (and the kernel the same trigger id)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from journeyhub.model import TriggerDraft

TRIGGER_FOR_EVENT: dict[str, str] = {
    "payment_intent.succeeded": "payment_received",
    "checkout.session.completed": "payment_received",
    "payment_intent.payment_failed": "payment_failed",
    "invoice.payment_failed": "payment_failed",
    "invoice.paid": "invoice_paid",
    "charge.refunded": "refund_issued",
    "refund.created": "refund_issued",
}
EVENT_TYPES: tuple[str, ...] = tuple(TRIGGER_FOR_EVENT)

# Where each object type keeps the amount that the trigger is about (minor units).
_AMOUNT_FIELDS: dict[tuple[str, str], tuple[str, ...]] = {
    ("payment_intent", "payment_intent.succeeded"): ("amount_received", "amount"),
    ("payment_intent", "payment_intent.payment_failed"): ("amount",),
    ("checkout.session", "checkout.session.completed"): ("amount_total",),
    ("invoice", "invoice.paid"): ("amount_paid",),
    ("invoice", "invoice.payment_failed"): ("amount_due", "amount_remaining"),
    ("charge", "charge.refunded"): ("amount_refunded",),
    ("refund", "refund.created"): ("amount",),
}
# Where the customer's email may be, by object type; the first one set wins.
_EMAIL_PATHS: tuple[tuple[str, ...], ...] = (
    ("receipt_email",),  # PaymentIntent, Charge
    ("customer_details", "email"),  # Checkout Session (what the customer typed)
    ("customer_email",),  # Checkout Session (prefilled), Invoice
    ("billing_details", "email"),  # Charge
)


def _get(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _id_of(value: Any) -> str | None:
    """An id field that may come expanded (an object) or not (its id)."""
    return _text(value.get("id")) if isinstance(value, dict) else _text(value)


def _amount(obj: dict[str, Any], object_type: str, event_type: str) -> int | None:
    for field in _AMOUNT_FIELDS.get((object_type, event_type), ("amount",)):
        value = obj.get(field)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _occurred_at(created: Any) -> datetime | None:
    if isinstance(created, int) and not isinstance(created, bool):
        try:
            return datetime.fromtimestamp(created, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    return None


def _failure(obj: dict[str, Any]) -> dict[str, Any]:
    """Why a payment failed, from whichever field this object type has."""
    error = obj.get("last_payment_error")  # PaymentIntent
    if isinstance(error, dict):
        return {
            "failure_code": _text(error.get("code")),
            "failure_message": _text(error.get("message")),
            "decline_code": _text(error.get("decline_code")),
        }
    # An Invoice carries no error of its own (it lives on its PaymentIntent); say how far
    # Stripe's retries have gone instead.
    return {
        "failure_code": _text(obj.get("failure_code")),
        "failure_message": _text(obj.get("failure_message")),
        "attempt_count": obj.get("attempt_count"),
        "next_payment_attempt": obj.get("next_payment_attempt"),
    }


def drafts_for_event(event: dict[str, Any]) -> list[TriggerDraft] | None:
    """The drafts for one Stripe event: ``None`` for a type we do not map, ``[]`` for a
    mapped type that is not (yet) what the trigger means."""
    event_id, event_type = _text(event.get("id")), _text(event.get("type"))
    trigger_type = TRIGGER_FOR_EVENT.get(event_type) if event_type else None
    if trigger_type is None or event_id is None:
        return None
    obj = _get(event, "data", "object")
    obj = obj if isinstance(obj, dict) else {}
    object_type = _text(obj.get("object")) or ""
    # A Checkout Session completes before delayed methods (bank debits) are paid; that
    # payment arrives later as checkout.session.async_payment_succeeded / payment_intent.
    if event_type == "checkout.session.completed" and obj.get("payment_status") != "paid":
        return []

    metadata = obj.get("metadata")
    client_id = _text(metadata.get("client_id")) if isinstance(metadata, dict) else None
    client_email = None
    if client_id is None:
        client_email = next(
            (e for p in _EMAIL_PATHS if (e := _text(_get(obj, *p))) is not None), None
        )
    customer = _id_of(obj.get("customer"))
    data: dict[str, Any] = {
        "amount": _amount(obj, object_type, event_type),
        "currency": _text(obj.get("currency")),
        "stripe_object_id": _text(obj.get("id")),
        "stripe_object_type": object_type or None,
        "stripe_event_type": event_type,
        "customer": customer,
        "livemode": bool(event.get("livemode", False)),
        # The PaymentIntent behind the object: one payment can raise more than one event
        # (payment_intent.succeeded and checkout.session.completed); this lets a consumer
        # tell they are the same money.
        "payment_intent": _id_of(obj.get("payment_intent"))
        or (_text(obj.get("id")) if object_type == "payment_intent" else None),
    }
    if object_type == "refund":
        data["charge"] = _id_of(obj.get("charge"))
    if trigger_type == "payment_failed":
        data.update(_failure(obj))
    return [
        TriggerDraft(
            type=trigger_type,  # type: ignore[arg-type]
            source_event_id=event_id,
            occurred_at=_occurred_at(event.get("created")),
            client_id=client_id,
            client_email=client_email,
            vendor_record_id=customer,
            data=data,
        )
    ]
