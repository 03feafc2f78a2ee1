"""HoneyBook's Zapier triggers, as the user's Zaps POST them to journeyhub → trigger drafts.

A Zap is "HoneyBook trigger → Webhooks by Zapier POST" with the README's fields, matched after
normalisation and through aliases: HoneyBook's own labels ("Client Email", "Amount") work too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from journeyhub.connectors.zapier import ZapierInbound, parse_when, pick
from journeyhub.kit import TriggerDraft, TriggerType

from journeyhub_honeybook.values import optional_minor_units

if TYPE_CHECKING:
    from journeyhub_honeybook.plugin import HoneyBookConfig

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
AMOUNT = ("amount", "amount_paid", "payment_amount", "total_paid", "total")
INVOICE = ("invoice", "invoice_number", "invoice_id", "invoice_name")
PAID_AT = ("paid_at", "payment_date", "date_paid", "paid_on")
CLIENT_ID = ("honeybook_client_id", "hb_client_id")  # HoneyBook's id of the client


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


def drafts(inbound: ZapierInbound, config: HoneyBookConfig) -> list[TriggerDraft] | None:
    """The drafts for one Zap POST; ``None`` for a trigger this connector does not know."""
    trigger = TRIGGERS.get(inbound.trigger)
    if trigger is None:
        return None
    f, record_id, source_id = inbound.fields, inbound.record_id, inbound.event_id
    client = {
        "client_name": pick(f, *NAME),
        "client_email": pick(f, *EMAIL),
        "client_phone": pick(f, *PHONE),
    }
    vendor_record_id = pick(f, *CLIENT_ID)
    kind: TriggerType
    when: tuple[str, ...]
    if trigger == "client_created":
        kind, when, vendor_record_id = "client_updated", ("created_at",), record_id
        data = {**client, "change": "created", "honeybook_client_id": record_id}
    elif trigger == "project_booked":
        kind, when = "project_status_changed", ("booked_at", "booking_date")
        data = {
            "status": "booked",
            "honeybook_project_id": record_id or pick(f, "project_id"),
            "project_name": pick(f, *PROJECT),
            "project_type": pick(f, "project_type", "event_type"),
            "project_date": _date(f, "project_date", "event_date"),
            "project_location": pick(f, "project_location", "location", "venue"),
            **client,
        }
    else:
        kind, when = "payment_received", PAID_AT
        source_id = payment_source_id(record_id) if record_id else source_id
        currency = (pick(f, "currency") or config.currency).upper()
        amount_text = pick(f, *AMOUNT)
        data = {
            # None when unreadable, kept as sent in amount_display: a Zap mapping to fix
            "amount": optional_minor_units(amount_text, currency),
            "currency": currency,
            "amount_display": amount_text,
            "honeybook_payment_id": record_id,
            "invoice": pick(f, *INVOICE),
            "payment_method": pick(f, "payment_method", "method"),
            "project_name": pick(f, *PROJECT),
            "client_name": client["client_name"],
            "source": "zapier",
        }
    email = client["client_email"]
    return [
        TriggerDraft(
            type=kind,
            source_event_id=source_id,
            occurred_at=parse_when(pick(f, *when, "occurred_at")),
            client_id=pick(f, "journeyhub_client_id"),
            client_email=email.lower() if email else None,
            vendor_record_id=vendor_record_id,
            data=data,
        )
    ]
