"""The connection's config schema (with the Google Calendar settings it hands to
``journeyhub_gcal`` as a ``GcalConfig``), the title patterns of Studio Ninja's calendar entries,
and the default field mappings of the enquiry form."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Literal
from urllib.parse import urlsplit

from journeyhub.kit import Config, FieldMapping
from journeyhub_gcal import GcalConfig

# The labels Studio Ninja gives its calendar entries (help centre, "Getting started with the
# Calendar"), most specific first: the first that matches a title wins.
LABELS = ("MAIN SHOOT (LEAD)", "MAIN SHOOT", "APPOINTMENT (LEAD)", "APPOINTMENT", "SHOOT", "LEAD")
GOOGLE = GcalConfig()  # Google's own endpoints and gcal's defaults
_LOOPBACK = {"localhost", "127.0.0.1", "::1"}


def default_pattern(label: str) -> str:
    """``<LABEL>: <job name>``; ASSUMED title shape (see README), tolerant of ``[LABEL]`` and of
    ``-``, ``|`` or no separator. Case-sensitive: Studio Ninja writes its labels in capitals,
    so the user's own "Shoot with Sam" is not taken for one of its entries."""
    return (
        r"^\s*\[?" + re.escape(label) + r"\]?"
        r"(?!\w)(?!\s*\()"  # not "SHOOTING", and "MAIN SHOOT" is not "MAIN SHOOT (LEAD)"
        r"\s*[:|\-\u2013\u2014]?\s*(?P<name>.*?)\s*$"  # ":", "|", "-" or a dash
    )


@lru_cache(maxsize=64)
def compile_patterns(overrides: tuple[tuple[str, str], ...]) -> tuple[tuple[str, re.Pattern], ...]:
    """``(label, pattern)`` in matching order; an override of ``""`` turns a label off."""
    own = dict(overrides)
    sources = ((label, own.get(label, default_pattern(label))) for label in LABELS)
    return tuple((label, re.compile(source, re.DOTALL)) for label, source in sources if source)


def _compile(name: str, source: str) -> re.Pattern:
    try:
        return re.compile(source)
    except re.error as exc:
        raise ValueError(f"{name} does not compile: {exc}") from None


class StudioNinjaConfig(Config):
    # The Google calendar Studio Ninja syncs its jobs into (Settings > Integrate calendar >
    # Calendar ID in Google Calendar), e.g. "primary" or "abc123@group.calendar.google.com".
    calendar_id: str
    # The Studio Ninja contact form enquiries are posted to, e.g.
    # https://app.studioninja.co/contactform/parser/<company id>/<form id>. None: no push.
    enquiry_form_url: str | None = None
    enquiry_encoding: Literal["form", "json"] = "form"
    # A field carrying our enquiry reference, so the studio can tell a repeat by eye (the form
    # cannot dedupe). None when the form refuses fields it does not know.
    reference_field: str | None = "journeyhub_reference"
    # Label -> regex (with an optional ``name`` group) replacing the default; "" turns it off.
    title_patterns: dict[str, str] = {}
    # A regex whose first group is the job's own id, searched in the event's description and
    # title. Unset: a job is known by the name in its title.
    job_id_pattern: str | None = None
    # Google Calendar settings, as in the gcal connector.
    api_base: str = GOOGLE.api_base
    token_url: str = GOOGLE.token_url
    time_zone: str = "UTC"
    sync_window_days: int = 365
    page_size: int = 250
    timeout_seconds: float = 15.0

    def __post_init__(self) -> None:
        self.gcal()  # GcalConfig checks its own fields and names the bad one
        if self.enquiry_form_url is not None:
            parts = urlsplit(self.enquiry_form_url)
            local = parts.scheme == "http" and parts.hostname in _LOOPBACK
            if not parts.hostname or not (parts.scheme == "https" or local):
                raise ValueError("enquiry_form_url must be https (http only for a local sandbox)")
        for label, source in self.title_patterns.items():
            if label not in LABELS:
                raise ValueError(f"title_patterns: unknown label {label!r} (known: {LABELS})")
            _compile(f"title_patterns[{label!r}]", source)
        job_id = self.job_id_pattern
        if job_id is not None and _compile("job_id_pattern", job_id).groups < 1:
            raise ValueError("job_id_pattern needs a group that captures the job id")
        if self.reference_field is not None and not self.reference_field.strip():
            raise ValueError("reference_field must be a field name, or null for none")

    def gcal(self) -> GcalConfig:
        """The Google Calendar side of this connection (the fields it shares with
        ``GcalConfig``), for journeyhub_gcal's functions."""
        shared = set(GcalConfig.__struct_fields__) & set(self.__struct_fields__)
        return GcalConfig(**{name: getattr(self, name) for name in shared})

    def patterns(self) -> tuple[tuple[str, re.Pattern], ...]:
        return compile_patterns(tuple(sorted(self.title_patterns.items())))


_VENUE = (
    "{% set v = event.wedding.venue if event.wedding else none %}"
    "{% if v and v.name %}{{ v.name }}{% if v.address %}, {{ v.address }}{% endif %}"
    "{% elif v and v.address %}{{ v.address }}{% endif %}"
)

# Targets are the enquiry form's field names. ASSUMED names: Studio Ninja does not publish
# them; a connection maps to the names its own form uses (README: "Field names").
DEFAULT_FIELD_MAPPINGS: tuple[FieldMapping, ...] = (
    FieldMapping(source="client.name", target="first_name", transform="first_name"),
    FieldMapping(source="client.name", target="last_name", transform="last_name"),
    FieldMapping(source="client.email", target="email", transform="strip"),
    FieldMapping(source="client.phone", target="phone"),
    FieldMapping(source="wedding.date", target="event_date", transform="date:%Y-%m-%d"),
    FieldMapping(
        source="wedding.venue.name",
        target="location",
        transform="template",
        options={"template": _VENUE},
    ),
    FieldMapping(
        source="client.id", target="job_type", transform="template", options={"template": "Wedding"}
    ),
    FieldMapping(source="data.message", target="message"),
)
