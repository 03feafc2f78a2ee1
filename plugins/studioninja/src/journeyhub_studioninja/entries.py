"""Studio Ninja's calendar entries, as its Google Calendar sync writes them, as pulled records.

Each entry (a Google event titled with a Studio Ninja label) is a ``shoot`` record keyed by the
event id: the kernel maps any change of it to ``calendar_event_changed``. A shoot-date entry
(SHOOT, LEAD, MAIN SHOOT, with or without "(LEAD)") also makes a ``job`` record, ``status``
only, keyed by the job: a changed ``status`` of a ``job`` is ``project_status_changed``, whether
a booked lead's event is relabelled (as the help centre says Studio Ninja does: "The word Lead
is automatically removed once the lead has been converted into a job") or written anew.
Appointments make no job record: an APPOINTMENT without "(LEAD)" may belong to no job.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from journeyhub.model import PulledRecord
from journeyhub_gcal import event_record

from journeyhub_studioninja.config import StudioNinjaConfig

JOB_ENTRY_TYPES = frozenset({"SHOOT", "LEAD", "MAIN SHOOT"})
JOB_KEY_MAX = 180  # links keep vendor ids up to 200 characters


def parse_title(title: Any, config: StudioNinjaConfig) -> tuple[str, str] | None:
    """``(label, job name)`` of the Studio Ninja entry a Google event title stands for; None
    for anyone else's event."""
    if not isinstance(title, str):
        return None
    for label, pattern in config.patterns():
        if match := pattern.match(title):
            named = match.groupdict().get("name")
            return label, " ".join((named if named is not None else title).split())
    return None


def job_key(item: dict[str, Any], name: str, config: StudioNinjaConfig) -> str | None:
    """The job an entry belongs to: its own id when ``job_id_pattern`` finds one, else its
    name (case and spacing ignored). None when there is neither."""
    if config.job_id_pattern:
        text = "\n".join(str(item.get(k) or "") for k in ("description", "summary"))
        found = re.search(config.job_id_pattern, text)
        if found and found.group(1):
            return f"job:id:{found.group(1)}"[:JOB_KEY_MAX]
    return f"job:name:{name.casefold()}"[:JOB_KEY_MAX] if name else None


def shoot_record(item: dict[str, Any], config: StudioNinjaConfig) -> PulledRecord | None:
    """One Google event as a ``shoot`` record; None when it is not Studio Ninja's."""
    base = event_record(item)  # gcal's reading of times, place, updated and deletion
    title = item.get("summary")
    entry = parse_title(title, config)
    # Google only promises the id of a deleted event: one without a title may have been ours,
    # so it is passed on (unknown to the kernel, it is a first sighting and triggers nothing).
    if base is None or (entry is None and not (base.deleted and not title)):
        return None
    fields: dict[str, Any] = {}
    if entry is not None:
        label, name = entry
        entry_type = label.removesuffix(" (LEAD)")
        lead = label == "LEAD" or label.endswith("(LEAD)")  # the job is not booked yet
        status = "lead" if lead else "scheduled" if entry_type == "APPOINTMENT" else "confirmed"
        fields = {
            "entry_type": entry_type,
            "lead": lead,
            "status": status,
            "title": title,
            "name": name,
            "job": job_key(item, name, config),
            **{key: base.fields.get(key) for key in ("start", "end", "all_day", "location")},
        }
    return msgspec.structs.replace(base, kind="shoot", fields=fields, our_id=None)


def job_records(shoot: PulledRecord) -> list[PulledRecord]:
    """The ``job`` record a live shoot-date entry speaks for (none for others)."""
    fields = shoot.fields
    if shoot.deleted or fields.get("entry_type") not in JOB_ENTRY_TYPES or not fields.get("job"):
        return []
    # One field: only the booking status of the job is news for a journey.
    status, when = {"status": fields["status"]}, shoot.modified_at
    return [PulledRecord(vendor_id=fields["job"], kind="job", fields=status, modified_at=when)]
