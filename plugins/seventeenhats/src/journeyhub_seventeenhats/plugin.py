"""The ``seventeenhats`` connector: 17hats has no public API; its Zapier app covers contacts
only, so contacts go both ways through the user's Zaps by way of the Zapier bridge.

Out: ``journey_started`` / ``client_updated`` → one ``upsert_contact`` action: the Zap finds the
contact by email ("Find Contact", create if not found), then updates it (README). The envelope
id comes from the delivery's idempotency key, and an upsert by email is idempotent by nature,
so even a Zap without a dedupe step makes one contact. In: the New Contact and Updated Contact
triggers, POSTed by Zaps → ``client_updated``; field names are matched after normalisation and
through aliases, so 17hats' own labels ("Primary E-mail Address") work too.
"""

from __future__ import annotations

from typing import Any, ClassVar

from journeyhub.connectors.zapier import ZapierConfig, ZapierInbound, parse_when, pick
from journeyhub.kit import FieldMapping, JourneyEvent, PermanentError, TriggerDraft, ZapierBridge

ACTION = "upsert_contact"


class SeventeenHatsConfig(ZapierConfig, kw_only=True):
    ACTIONS: ClassVar[tuple[str, ...]] = (ACTION,)


_NOTES = (
    "{% if event.wedding and event.wedding.date %}Wedding: {{ event.wedding.date }}"
    "{% set v = event.wedding.venue %}{% if v and v.name %} at {{ v.name }}{% endif %}"
    "{% endif %}"
)
# Targets: "contact.*", the fields of the upsert_contact envelope (README: which 17hats field
# each one fills in the Zap).
DEFAULT_FIELD_MAPPINGS: tuple[FieldMapping, ...] = (
    FieldMapping(source="client.name", target="contact.first_name", transform="first_name"),
    FieldMapping(source="client.name", target="contact.last_name", transform="last_name"),
    FieldMapping(source="client.email", target="contact.primary_email", transform="strip"),
    FieldMapping(source="client.phone", target="contact.primary_phone", transform="strip"),
    # 17hats requires a contact Type; "Client" is assumed to be one of its values.
    FieldMapping(source="data.contact_type", target="contact.type", default="Client"),
    FieldMapping(
        source="wedding.date",
        target="contact.notes",
        transform="template",
        options={"template": _NOTES},
    ),
)


def payloads(event: JourneyEvent, mapped: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The envelope's ``data``. Every key is always present (null when unknown): Zapier offers
    a field for mapping only once a sample carried it."""
    contact = mapped.get("contact") or {}
    email = contact.get("primary_email")
    if not email:
        raise PermanentError("17hats contacts are found by email: the client has none")
    data = {
        "journeyhub_client_id": event.client.id,
        "is_company": False,
        # 17hats requires a first name; an email-only client gets its email there.
        "first_name": contact.get("first_name") or email,
        "last_name": contact.get("last_name"),
        "type": contact.get("type"),
        "primary_email": email,
        "primary_phone": contact.get("primary_phone"),
        "notes": contact.get("notes"),
        "event": event.type,
    }
    return {ACTION: data}


CHANGES = {
    "new_contact": "created",
    "contact_created": "created",
    "updated_contact": "updated",
    "contact_updated": "updated",
}
# Each update of one contact is its own event (the bridge adds its updated_at or a digest).
VERSIONED = frozenset({"updated_contact", "contact_updated"})
EMAIL = ("primary_email", "primary_e_mail_address", "primary_email_address", "email")
PHONE = ("primary_phone", "primary_phone_number", "phone", "phone_number")


def drafts(inbound: ZapierInbound, config: SeventeenHatsConfig) -> list[TriggerDraft] | None:
    change = CHANGES.get(inbound.trigger)
    if change is None:
        return None
    f = inbound.fields
    first, last = pick(f, "first_name"), pick(f, "last_name")
    name = pick(f, "name", "full_name") or " ".join(p for p in (first, last) if p) or None
    email = pick(f, *EMAIL, "email_address")
    data = {
        "change": change,
        "seventeenhats_contact_id": inbound.record_id,
        "name": name,
        "first_name": first,
        "last_name": last,
        "email": email,
        "phone": pick(f, *PHONE),
        "contact_type": pick(f, "type", "contact_type"),
        "company_name": pick(f, "company_name", "company"),
    }
    return [
        TriggerDraft(
            type="client_updated",
            source_event_id=inbound.event_id,
            occurred_at=parse_when(pick(f, "updated_at", "created_at", "occurred_at")),
            client_id=pick(f, "journeyhub_client_id"),
            client_email=email.lower() if email else None,
            vendor_record_id=inbound.record_id,
            data=data,
        )
    ]


plugin = ZapierBridge(
    vendor="seventeenhats",
    display_name="17hats (via Zapier)",
    config_schema=SeventeenHatsConfig,
    default_field_mappings=DEFAULT_FIELD_MAPPINGS,
    push_event_types=("journey_started", "client_updated"),
    payloads=payloads,
    webhook_event_types=("new_contact", "updated_contact"),
    drafts=drafts,
    versioned=VERSIONED,
    docs_url="https://zapier.com/apps/17hats/integrations",
)
