"""The connection's config and credentials schemas, and the default field mappings."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2 import TemplateError
from jinja2.sandbox import SandboxedEnvironment
from journeyhub.kit import Config, FieldMapping, check_timeout, check_url
from msgspec import Meta

API_BASE = "https://www.googleapis.com/calendar/v3"
TOKEN_URL = "https://oauth2.googleapis.com/token"  # noqa: S105 (a URL, not a secret)
AUTH_URL = "https://accounts.google.com/o/oauth2/v2/auth"  # the consent screen
# Events read and written, calendars.get, watch channels: the whole-calendar scope.
OAUTH_SCOPES = ("https://www.googleapis.com/auth/calendar",)
PAGE_SIZE_MAX = 2500  # events.list maxResults: "can never be larger than 2500"
TEMPLATES = ("step", "completed", "paused", "failed")  # the <kind>_title_template fields
Status = Literal["confirmed", "tentative", "cancelled"]
NonBlank = Annotated[str, Meta(pattern=r"\S")]  # not empty, not only spaces


def known_zone(name: Any) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        return False
    return True


# Users write the title templates; a sandboxed environment keeps them from reaching Python.
_env = SandboxedEnvironment(autoescape=False)


class GcalConfig(Config):
    api_base: str = API_BASE
    token_url: str = TOKEN_URL
    auth_url: str = AUTH_URL
    calendar_id: str = "primary"
    # IANA name of times given without an offset and of timed events; None: the calendar's own
    # (calendars.get ``timeZone``).
    time_zone: str | None = None
    # A wedding date with a time of day (a user mapping can give one) makes a timed event this
    # long; a plain date makes an all-day event.
    wedding_event_duration_hours: Annotated[float, Meta(gt=0, le=48)] = 8.0
    step_event_duration_minutes: Annotated[int, Meta(gt=0, le=24 * 60)] = 60
    # Jinja templates. Variables: summary (the mapped wedding title), client, journey, step.
    step_title_template: str = "{{ step }}: {{ client }}"
    completed_title_template: str = "{{ summary }}"
    paused_title_template: str = "{{ summary }} (journey paused)"
    failed_title_template: str = "{{ summary }} (journey stopped)"
    # Event status per journey outcome. "cancelled" deletes the event in Google Calendar,
    # so the defaults never use it: a failed journey does not mean the wedding is off.
    status_completed: Status = "confirmed"
    status_paused: Status = "tentative"
    status_failed: Status = "tentative"
    sync_window_days: int = 365  # a full sync reads events that end after now - this
    page_size: int = 250
    timeout_seconds: float = 15.0
    # Invite the couple (the client's email) to the wedding event, and whom Google notifies
    # of its changes (events.insert/patch ``sendUpdates``).
    invite_client: bool = False
    send_updates: Literal["all", "externalOnly", "none"] = "all"
    # The channel lifetime asked for, and how long before its expiry a channel is renewed.
    watch_ttl_seconds: Annotated[int, Meta(ge=300, le=30 * 24 * 3600)] = 7 * 24 * 3600
    watch_renew_margin_seconds: int = 24 * 3600

    def __post_init__(self) -> None:
        check_url("api_base", self.api_base)
        check_url("token_url", self.token_url)
        check_url("auth_url", self.auth_url)
        if not self.calendar_id.strip():
            raise ValueError("calendar_id must not be empty ('primary' for the main calendar)")
        if self.time_zone is not None and not known_zone(self.time_zone):
            raise ValueError(f"time_zone {self.time_zone!r} is not an IANA time zone")
        check_timeout("timeout_seconds", self.timeout_seconds)
        for kind in TEMPLATES:
            try:
                _env.from_string(getattr(self, f"{kind}_title_template"))
            except TemplateError as exc:
                raise ValueError(f"{kind}_title_template does not compile: {exc}") from None
        if not 1 <= self.sync_window_days <= 3650:
            raise ValueError("sync_window_days must be between 1 and 3650")
        if not 1 <= self.page_size <= PAGE_SIZE_MAX:
            raise ValueError(f"page_size must be between 1 and {PAGE_SIZE_MAX}")
        if not 0 <= self.watch_renew_margin_seconds < self.watch_ttl_seconds:
            raise ValueError("watch_renew_margin_seconds must be below watch_ttl_seconds")

    def title(self, kind: str, **values: Any) -> str:
        """Render the ``<kind>_title_template``; an empty result falls back to the summary."""
        rendered = _env.from_string(getattr(self, f"{kind}_title_template")).render(**values)
        return rendered.strip() or str(values.get("summary") or "")


class GcalCredentials(Config):
    client_id: NonBlank  # the OAuth client of the Google Cloud project
    client_secret: NonBlank
    # From a consent with access_type=offline: the dashboard's Connect button stores it (or
    # it is pasted by hand). None until the account is connected.
    refresh_token: NonBlank | None = None
    access_token: str | None = None  # kept fresh by journeyhub_authenticate
    expires_at: float | None = None  # epoch seconds
    # The X-Goog-Channel-Token of our watch channels.
    channel_token: Annotated[str, Meta(min_length=16, max_length=256)] | None = None


_VENUE = (  # "<name>, <address>", or either alone
    "{% set v = event.wedding.venue if event.wedding else none %}"
    "{{ [v.name, v.address] | select | join(', ') if v }}"
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
