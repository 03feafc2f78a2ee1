"""The connection's config (the Zap's catch-hook URL) and the default field mappings."""

from __future__ import annotations

from typing import ClassVar

from journeyhub.configs import config_as
from journeyhub.connectors.zapier import ZapierConfig
from journeyhub.model import Connection, FieldMapping

ACTION = "upsert_contact"


class SeventeenHatsConfig(ZapierConfig, kw_only=True):
    ACTIONS: ClassVar[tuple[str, ...]] = (ACTION,)


def load_config(connection: Connection) -> SeventeenHatsConfig:
    return config_as(connection, SeventeenHatsConfig)


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
