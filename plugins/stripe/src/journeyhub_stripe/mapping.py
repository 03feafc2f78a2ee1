"""Stripe events → trigger drafts. One function for webhooks and for pulled events, so the
same Stripe event always gives the same draft (and the kernel the same trigger id).

An event's ``data.object`` is rendered in the API version the event was created with (its
``api_version``: the webhook endpoint's version, or the account's default for ``/v1/events``),
whatever version a request pins. The fields read here are the same in every version from
:data:`OLDEST_UNDERSTOOD` to :data:`API_VERSION`; of the older Invoice shape, only
``paid_out_of_band`` is still read."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from journeyhub.kit import TriggerDraft

# The version our requests pin (``Stripe-Version``): the one stripe-python 16.1.0 pins.
API_VERSION = "2026-10-28.endive"
# Invoice lost ``payment_intent``, ``charge``, ``paid`` and ``paid_out_of_band`` in this one.
OLDEST_UNDERSTOOD = "2025-03-31.basil"

# Each mapped event type: its trigger, the type of its ``data.object``, and where that object
# keeps the amount the trigger is about (minor units), the first one set.
MAPPED: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "payment_intent.succeeded": (
        "payment_received",
        "payment_intent",
        ("amount_received", "amount"),
    ),
    "checkout.session.completed": ("payment_received", "checkout.session", ("amount_total",)),
    "checkout.session.async_payment_succeeded": (
        "payment_received",
        "checkout.session",
        ("amount_total",),
    ),
    "payment_intent.payment_failed": ("payment_failed", "payment_intent", ("amount",)),
    "payment_intent.canceled": ("payment_failed", "payment_intent", ("amount",)),
    "checkout.session.async_payment_failed": (
        "payment_failed",
        "checkout.session",
        ("amount_total",),
    ),
    "invoice.payment_failed": ("payment_failed", "invoice", ("amount_due", "amount_remaining")),
    "invoice.paid": ("invoice_paid", "invoice", ("amount_paid",)),
    "charge.refunded": ("refund_issued", "charge", ("amount_refunded",)),
    "refund.created": ("refund_issued", "refund", ("amount",)),
    "charge.refund.updated": ("refund_issued", "refund", ("amount",)),
    "charge.dispute.created": ("payment_disputed", "dispute", ("amount",)),
    "charge.dispute.updated": ("payment_disputed", "dispute", ("amount",)),
    "charge.dispute.closed": ("payment_disputed", "dispute", ("amount",)),
}
EVENT_TYPES: tuple[str, ...] = tuple(MAPPED)
# Where the customer's email may be, by object type; the first one set wins.
_EMAIL_PATHS: tuple[tuple[str, ...], ...] = (
    ("receipt_email",),  # PaymentIntent, Charge
    ("customer_details", "email"),  # Checkout Session (what the customer typed)
    ("customer_email",),  # Checkout Session (prefilled), Invoice
    ("billing_details", "email"),  # Charge
    ("evidence", "customer_email_address"),  # Dispute (once evidence names it)
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


def _paid_through_stripe(invoice: dict[str, Any]) -> bool:
    """Whether money paid through Stripe (a PaymentIntent) settled this invoice, rather than a
    payment recorded as made outside Stripe or credits alone."""
    if invoice.get("paid_out_of_band") is True:  # before 2025-03-31.basil
        return False
    paid, off_stripe = _int(invoice.get("amount_paid")), _int(invoice.get("amount_paid_off_stripe"))
    return (paid or 0) - (off_stripe or 0) > 0


def _failure(event_type: str, obj: dict[str, Any]) -> dict[str, Any]:
    """Why a payment failed. ``reason`` is ``canceled`` for a canceled PaymentIntent (with
    Stripe's ``cancellation_reason``), else ``failed``; a PaymentIntent's
    ``last_payment_error`` says why; an Invoice carries no error of its own (it lives on its
    PaymentIntent): how far Stripe's retries have gone."""
    canceled = event_type == "payment_intent.canceled"
    why: dict[str, Any] = {"reason": "canceled" if canceled else "failed"}
    if canceled:
        why["cancellation_reason"] = _text(obj.get("cancellation_reason"))
    error = obj.get("last_payment_error")
    if isinstance(error, dict):
        why |= {f"failure_{key}": _text(error.get(key)) for key in ("code", "message")}
        return why | {"decline_code": _text(error.get("decline_code"))}
    if obj.get("object") == "invoice":
        return why | {key: obj.get(key) for key in ("attempt_count", "next_payment_attempt")}
    return why


def _about(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    """What a refund or a dispute adds: its state, so a failed refund or a lost dispute is
    told apart from a good one."""
    if kind == "refund":
        return {key: _text(obj.get(key)) for key in ("status", "failure_reason", "reason")}
    if kind == "dispute":
        return {
            "status": _text(obj.get("status")),
            "reason": _text(obj.get("reason")),
            "evidence_due_by": _int(_get(obj, "evidence_details", "due_by")),
        }
    return {}


def drafts_for_event(event: dict[str, Any]) -> list[TriggerDraft] | None:
    """The drafts for one Stripe event: ``None`` for a type we do not map, ``[]`` for a
    mapped type that is not (yet) what the trigger means."""
    event_id, event_type = _text(event.get("id")), _text(event.get("type")) or ""
    if event_type not in MAPPED or event_id is None:
        return None
    trigger_type, expected_kind, amount_fields = MAPPED[event_type]
    obj = _get(event, "data", "object")
    obj = obj if isinstance(obj, dict) else {}
    kind = _text(obj.get("object")) or ""
    # A Checkout Session completes before delayed methods (bank debits) are paid; that
    # payment arrives later as checkout.session.async_payment_succeeded / payment_intent.
    if event_type == "checkout.session.completed" and obj.get("payment_status") != "paid":
        return []
    # One invoice payment, one trigger. Paying an invoice through Stripe raises
    # payment_intent.succeeded (the money: payment_received) and invoice.paid. Since
    # 2025-03-31.basil a PaymentIntent no longer names its invoice, so only the invoice can
    # tell the two apart: invoice.paid is left out whenever Stripe money settled the invoice,
    # and gives invoice_paid only when no PaymentIntent did (paid outside Stripe, or credits).
    if event_type == "invoice.paid" and _paid_through_stripe(obj):
        return []
    client_id = _text(_get(obj, "metadata", "client_id"))
    emails = (email for path in _EMAIL_PATHS if (email := _text(_get(obj, *path))))
    customer = _id_of(obj.get("customer"))
    if kind != expected_kind:  # an object not of the event's type
        amount_fields = ("amount",)
    amounts = (_int(obj.get(field)) for field in amount_fields)
    data: dict[str, Any] = {
        "amount": next((amount for amount in amounts if amount is not None), None),
        "currency": _text(obj.get("currency")),
        "stripe_object_id": _text(obj.get("id")),
        "stripe_object_type": kind or None,
        "stripe_event_type": event_type,
        "stripe_api_version": _text(event.get("api_version")),
        "customer": customer,
        "livemode": bool(event.get("livemode", False)),
        # The PaymentIntent behind the object: one payment can raise two events (its own and
        # checkout.session.completed); this tells a consumer they are the same money.
        "payment_intent": _id_of(obj.get("payment_intent"))
        or (_text(obj.get("id")) if kind == "payment_intent" else None),
    }
    if kind in ("refund", "dispute"):
        data["charge"] = _id_of(obj.get("charge"))
    if trigger_type == "payment_failed":
        data.update(_failure(event_type, obj))
    data.update(_about(kind, obj))
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
