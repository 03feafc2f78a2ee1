"""The connection's config and credentials schemas, and the default field mappings."""

from __future__ import annotations

from urllib.parse import urlsplit

from journeyhub.kit import Config, FieldMapping, check_timeout

API_URL = "https://online.lightbluesoftware.com/api.php"  # Light Blue's one API script
# Plain HTTP is refused by Light Blue (-20); it is allowed here only for a local sandbox.
_LOOPBACK = {"localhost", "127.0.0.1", "::1"}


def _one_line(name: str, value: str) -> None:
    if not value.strip():
        raise ValueError(f"{name} must not be empty")
    if "\n" in value or "\r" in value or len(value) > 100:
        raise ValueError(f"{name} must be one line of at most 100 characters")


class LightBlueConfig(Config):
    api_url: str = API_URL
    # Light Blue refuses a second request with the same ID and Source (-4), so the Source
    # must stay the same for the life of the connection.
    source: str = "journeyhub"
    shoot_type: str | None = "Wedding"  # ShootType on new enquiries; None: leave it out
    timeout_seconds: float = 15.0

    def __post_init__(self) -> None:
        parts = urlsplit(self.api_url)
        if parts.scheme == "http" and parts.hostname not in _LOOPBACK:
            raise ValueError("api_url must be https: Light Blue refuses plain HTTP")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("api_url must be an https:// URL")
        _one_line("source", self.source)
        if self.shoot_type is not None:
            _one_line("shoot_type", self.shoot_type)
        check_timeout("timeout_seconds", self.timeout_seconds)


class LightBlueCredentials(Config):
    api_key: str  # Light Blue > My Account page, towards the bottom

    def __post_init__(self) -> None:
        if not self.api_key.strip() or any(c.isspace() for c in self.api_key):
            raise ValueError("api_key must be the key from the My Account page, without spaces")


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
_TITLE = "{% if event.client.name %}{{ event.client.name }} wedding{% endif %}"


def _template(source: str, target: str, template: str) -> FieldMapping:
    options = {"template": template}
    return FieldMapping(source=source, target=target, transform="template", options=options)


# Targets are Light Blue API parameter names (see the README for where each was checked).
DEFAULT_FIELD_MAPPINGS: tuple[FieldMapping, ...] = (
    FieldMapping(source="client.name", target="ContactNameFirst", transform="first_name"),
    FieldMapping(source="client.name", target="ContactNameLast", transform="last_name"),
    FieldMapping(source="client.email", target="ContactEmail", transform="strip"),
    FieldMapping(source="client.phone", target="ContactPhone", transform="strip"),
    # Light Blue reads dates as dd/mm/yyyy unless told otherwise.
    FieldMapping(source="wedding.date", target="ShootDate", transform="date:%d/%m/%Y"),
    _template("wedding.venue.name", "ShootLocation", _VENUE),
    _template("client.name", "ShootTitle", _TITLE),
    _template("journey_name", "Message", _MESSAGE),
)
