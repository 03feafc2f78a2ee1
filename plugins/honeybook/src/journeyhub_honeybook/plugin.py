"""The ``honeybook`` connector: HoneyBook has no public API, so it goes through the user's
Zaps (HoneyBook's Zapier app) by way of the Zapier bridge, plus its payments report as CSV.

Out: ``journey_started`` → Create Client, then Create Project, each to its Zap's catch hook
(a retried delivery resends Create Client with the same envelope id, and the Zap drops it).
In: the Client Created, New Project Booked and New Payment Paid triggers POSTed by Zaps
(:mod:`.inbound`), and the "Payments completed" report as CSV (:mod:`.csv_import`).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from journeyhub.connectors.zapier import ZapierConfig
from journeyhub.kit import FieldMapping, JourneyEvent, PermanentError, TriggerDraft, hookimpl
from journeyhub.kit.zapier import ZapierBridge

from journeyhub_honeybook.csv_import import parse_payments_report
from journeyhub_honeybook.inbound import EVENT_TYPES, drafts

ACTIONS = ("create_client", "create_project")
_CURRENCY = re.compile(r"^[A-Z]{3}$")


class HoneyBookConfig(ZapierConfig, kw_only=True):
    ACTIONS: ClassVar[tuple[str, ...]] = ACTIONS

    # Amounts from a Zap or the payments report come without a currency; this is it.
    currency: str = "USD"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not _CURRENCY.match(self.currency):
            raise ValueError("currency must be an ISO 4217 code such as USD")


_LOCATION = (
    "{% set v = event.wedding.venue if event.wedding else none %}"
    "{% if v and v.name %}{{ v.name }}{% if v.address %}, {{ v.address }}{% endif %}"
    "{% elif v and v.address %}{{ v.address }}{% endif %}"
)
_DETAILS = (
    "{{ event.journey_name or 'Journey' }} ({{ event.journey_instance_id }})"
    "{% if event.wedding and event.wedding.guest_count %}, "
    "{{ event.wedding.guest_count }} guests{% endif %}"
)
# Targets: "client.*" fill the Create Client action, "project.*" the Create Project action.
# The names are HoneyBook's Zapier field labels in snake case, so a Zap maps them one to one.
DEFAULT_FIELD_MAPPINGS: tuple[FieldMapping, ...] = (
    FieldMapping(source="client.name", target="client.full_name", transform="strip"),
    FieldMapping(source="client.email", target="client.email", transform="strip"),
    FieldMapping(source="client.phone", target="client.phone_number", transform="strip"),
    FieldMapping(source="data.project_type", target="project.project_type", default="Wedding"),
    FieldMapping(source="wedding.date", target="project.project_date", transform="date:%Y-%m-%d"),
    FieldMapping(
        source="journey_name",
        target="project.project_details",
        transform="template",
        options={"template": _DETAILS},
    ),
    FieldMapping(source="data.budget", target="project.project_budget", transform="string"),
    FieldMapping(
        source="wedding.venue.name",
        target="project.project_location",
        transform="template",
        options={"template": _LOCATION},
    ),
)


def payloads(event: JourneyEvent, mapped: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The ``data`` of each action (README: field by field). Every key is always present (null
    when unknown): Zapier offers a field for mapping only once a sample carried it."""
    client, project = mapped.get("client") or {}, mapped.get("project") or {}
    full_name, email = client.get("full_name"), client.get("email")
    if not full_name or not email:
        # Both HoneyBook actions require them; a Zap run without them would only fail later.
        raise PermanentError(
            "HoneyBook needs the client's full name and email (client.name, client.email)"
        )
    phone, ours = client.get("phone_number"), {"journeyhub_client_id": event.client.id}
    return {
        "create_client": {"full_name": full_name, "email": email, "phone_number": phone, **ours},
        "create_project": {
            "client_full_name": full_name,
            "client_email": email,
            "phone_number": phone,
            "project_type": project.get("project_type"),
            "project_date": project.get("project_date"),
            "project_details": project.get("project_details"),
            "project_budget": project.get("project_budget"),
            "project_location": project.get("project_location"),
            "journey_instance_id": event.journey_instance_id,
            **ours,
        },
    }


class HoneyBookBridge(ZapierBridge):
    """The bridge, plus the payments report: payments a Zap missed or that predate the Zap."""

    @hookimpl
    def journeyhub_import_csv(self, config: HoneyBookConfig, text: str) -> list[TriggerDraft]:
        return parse_payments_report(text, config.currency)


plugin = HoneyBookBridge(
    vendor="honeybook",
    display_name="HoneyBook (via Zapier)",
    config_schema=HoneyBookConfig,
    default_field_mappings=DEFAULT_FIELD_MAPPINGS,
    push_event_types=("journey_started",),
    payloads=payloads,
    webhook_event_types=EVENT_TYPES,
    drafts=drafts,
    docs_url="https://zapier.com/apps/honeybook/integrations",
)
