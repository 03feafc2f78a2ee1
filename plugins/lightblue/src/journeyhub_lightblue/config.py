"""The connection's config and credentials schemas, and the default field mappings."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import msgspec
from journeyhub.configs import config_as
from journeyhub.errors import PermanentError
from journeyhub.model import Connection, FieldMapping

from journeyhub_lightblue.client import API_URL

# Plain HTTP is refused by Light Blue (-20); it is allowed here only for a local sandbox.
_LOOPBACK = {"localhost", "127.0.0.1", "::1"}


def _one_line(name: str, value: str, limit: int) -> None:
    if not value.strip():
        raise ValueError(f"{name} must not be empty")
    if "\n" in value or "\r" in value or len(value) > limit:
        raise ValueError(f"{name} must be one line of at most {limit} characters")


class LightBlueConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    api_url: str = API_URL
    # Light Blue refuses a second request with the same ID and Source (-4), so the Source
    # must stay the same for the life of the connection.
    source: str = "journeyhub"
    shoot_type: str | None = "Wedding"  # ShootType on new enquiries; None: leave it out
    timeout_seconds: float = 15.0

    def __post_init__(self) -> None:
        parts = urlsplit(self.api_url)
        if parts.scheme == "http" and parts.hostname not in _LOOPBACK:
            raise ValueError(
                "api_url must be https: Light Blue refuses plain HTTP (http is allowed only "
                "for a local sandbox)"
            )
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("api_url must be an https:// URL")
        _one_line("source", self.source, 100)
        if self.shoot_type is not None:
            _one_line("shoot_type", self.shoot_type, 100)
        if not 0 < self.timeout_seconds <= 60:
            raise ValueError("timeout_seconds must be in (0, 60]")


class LightBlueCredentials(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    api_key: str  # Light Blue > My Account page, towards the bottom

    def __post_init__(self) -> None:
        if not self.api_key.strip() or any(c.isspace() for c in self.api_key):
            raise ValueError("api_key must be the key from the My Account page, without spaces")


def load_config(connection: Connection) -> LightBlueConfig:
    return config_as(connection, LightBlueConfig)


def api_key(credentials: Any) -> str:
    key = credentials.get("api_key") if hasattr(credentials, "get") else None
    if not isinstance(key, str) or not key.strip():
        raise PermanentError("configuration error: the connection has no Light Blue api_key")
    return key


_VENUE = (
    "{% set v = event.wedding.venue if event.wedding else none %}"
    "{% if v and v.name %}{{ v.name }}{% if v.address %}, {{ v.address }}{% endif %}{% endif %}"
)
_MESSAGE = (
    "{% set w = event.wedding or {} %}{% set d = event.get('data') or {} %}"
    "{% if event.type == 'client_updated' %}Updated contact details from journeyhub"
    "{% else %}New enquiry from journeyhub"
    "{% if event.journey_name %} ({{ event.journey_name }}){% endif %}{% endif %}"
    "{% if w.get('guest_count') %}. Guests: {{ w.guest_count }}{% endif %}"
    "{% if d.get('notes') %}\n{{ d.notes }}{% endif %}"
)

# Targets are Light Blue API parameter names (see the README for where each was checked).
DEFAULT_FIELD_MAPPINGS: tuple[FieldMapping, ...] = (
    FieldMapping(source="client.name", target="ContactNameFirst", transform="first_name"),
    FieldMapping(source="client.name", target="ContactNameLast", transform="last_name"),
    FieldMapping(source="client.email", target="ContactEmail", transform="strip"),
    FieldMapping(source="client.phone", target="ContactPhone", transform="strip"),
    # Light Blue reads dates as dd/mm/yyyy unless told otherwise.
    FieldMapping(source="wedding.date", target="ShootDate", transform="date:%d/%m/%Y"),
    FieldMapping(
        source="wedding.venue.name",
        target="ShootLocation",
        transform="template",
        options={"template": _VENUE},
    ),
    FieldMapping(
        source="client.name",
        target="ShootTitle",
        transform="template",
        options={
            "template": "{% if event.client.name %}{{ event.client.name }} wedding{% endif %}"
        },
    ),
    FieldMapping(
        source="journey_name",
        target="Message",
        transform="template",
        options={"template": _MESSAGE},
    ),
)
