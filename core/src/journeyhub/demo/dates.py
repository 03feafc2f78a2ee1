"""The wedding date each system of the demo holds, read from its sandbox (its vendor's own
records), and whether the hub can change it there.

The scenario waits on these readings and the report shows them. A vendor the hub can only
create records at keeps the date it was first given, and :data:`CANNOT_UPDATE` says why.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True)
class Held:
    date: str | None  # ISO 8601 (YYYY-MM-DD); None when the system holds none
    where: str  # which record holds it


def _tave(sandbox: Any) -> Held:
    dates = [job.get("eventDate") for job in sandbox.jobs if job.get("eventDate")]
    return Held(str(dates[-1])[:10] if dates else None, "the job's event date")


def _gcal(sandbox: Any) -> Held:
    for event in sandbox.events():
        props = (event.get("extendedProperties") or {}).get("private") or {}
        if props.get("journeyhub_kind") == "wedding" and event.get("status") != "cancelled":
            start = event.get("start") or {}
            date = start.get("date") or (start.get("dateTime") or "")[:10]
            return Held(date or None, "the wedding-day event")
    return Held(None, "no wedding-day event")


def _lightblue(sandbox: Any) -> Held:
    dated = [e for e in sandbox.enquiries if "ShootDate" in e.dates]
    if not dated:
        return Held(None, "no Inbox message with a shoot date")
    latest = dated[-1].dates["ShootDate"].isoformat()
    return Held(latest, "the latest Inbox message; the studio applies it in the app")


def _seventeenhats(sandbox: Any) -> Held:
    for contact in sandbox.contacts.values():
        found = _ISO_DATE.search(str(contact.get("notes") or ""))
        if found:
            return Held(found.group(0), "the contact's Notes")
    return Held(None, "no date in the contact's Notes")


def _honeybook(sandbox: Any) -> Held:
    dates = [p.get("project_date") for p in sandbox.projects if p.get("project_date")]
    return Held(str(dates[-1])[:10] if dates else None, "the project's date")


def _studioninja(sandbox: Any) -> Held:
    dates = [s.fields.get("event_date") for s in sandbox.submissions if s.fields.get("event_date")]
    return Held(str(dates[-1])[:10] if dates else None, "the enquiry's event date")


READERS: dict[str, Callable[[Any], Held]] = {
    "tave": _tave,
    "gcal": _gcal,
    "lightblue": _lightblue,
    "seventeenhats": _seventeenhats,
    "honeybook": _honeybook,
    "studioninja": _studioninja,
}
# Systems that hold a wedding date the hub cannot change after the first push.
CANNOT_UPDATE = {
    "honeybook": "cannot be updated: the Zapier bridge only creates (HoneyBook's Zapier app has "
    "no update action)",
    "studioninja": "cannot be updated: its enquiry form only takes new enquiries",
}
# Systems that hold no wedding date of their own.
NO_DATE = {
    "stripe": "holds no wedding date",
    "resend": "holds no wedding date (each email keeps the date it was written with)",
}


def held(vendor: str, sandbox: Any) -> Held | None:
    """The date ``vendor``'s sandbox holds now; None for a system without a reader."""
    reader = READERS.get(vendor)
    return reader(sandbox) if reader is not None and sandbox is not None else None


def updatable(vendor: str) -> bool:
    """Whether the hub can move the wedding date ``vendor`` holds."""
    return vendor in READERS and vendor not in CANNOT_UPDATE
