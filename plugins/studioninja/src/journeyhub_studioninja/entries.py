"""Studio Ninja's calendar entries, as its Google Calendar sync writes them, turned into records.

Each entry (a Google event whose title carries a Studio Ninja label) becomes a ``shoot``
record keyed by the Google event id: any change of it (a move, a new place, a new label)
becomes a ``calendar_event_changed`` trigger, as the kernel maps kind ``shoot``.

The shoot-date entries of a job (SHOOT, LEAD, MAIN SHOOT and their "(LEAD)" forms) also make a
``job`` record with one field, ``status`` ("lead" or "confirmed"), keyed by the job rather than
the event: the kernel maps a changed ``status`` of a ``job`` to ``project_status_changed``.
Keyed by the job, the change is seen whether Studio Ninja relabels the same Google event when a
lead is booked (what its help centre describes for its own calendar: "The word Lead is
automatically removed once the lead has been converted into a job") or deletes it and writes a
new one. Appointments make no job record: an APPOINTMENT without "(LEAD)" may belong to no job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from journeyhub.model import PulledRecord
from journeyhub_gcal import event_record

from journeyhub_studioninja.config import StudioNinjaConfig

SHOOT_KIND = "shoot"
JOB_KIND = "job"
ENTRY_TYPES = ("SHOOT", "LEAD", "APPOINTMENT", "MAIN SHOOT")
JOB_ENTRY_TYPES = frozenset({"SHOOT", "LEAD", "MAIN SHOOT"})
JOB_KEY_MAX = 180  # links keep vendor ids up to 200 characters


@dataclass(frozen=True)
class Entry:
    entry_type: str  # one of ENTRY_TYPES
    lead: bool  # LEAD, or a "(LEAD)" label: the job is not booked yet
    name: str  # the title without its label

    @property
    def status(self) -> str:
        if self.lead:
            return "lead"
        return "scheduled" if self.entry_type == "APPOINTMENT" else "confirmed"


def parse_title(title: Any, config: StudioNinjaConfig) -> Entry | None:
    """The Studio Ninja entry a Google event title stands for; None for anyone else's event."""
    if not isinstance(title, str):
        return None
    for label, pattern in config.patterns():
        match = pattern.match(title)
        if match is None:
            continue
        named = match.groupdict().get("name")
        name = " ".join((named if named is not None else title).split())
        lead = label == "LEAD" or label.endswith("(LEAD)")
        return Entry(label.removesuffix(" (LEAD)"), lead, name)
    return None


def job_key(item: dict[str, Any], entry: Entry, config: StudioNinjaConfig) -> str | None:
    """The job an entry belongs to: its own id when ``job_id_pattern`` finds one, else its
    name (case and spacing ignored). None when there is neither."""
    if config.job_id_pattern:
        text = "\n".join(str(item.get(k) or "") for k in ("description", "summary"))
        found = re.search(config.job_id_pattern, text)
        if found and found.group(1):
            return f"job:id:{found.group(1)}"[:JOB_KEY_MAX]
    name = entry.name.casefold()
    return f"job:name:{name}"[:JOB_KEY_MAX] if name else None


def shoot_record(item: dict[str, Any], config: StudioNinjaConfig) -> PulledRecord | None:
    """One Google event as a ``shoot`` record; None when it is not Studio Ninja's."""
    base = event_record(item)  # gcal's reading of times, place, updated and deletion
    if base is None:
        return None
    entry = parse_title(item.get("summary"), config)
    if entry is None:
        if base.deleted and not item.get("summary"):
            # Google only promises the id of a deleted event: it may have been one of ours.
            # Unknown to the kernel, it is a first sighting and triggers nothing.
            return PulledRecord(
                vendor_id=base.vendor_id,
                kind=SHOOT_KIND,
                fields={},
                modified_at=base.modified_at,
                deleted=True,
            )
        return None
    fields: dict[str, Any] = {
        "entry_type": entry.entry_type,
        "lead": entry.lead,
        "status": entry.status,
        "title": item.get("summary"),
        "name": entry.name,
        "job": job_key(item, entry, config),
        "start": base.fields.get("start"),
        "end": base.fields.get("end"),
        "all_day": base.fields.get("all_day"),
        "location": base.fields.get("location"),
    }
    return PulledRecord(
        vendor_id=base.vendor_id,
        kind=SHOOT_KIND,
        fields=fields,
        modified_at=base.modified_at,
        deleted=base.deleted,
    )


def job_records(shoot: PulledRecord) -> list[PulledRecord]:
    """The ``job`` record a live shoot-date entry speaks for (none for others)."""
    fields = shoot.fields
    if shoot.deleted or fields.get("entry_type") not in JOB_ENTRY_TYPES or not fields.get("job"):
        return []
    return [
        PulledRecord(
            vendor_id=str(fields["job"]),
            kind=JOB_KIND,
            # One field: only the booking status of the job is news for a journey.
            fields={"status": fields["status"]},
            modified_at=shoot.modified_at,
        )
    ]
