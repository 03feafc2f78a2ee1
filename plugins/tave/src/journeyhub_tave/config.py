"""The connection's config and credentials schemas, and the default field mappings."""

from __future__ import annotations

import re
from typing import Any

import msgspec
from journeyhub.configs import config_as
from journeyhub.mapping import apply_mappings, merge_defaults
from journeyhub.model import Connection, FieldMapping, JourneyEvent

from journeyhub_tave.client import API_BASE, PAGE_SIZE_MAX, PAGE_SIZE_MIN, Mappings

_SERVICE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")


class TaveConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    api_base: str = API_BASE
    # Our records carry externalMappings {id, url}; the url is
    # <external_link_base>/<external_service>/<kind>/<our id>, which is how we recognise ours.
    external_service: str = "journeyhub"
    external_link_base: str = "https://journeyhub.invalid"
    job_type: str | None = "Wedding"  # a Job Type name in the studio; None: no job type
    # Lead Status names set on the job; None: leave the job alone for that event.
    status_completed: str | None = "Completed"
    status_paused: str | None = "Paused"
    status_failed: str | None = "Failed"
    page_size: int = PAGE_SIZE_MAX
    timeout_seconds: float = 15.0

    def __post_init__(self) -> None:
        for name in ("api_base", "external_link_base"):
            if not getattr(self, name).startswith(("http://", "https://")):
                raise ValueError(f"{name} must start with http:// or https://")
        if not _SERVICE.match(self.external_service):
            raise ValueError("external_service must be 1-40 of a-z, 0-9, '-' or '_'")
        if not PAGE_SIZE_MIN <= self.page_size <= PAGE_SIZE_MAX:
            raise ValueError(f"page_size must be between {PAGE_SIZE_MIN} and {PAGE_SIZE_MAX}")
        if not 0 < self.timeout_seconds <= 60:
            raise ValueError("timeout_seconds must be in (0, 60]")

    @property
    def mappings(self) -> Mappings:
        return Mappings(self.external_service, self.external_link_base)

    def status_for(self, event_type: str) -> str | None:
        return {
            "journey_completed": self.status_completed,
            "journey_paused": self.status_paused,
            "journey_failed": self.status_failed,
        }.get(event_type)


class TaveCredentials(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    api_key: str  # VSCO Workspace > Settings > API Integrations (Read/Write)
    webhook_token: str | None = None  # the ?token= in the REST hook URL

    def __post_init__(self) -> None:
        if not self.api_key.strip():
            raise ValueError("api_key must not be empty")
        if self.webhook_token is not None and len(self.webhook_token) < 16:
            raise ValueError("webhook_token must be at least 16 characters")


def load_config(connection: Connection) -> TaveConfig:
    return config_as(connection, TaveConfig)


_VENUE = (
    "{% set v = event.wedding.venue if event.wedding else none %}"
    "{% if v and v.name %}Venue: {{ v.name }}{% if v.address %}, {{ v.address }}{% endif %}"
    "{% endif %}"
)

# Targets are VSCO Workspace field names under "contact." (a Person) and "job." (a Job).
DEFAULT_FIELD_MAPPINGS: tuple[FieldMapping, ...] = (
    FieldMapping(source="client.name", target="contact.firstName", transform="first_name"),
    FieldMapping(source="client.name", target="contact.lastName", transform="last_name"),
    FieldMapping(source="client.email", target="contact.email", transform="strip"),
    FieldMapping(source="client.phone", target="contact.cellPhone.formatted", transform="strip"),
    FieldMapping(source="wedding.date", target="job.eventDate", transform="date:%Y-%m-%d"),
    FieldMapping(source="wedding.guest_count", target="job.guestCount", transform="int"),
    FieldMapping(
        source="client.name",
        target="job.name",
        transform="template",
        options={"template": "{{ event.client.name }} wedding"},
    ),
    # A Job has no venue field; the venue goes into the job's lead notes.
    FieldMapping(
        source="wedding.venue.name",
        target="job.leadNotes",
        transform="template",
        options={"template": _VENUE},
    ),
)


def mapped_fields(
    event: JourneyEvent, mapped: dict[str, Any], connection: Connection
) -> dict[str, Any]:
    """``task.mapped`` as the kernel computed it, or computed here when it is absent."""
    if mapped:
        return mapped
    return apply_mappings(merge_defaults(DEFAULT_FIELD_MAPPINGS, connection.field_mappings), event)
