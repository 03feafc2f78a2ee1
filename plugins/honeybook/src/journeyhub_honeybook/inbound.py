"""HoneyBook's Zapier triggers, as the user's Zaps POST them to journeyhub → trigger drafts.

A Zap is "HoneyBook trigger → Webhooks by Zapier POST" with the fields documented in the
README. Field names are matched after normalisation and through a few aliases, so a Zap set up
by hand with HoneyBook's own labels ("Client Email", "Amount") works as well.
"""

from __future__ import annotations

from typing import Any

from journeyhub.connectors.zapier import ZapierInbound, parse_when, pick
from journeyhub.model import TriggerDraft

from journeyhub_honeybook.values import minor_units

# The trigger names a Zap may send (normalised), by the HoneyBook trigger they stand for.
TRIGGERS: dict[str, str] = {
    "client_created": "client_created",
    "new_client": "client_created",
    "project_booked": "project_booked",
    "new_project_booked": "project_booked",
    "payment_paid": "payment_paid",
    "new_payment_paid": "payment_paid",
    "new_payment": "payment_paid",
}
EVENT_TYPES: tuple[str, ...] = ("client_created", "project_booked", "payment_paid")

EMAIL = ("client_email", "email", "client_email_address", "email_address", "customer_email")
NAME = ("client_name", "client_full_name", "full_name", "name", "customer_name")
PHONE = ("client_phone", "phone_number", "phone", "client_phone_number")
PROJECT = ("project_name", "project_title", "project")
PROJECT_ID = ("project_id",)
PROJECT_TYPE = ("project_type", "event_type")
PROJECT_DATE = ("project_date", "event_date")
LOCATION = ("project_location", "location", "venue")
AMOUNT = ("amount", "amount_paid", "payment_amount", "total_paid", "total")
INVOICE = ("invoice", "invoice_number", "invoice_id", "invoice_name")
METHOD = ("payment_method", "method")
CLIENT_ID = ("honeybook_client_id", "hb_client_id")  # HoneyBook's id of the client
OUR_CLIENT_ID = ("journeyhub_client_id",)


def payment_source_id(payment_id: str) -> str:
    """One payment's source id, whether it came by webhook or from the payments report, so
    importing a report after the webhook makes no second trigger."""
    return f"honeybook:payment:{payment_id}"


def _date(fields: dict[str, Any], *names: str) -> str | None:
    """An ISO date (or time) for ``data``; the text as sent when it cannot be read."""
    text = pick(fields, *names)
    moment = parse_when(text)
    if moment is None or text is None:
        return text
    return moment.isoformat() if ":" in text else moment.date().isoformat()


def _client(fields: dict[str, Any]) -> dict[str, Any]:
    return {
        "client_name": pick(fields, *NAME),
        "client_email": pick(fields, *EMAIL),
        "client_phone": pick(fields, *PHONE),
    }


def drafts(inbound: ZapierInbound, currency: str) -> list[TriggerDraft] | None:
    """The drafts for one Zap POST; ``None`` for a trigger this connector does not know."""
    kind = TRIGGERS.get(inbound.trigger)
    if kind is None:
        return None
    f = inbound.fields
    email = pick(f, *EMAIL)
    common: dict[str, Any] = {
        "client_email": email.lower() if email else None,
        "client_id": pick(f, *OUR_CLIENT_ID),
    }
    if kind == "client_created":
        return [
            TriggerDraft(
                type="client_updated",
                source_event_id=inbound.event_id,
                occurred_at=parse_when(pick(f, "created_at", "occurred_at")),
                vendor_record_id=inbound.record_id,
                data={**_client(f), "change": "created", "honeybook_client_id": inbound.record_id},
                **common,
            )
        ]
    if kind == "project_booked":
        return [
            TriggerDraft(
                type="project_status_changed",
                source_event_id=inbound.event_id,
                occurred_at=parse_when(pick(f, "booked_at", "booking_date", "occurred_at")),
                vendor_record_id=pick(f, *CLIENT_ID),
                data={
                    "status": "booked",
                    "honeybook_project_id": inbound.record_id or pick(f, *PROJECT_ID),
                    "project_name": pick(f, *PROJECT),
                    "project_type": pick(f, *PROJECT_TYPE),
                    "project_date": _date(f, *PROJECT_DATE),
                    "project_location": pick(f, *LOCATION),
                    **_client(f),
                },
                **common,
            )
        ]
    currency = (pick(f, "currency") or currency).upper()
    amount_text = pick(f, *AMOUNT)
    try:
        amount = minor_units(amount_text, currency) if amount_text else None
    except ValueError:
        amount = None  # kept as sent in amount_display: a Zap mapping to fix, not a lost payment
    return [
        TriggerDraft(
            type="payment_received",
            source_event_id=(
                payment_source_id(inbound.record_id) if inbound.record_id else inbound.event_id
            ),
            occurred_at=parse_when(
                pick(f, "paid_at", "payment_date", "date_paid", "paid_on", "occurred_at")
            ),
            vendor_record_id=pick(f, *CLIENT_ID),
            data={
                "amount": amount,
                "currency": currency,
                "amount_display": amount_text,
                "honeybook_payment_id": inbound.record_id,
                "invoice": pick(f, *INVOICE),
                "payment_method": pick(f, *METHOD),
                "project_name": pick(f, *PROJECT),
                "client_name": pick(f, *NAME),
                "source": "zapier",
            },
            **common,
        )
    ]
