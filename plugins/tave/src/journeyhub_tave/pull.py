"""Pull contacts and jobs changed since the last sync.

The API pages by number and sorts by ``modified desc`` but cannot filter by time, so one sync
run walks each collection from the newest record down to the watermark (the newest ``modified``
of the previous run), contacts first, then jobs. The cursor is plain JSON:

``{"v": 1, "kind": "contact"|"job", "page": n,
   "marks": {kind: {"at": iso|None, "ids": [...]}},   # watermark of the last finished run
   "run": {"at": iso|None, "ids": [...], "total": n|None}}``   # the run in progress

- The same cursor asks for the same page, so a repeated page gives the same records.
- Records at exactly the watermark time are compared by id (``ids``), so a record that shares
  its ``modified`` second with the watermark is neither skipped nor sent twice.
- A record changed during a run jumps to page 1 (already read): it is newer than this run's
  top, so the next run gets it. Records that disappear mid-run shift later ones to earlier
  pages; a drop in ``meta.totalItems`` restarts the walk, so none is skipped.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
from journeyhub.errors import PermanentError
from journeyhub.model import PulledRecord, PullPage

from journeyhub_tave import client as api
from journeyhub_tave.client import Mappings, TaveClient

KINDS = ("contact", "job")
PATHS = {"contact": api.CONTACTS, "job": api.JOBS}
CLIENT_KINDS = {"person", "company"}  # employees and locations are not the studio's clients


class Mark(msgspec.Struct, kw_only=True):
    at: str | None = None
    ids: list[str] = []


class Run(Mark, kw_only=True):
    total: int | None = None


class Cursor(msgspec.Struct, kw_only=True):
    v: int = 1
    kind: str = "contact"
    page: int = 1
    marks: dict[str, Mark] = {}
    run: Run = msgspec.field(default_factory=Run)

    @classmethod
    def load(cls, raw: str | None) -> Cursor:
        if not raw:
            return cls()
        try:
            cursor = msgspec.json.decode(raw, type=cls)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise PermanentError(f"unreadable Tave pull cursor: {exc}") from None
        if cursor.kind not in KINDS or cursor.page < 1:
            raise PermanentError("unreadable Tave pull cursor: bad kind or page")
        return cursor

    def dump(self) -> str:
        return msgspec.json.encode(self).decode()


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _phone(record: dict[str, Any]) -> str | None:
    for name in ("cellPhone", "phone", "homePhone", "workPhone"):
        value = record.get(name)
        if isinstance(value, dict) and (value.get("e164") or value.get("formatted")):
            return value.get("e164") or value.get("formatted")
    return None


def contact_record(item: dict[str, Any], maps: Mappings) -> PulledRecord:
    name = item.get("name") or " ".join(
        p for p in (item.get("firstName"), item.get("lastName")) if isinstance(p, str) and p
    )
    return PulledRecord(
        vendor_id=str(item["id"]),
        kind="contact",
        fields={
            "name": name or None,
            "first_name": item.get("firstName"),
            "last_name": item.get("lastName"),
            "email": item.get("email"),
            "phone": _phone(item),
            "contact_kind": item.get("kind"),
        },
        modified_at=parse_time(item.get("modified")),
        deleted=bool(item.get("hidden")),
        our_id=maps.ours(item, "client"),
    )


def job_record(item: dict[str, Any], maps: Mappings) -> PulledRecord:
    return PulledRecord(
        vendor_id=str(item["id"]),
        kind="job",
        fields={
            "name": item.get("name") or item.get("title"),
            "wedding_date": item.get("eventDate"),
            "status": item.get("stage"),
            "lead_status": item.get("leadStatusName"),
            "closed": item.get("closed"),
            "guest_count": item.get("guestCount"),
            "job_type": item.get("jobTypeName"),
            # Our journey instance, when we made the job. A job's client is a contact, so
            # our_id (the client's id) comes from the link our push recorded, not from here.
            "journey_instance_id": maps.ours(item, "journey"),
        },
        modified_at=parse_time(item.get("modified")),
        deleted=bool(item.get("hidden")),
        our_id=None,
    )


async def pull(
    tave: TaveClient, maps: Mappings, raw_cursor: str | None, page_size: int
) -> PullPage:
    cursor = Cursor.load(raw_cursor)
    kind, mark, run = cursor.kind, cursor.marks.get(cursor.kind, Mark()), cursor.run
    params: dict[str, Any] = {
        "page": cursor.page,
        "pageSize": page_size,
        "sortBy": api.SORT_MODIFIED_DESC,
    }
    if kind == "contact":
        params["includeHidden"] = "true"  # hidden (deleted) contacts come back flagged
    else:
        params["includeClosed"] = "true"  # the job list has no includeHidden
    items, meta = await tave.page(PATHS[kind], **params)
    total = meta.get("totalItems") if isinstance(meta.get("totalItems"), int) else None
    if cursor.page > 1 and run.total is not None and total is not None and total < run.total:
        # Records vanished since the last page: pages moved up. Walk again from the top.
        restart = Cursor(kind=kind, page=1, marks=cursor.marks)
        return PullPage(records=[], next_cursor=restart.dump(), has_more=True)

    watermark = parse_time(mark.at)
    records: list[PulledRecord] = []
    reached = False
    top, top_ids = parse_time(run.at), list(run.ids)
    for item in items:
        modified = parse_time(item.get("modified"))
        if not item.get("id") or modified is None:
            continue
        if watermark is not None and modified < watermark:
            reached = True  # everything further down is older still
            break
        record_id = str(item["id"])
        if top is None or modified > top:
            top, top_ids = modified, [record_id]
        elif modified == top and record_id not in top_ids:
            top_ids.append(record_id)
        # Records stamped in the watermark's own second are read again: the API's times have
        # one-second resolution, so an edit made in the second of the last sync looks the same
        # by time alone. The kernel compares fingerprints, so re-reading them emits nothing.
        if kind == "contact":
            if item.get("kind") in CLIENT_KINDS:
                records.append(contact_record(item, maps))
        else:
            records.append(job_record(item, maps))

    run = Run(at=_iso(top), ids=top_ids, total=total)
    last_page = int(meta.get("totalPages") or 0) <= cursor.page or len(items) < page_size
    if not reached and not last_page:
        following = Cursor(kind=kind, page=cursor.page + 1, marks=cursor.marks, run=run)
        return PullPage(records=records, next_cursor=following.dump(), has_more=True)

    # This collection is done: its new watermark is the newest record this run saw.
    marks = dict(cursor.marks)
    if run.at is not None:
        ids = run.ids + [i for i in mark.ids if i not in run.ids] if run.at == mark.at else run.ids
        marks[kind] = Mark(at=run.at, ids=ids)
    if kind == "contact":
        following = Cursor(kind="job", page=1, marks=marks)
        return PullPage(records=records, next_cursor=following.dump(), has_more=True)
    following = Cursor(kind="contact", page=1, marks=marks)
    return PullPage(records=records, next_cursor=following.dump(), has_more=False)


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None
