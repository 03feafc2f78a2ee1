"""The connection's config and credentials schemas, the title templates and the default field
mappings."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from jinja2 import TemplateError, Undefined
from jinja2.sandbox import SandboxedEnvironment
from journeyhub.configs import config_as
from journeyhub.mapping import apply_mappings, merge_defaults
from journeyhub.model import Connection, FieldMapping, JourneyEvent

API_BASE = "https://www.googleapis.com/calendar/v3"
TOKEN_URL = "https://oauth2.googleapis.com/token"  # noqa: S105 (a URL, not a secret)
# calendars.get (the connection check) needs the full calendar scope, not calendar.events.
SCOPE = "https://www.googleapis.com/auth/calendar"
PAGE_SIZE_MAX = 2500  # events.list maxResults: "can never be larger than 2500"
STATUSES = ("confirmed", "tentative", "cancelled")

# Users write the title templates; a sandboxed environment keeps them from reaching Python.
_env = SandboxedEnvironment(autoescape=False, undefined=Undefined)


class GcalConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    api_base: str = API_BASE
    token_url: str = TOKEN_URL
    calendar_id: str = "primary"
    time_zone: str = "UTC"  # IANA name, for times given without an offset
    # A wedding date with a time of day (a user mapping can give one) makes a timed event this
    # long; a plain date makes an all-day event.
    wedding_event_duration_hours: float = 8.0
    step_event_duration_minutes: int = 60
    # Jinja templates. Variables: summary (the mapped wedding title), client, journey, step.
    step_title_template: str = "{{ step }}: {{ client }}"
    completed_title_template: str = "{{ summary }}"
    paused_title_template: str = "{{ summary }} (journey paused)"
    failed_title_template: str = "{{ summary }} (journey stopped)"
    # Event status per journey outcome. "cancelled" deletes the event in Google Calendar,
    # so the defaults never use it: a failed journey does not mean the wedding is off.
    status_completed: str = "confirmed"
    status_paused: str = "tentative"
    status_failed: str = "tentative"
    sync_window_days: int = 365  # a full sync reads events that end after now - this
    page_size: int = 250
    timeout_seconds: float = 15.0
    watch_ttl_seconds: int = 7 * 24 * 3600  # asked-for channel lifetime
    watch_renew_margin_seconds: int = 24 * 3600  # renew a channel this long before it expires

    def __post_init__(self) -> None:
        for name in ("api_base", "token_url"):
            if not getattr(self, name).startswith(("http://", "https://")):
                raise ValueError(f"{name} must start with http:// or https://")
        if not self.calendar_id.strip():
            raise ValueError("calendar_id must not be empty ('primary' for the main calendar)")
        try:
            ZoneInfo(self.time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"time_zone {self.time_zone!r} is not an IANA time zone") from None
        if not 0 < self.wedding_event_duration_hours <= 48:
            raise ValueError("wedding_event_duration_hours must be in (0, 48]")
        if not 0 < self.step_event_duration_minutes <= 24 * 60:
            raise ValueError("step_event_duration_minutes must be in (0, 1440]")
        for name in ("status_completed", "status_paused", "status_failed"):
            if getattr(self, name) not in STATUSES:
                raise ValueError(f"{name} must be one of {', '.join(STATUSES)}")
        for name in TEMPLATES:
            try:
                _env.from_string(getattr(self, name))
            except TemplateError as exc:
                raise ValueError(f"{name} does not compile: {exc}") from None
        if not 1 <= self.sync_window_days <= 3650:
            raise ValueError("sync_window_days must be between 1 and 3650")
        if not 1 <= self.page_size <= PAGE_SIZE_MAX:
            raise ValueError(f"page_size must be between 1 and {PAGE_SIZE_MAX}")
        if not 0 < self.timeout_seconds <= 60:
            raise ValueError("timeout_seconds must be in (0, 60]")
        if not 300 <= self.watch_ttl_seconds <= 30 * 24 * 3600:
            raise ValueError("watch_ttl_seconds must be between 300 and 2592000")
        if not 0 <= self.watch_renew_margin_seconds < self.watch_ttl_seconds:
            raise ValueError("watch_renew_margin_seconds must be below watch_ttl_seconds")

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    def title(self, template_field: str, **values: Any) -> str:
        """Render one of the title templates; an empty result falls back to the summary."""
        rendered = _env.from_string(getattr(self, template_field)).render(**values).strip()
        return rendered or str(values.get("summary") or "")

    def outcome(self, event_type: str) -> tuple[str, str]:
        """``(title template field, status)`` for a journey outcome event."""
        kind = event_type.removeprefix("journey_")
        return f"{kind}_title_template", getattr(self, f"status_{kind}")


TEMPLATES = (
    "step_title_template",
    "completed_title_template",
    "paused_title_template",
    "failed_title_template",
)


class GcalCredentials(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    client_id: str  # the OAuth client of the Google Cloud project
    client_secret: str
    refresh_token: str  # from a consent with access_type=offline
    access_token: str | None = None  # kept fresh by journeyhub_authenticate
    expires_at: float | None = None  # epoch seconds
    channel_token: str | None = None  # the X-Goog-Channel-Token of our watch channels

    def __post_init__(self) -> None:
        for name in ("client_id", "client_secret", "refresh_token"):
            if not getattr(self, name).strip():
                raise ValueError(f"{name} must not be empty")
        if self.channel_token is not None and not 16 <= len(self.channel_token) <= 256:
            raise ValueError("channel_token must be 16 to 256 characters")


def load_config(connection: Connection) -> GcalConfig:
    return config_as(connection, GcalConfig)


_VENUE = (
    "{% set v = event.wedding.venue if event.wedding else none %}"
    "{% if v and v.name %}{{ v.name }}{% if v.address %}, {{ v.address }}{% endif %}"
    "{% elif v and v.address %}{{ v.address }}{% endif %}"
)

# Targets are the wedding event's fields: ``summary`` (its title), ``location``, ``date``
# (YYYY-MM-DD gives an all-day event; an ISO date-time gives a timed one) and, when mapped,
# ``description``.
DEFAULT_FIELD_MAPPINGS: tuple[FieldMapping, ...] = (
    FieldMapping(
        source="client.name",
        target="summary",
        transform="template",
        options={"template": "{{ event.client.name or event.client.email or 'Client' }} wedding"},
    ),
    FieldMapping(
        source="wedding.venue.name",
        target="location",
        transform="template",
        options={"template": _VENUE},
    ),
    FieldMapping(source="wedding.date", target="date", transform="date:%Y-%m-%d"),
)


def mapped_fields(
    event: JourneyEvent, mapped: dict[str, Any], connection: Connection
) -> dict[str, Any]:
    """``task.mapped`` as the kernel computed it, or computed here when it is absent."""
    if mapped:
        return mapped
    return apply_mappings(merge_defaults(DEFAULT_FIELD_MAPPINGS, connection.field_mappings), event)
