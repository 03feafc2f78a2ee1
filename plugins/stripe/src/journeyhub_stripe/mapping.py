"""Stripe events → trigger drafts. One function for webhooks and for pulled events, so the
same Stripe event always gives the same draft (and the kernel the same trigger id)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from journeyhub.kit import TriggerDraft

# Each mapped event type: its trigger, and where its object keeps the amount the trigger is
# about (minor units), the first one set.
MAPPED: dict[str, tuple[str, tuple[str, ...]]] = {
    "payment_intent.succeeded": ("payment_received", ("amount_received", "amount")),
    "checkout.session.completed": ("payment_received", ("amount_total",)),
    "payment_intent.payment_failed": ("payment_failed", ("amount",)),
    "invoice.payment_failed": ("payment_failed", ("amount_due", "amount_remaining")),
    "invoice.paid": ("invoice_paid", ("amount_paid",)),
    "charge.refunded": ("refund_issued", ("amount_refunded",)),
    "refund.created": ("refund_issued", ("amount",)),
}
EVENT_TYPES: tuple[str, ...] = tuple(MAPPED)
# Where the customer's email may be, by object type; the first one set wins.
_EMAIL_PATHS: tuple[tuple[str, ...], ...] = (
    ("receipt_email",),  # PaymentIntent, Charge
    ("customer_details", "email"),  # Checkout Session (what the customer typed)
    ("customer_email",),  # Checkout Session (prefilled), Invoice
    ("billing_details", "email"),  # Charge
)


def _get(obj: Any, *path: str) -> Any:
    for key in path:
        obj = obj.get(key) if isinstance(obj, dict) else None
    return obj


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _id_of(value: Any) -> str | None:
    """An id field that may come expanded (an object) or not (its id)."""
    return _text(value.get("id")) if isinstance(value, dict) else _text(value)


def occurred_at(created: Any) -> datetime | None:
    """A Stripe ``created`` (unix seconds) as a time, ``None`` when it is not one."""
    try:
        return datetime.fromtimestamp(created, UTC) if _int(created) is not None else None
    except (OverflowError, OSError, ValueError):
        return None


def _failure(obj: dict[str, Any]) -> dict[str, Any]:
    """Why a payment failed: a PaymentIntent's ``last_payment_error``. An Invoice carries no
    error of its own (it lives on its PaymentIntent): how far Stripe's retries have gone."""
    error = obj.get("last_payment_error")
    if isinstance(error, dict):
        why = {f"failure_{key}": _text(error.get(key)) for key in ("code", "message")}
        return why | {"decline_code": _text(error.get("decline_code"))}
    why = {key: _text(obj.get(key)) for key in ("failure_code", "failure_message")}
    return why | {key: obj.get(key) for key in ("attempt_count", "next_payment_attempt")}


def drafts_for_event(event: dict[str, Any]) -> list[TriggerDraft] | None:
    """The drafts for one Stripe event: ``None`` for a type we do not map, ``[]`` for a
    mapped type that is not (yet) what the trigger means."""
    event_id, event_type = _text(event.get("id")), _text(event.get("type")) or ""
    if event_type not in MAPPED or event_id is None:
        return None
    trigger_type, amount_fields = MAPPED[event_type]
    obj = _get(event, "data", "object")
    obj = obj if isinstance(obj, dict) else {}
    kind = _text(obj.get("object")) or ""
    # A Checkout Session completes before delayed methods (bank debits) are paid; that
    # payment arrives later as checkout.session.async_payment_succeeded / payment_intent.
    if event_type == "checkout.session.completed" and obj.get("payment_status") != "paid":
        return []
    client_id = _text(_get(obj, "metadata", "client_id"))
    emails = (email for path in _EMAIL_PATHS if (email := _text(_get(obj, *path))))
    customer = _id_of(obj.get("customer"))
    if kind != event_type.rpartition(".")[0]:  # an object not of the event's type
        amount_fields = ("amount",)
    amounts = (_int(obj.get(field)) for field in amount_fields)
    data: dict[str, Any] = {
        "amount": next((amount for amount in amounts if amount is not None), None),
        "currency": _text(obj.get("currency")),
        "stripe_object_id": _text(obj.get("id")),
        "stripe_object_type": kind or None,
        "stripe_event_type": event_type,
        "customer": customer,
        "livemode": bool(event.get("livemode", False)),
        # The PaymentIntent behind the object: one payment can raise two events (its own and
        # checkout.session.completed); this tells a consumer they are the same money.
        "payment_intent": _id_of(obj.get("payment_intent"))
        or (_text(obj.get("id")) if kind == "payment_intent" else None),
    }
    if kind == "refund":
        data["charge"] = _id_of(obj.get("charge"))
    if trigger_type == "payment_failed":
        data.update(_failure(obj))
    draft = TriggerDraft(
        type=trigger_type,  # type: ignore[arg-type]
        source_event_id=event_id,
        occurred_at=occurred_at(event.get("created")),
        client_id=client_id,
        client_email=None if client_id else next(emails, None),
        vendor_record_id=customer,
        data=data,
    )
    return [draft]
