"""17hats' Zapier triggers New Contact and Updated Contact, as the user's Zaps POST them to
journeyhub → ``client_updated`` drafts. Field names are matched after normalisation and
through aliases, so 17hats' own labels ("Primary E-mail Address") work too."""

from __future__ import annotations

from journeyhub.connectors.zapier import ZapierInbound, parse_when, pick
from journeyhub.model import TriggerDraft

TRIGGERS: dict[str, str] = {
    "new_contact": "created",
    "contact_created": "created",
    "updated_contact": "updated",
    "contact_updated": "updated",
}
# Each update of one contact is its own event (the bridge adds its updated_at or a digest).
VERSIONED = frozenset({"updated_contact", "contact_updated"})
EVENT_TYPES: tuple[str, ...] = ("new_contact", "updated_contact")

EMAIL = (
    "primary_email",
    "primary_e_mail_address",
    "primary_email_address",
    "email",
    "email_address",
)
PHONE = ("primary_phone", "primary_phone_number", "phone", "phone_number")


def drafts(inbound: ZapierInbound) -> list[TriggerDraft] | None:
    change = TRIGGERS.get(inbound.trigger)
    if change is None:
        return None
    f = inbound.fields
    first, last = pick(f, "first_name"), pick(f, "last_name")
    name = pick(f, "name", "full_name") or " ".join(p for p in (first, last) if p) or None
    email = pick(f, *EMAIL)
    return [
        TriggerDraft(
            type="client_updated",
            source_event_id=inbound.event_id,
            occurred_at=parse_when(pick(f, "updated_at", "created_at", "occurred_at")),
            client_id=pick(f, "journeyhub_client_id"),
            client_email=email.lower() if email else None,
            vendor_record_id=inbound.record_id,
            data={
                "change": change,
                "seventeenhats_contact_id": inbound.record_id,
                "name": name,
                "first_name": first,
                "last_name": last,
                "email": email,
                "phone": pick(f, *PHONE),
                "contact_type": pick(f, "type", "contact_type"),
                "company_name": pick(f, "company_name", "company"),
            },
        )
    ]
