"""Compare a pulled record with what we last knew of it.

Each sync link keeps the vendor's fields as of the last sync (``fields``) and the fields our
own pushes set since then (``pushed_fields``). For every field of a pulled record:

- equal to what we pushed → our own echo: no trigger;
- different from the last known value, and we pushed nothing to it → a real change;
- we pushed a value and the vendor now has a third one → both sides changed it: a conflict,
  decided by the connection's policy (``hub_wins``, ``vendor_wins``, ``newest_wins``).

The first sighting of a record only sets the baseline: a first full sync must not flood the
journey engine with "changes" that are not changes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec

from journeyhub.model import PulledRecord, TriggerDraft

POLICIES = ("hub_wins", "vendor_wins", "newest_wins")
DATE_FIELDS = frozenset({"wedding_date", "date", "event_date"})
STATUS_FIELDS = frozenset({"status", "lead_status", "booked"})
IGNORED_FIELDS = frozenset({"journeyhub_fingerprint", "modified", "updated", "etag", "sequence"})


def fingerprint(fields: dict[str, Any]) -> str:
    canonical = {k: v for k, v in fields.items() if k not in IGNORED_FIELDS}
    return hashlib.sha256(msgspec.json.encode(canonical, order="sorted")).hexdigest()


@dataclass
class Conflict:
    field: str
    hub_value: Any
    vendor_value: Any
    resolution: str  # "hub" or "vendor"


@dataclass
class Outcome:
    changes: dict[str, dict[str, Any]] = field(default_factory=dict)  # field → {old, new}
    echoes: list[str] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    first_sighting: bool = False

    def drafts(self, record: PulledRecord, fp: str) -> list[TriggerDraft]:
        """One trigger per kind of change; ids stable for the same record state."""
        if not self.changes:
            return []
        by_type: dict[str, dict[str, dict[str, Any]]] = {}
        for name, change in self.changes.items():
            by_type.setdefault(trigger_type(record.kind, name), {})[name] = change
        return [
            TriggerDraft(
                type=kind,  # type: ignore[arg-type]
                source_event_id=f"sync:{record.kind}:{record.vendor_id}:{kind}:{fp[:24]}",
                occurred_at=record.modified_at,
                client_id=record.our_id,
                vendor_record_id=record.vendor_id,
                client_email=record.fields.get("email")
                if isinstance(record.fields.get("email"), str)
                else None,
                data={
                    "kind": record.kind,
                    "vendor_id": record.vendor_id,
                    "changes": changes,
                    "deleted": record.deleted,
                },
            )
            for kind, changes in by_type.items()
        ]


def trigger_type(kind: str, field_name: str) -> str:
    if kind in ("calendar_event", "shoot"):
        return "calendar_event_changed"
    if field_name in DATE_FIELDS:
        return "wedding_date_changed"
    if field_name in STATUS_FIELDS:
        return "project_status_changed"
    return "client_updated"


def compare(
    record: PulledRecord,
    known: dict[str, Any] | None,
    pushed: dict[str, Any] | None,
    *,
    pushed_at: datetime | None,
    policy: str = "newest_wins",
) -> Outcome:
    outcome = Outcome()
    if known is None and not pushed:
        outcome.first_sighting = True
        return outcome
    known = known or {}
    pushed = pushed or {}
    if record.deleted:
        outcome.changes["deleted"] = {"old": False, "new": True}
        return outcome
    for name, value in record.fields.items():
        if name in IGNORED_FIELDS:
            continue
        base = known.get(name)
        if name in pushed:
            ours = pushed[name]
            if value == ours:
                outcome.echoes.append(name)
                continue
            if known and value == base:
                continue  # the vendor has not applied our push yet
            # Both sides changed this field since the last sync.
            winner = _resolve(policy, record.modified_at, pushed_at)
            outcome.conflicts.append(Conflict(name, ours, value, winner))
            if winner == "vendor":
                outcome.changes[name] = {"old": ours, "new": value}
            continue
        if name not in known and not known:
            continue
        if value != base:
            outcome.changes[name] = {"old": base, "new": value}
    return outcome


def _resolve(policy: str, vendor_modified: datetime | None, pushed_at: datetime | None) -> str:
    if policy == "hub_wins":
        return "hub"
    if policy == "vendor_wins":
        return "vendor"
    if vendor_modified is None or pushed_at is None:
        return "vendor"
    vendor, ours = _utc(vendor_modified), _utc(pushed_at)
    if vendor.microsecond == 0:  # the vendor keeps whole seconds: compare at that resolution
        ours = ours.replace(microsecond=0)
        return "vendor" if vendor >= ours else "hub"
    return "vendor" if vendor > ours else "hub"


def _utc(moment: datetime) -> datetime:
    """SQLite returns naive datetimes for aware columns; they are UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
