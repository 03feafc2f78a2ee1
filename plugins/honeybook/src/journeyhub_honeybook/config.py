"""The connection's config (the Zaps' catch-hook URLs) and the default field mappings."""

from __future__ import annotations

import re
from typing import ClassVar

from journeyhub.configs import config_as
from journeyhub.connectors.zapier import ZapierConfig
from journeyhub.model import Connection, FieldMapping

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


def load_config(connection: Connection) -> HoneyBookConfig:
    return config_as(connection, HoneyBookConfig)


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
