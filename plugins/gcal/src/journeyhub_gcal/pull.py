"""Pull: ``events.list`` with Google's sync tokens (calendar.v3 discovery document and the
"Synchronize resources efficiently" guide).

- Full sync (no cursor): ``timeMin`` = now - ``sync_window_days`` (a full sync may be bounded;
  ``timeMin`` may not be sent with a ``syncToken``), ``showDeleted=true``, paged by
  ``pageToken``. ``nextPageToken`` comes on every page but the last; only the last page has
  ``nextSyncToken``.
- Incremental sync: ``syncToken`` (+ ``pageToken`` while paging). Deleted events always come
  back, as ``status: "cancelled"``; ``showDeleted`` stays ``true`` (``false`` is refused with
  a sync token, and the same parameters as the full sync are asked for).
- ``singleEvents`` is left at its default (false) in both: recurring events come as one series
  event, which is what a wedding business's calendar holds; the docs allow it either way as long
  as it does not change between the full and the incremental sync.
- 410 Gone (``fullSyncRequired``): the token expired; the page returned is the first page of a
  full resync, and its cursor says ``"resync": true``. The kernel dedupes records by
  fingerprint, so re-reading unchanged events triggers nothing.

The cursor is JSON: ``{"sync_token", "page_token", "time_min", "resync"}`` (unset keys left
out). ``list_events_page`` is public so another connector that reads a Google Calendar (Studio
Ninja syncs its jobs into one) reuses this instead of copying it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from journeyhub.errors import PermanentError, RetryableError
from journeyhub.model import PulledRecord, PullPage
from journeyhub.vendor_http import VendorHttp

from journeyhub_gcal import events as ev
from journeyhub_gcal.client import GcalClient
from journeyhub_gcal.config import GcalConfig

KIND = "calendar_event"
RecordFn = Callable[[dict[str, Any]], PulledRecord | None]


class Cursor(msgspec.Struct, kw_only=True, omit_defaults=True):
    sync_token: str | None = None
    page_token: str | None = None
    time_min: str | None = None  # the full sync's bound, repeated on each of its pages
    resync: bool = False  # this page belongs to a full resync after a 410

    @classmethod
    def load(cls, raw: str | None) -> Cursor:
        if not raw:
            return cls()
        try:
            return msgspec.json.decode(raw, type=cls)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise PermanentError(f"unreadable Google Calendar pull cursor: {exc}") from None

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


def _when(value: Any) -> str | None:
    if not isinstance(value, Mapping):
        return None
    found = value.get("date") or value.get("dateTime")
    return found if isinstance(found, str) else None


def event_record(item: dict[str, Any]) -> PulledRecord | None:
    """One calendar event as a pulled record (None for an item without an id)."""
    vendor_id = item.get("id")
    if not isinstance(vendor_id, str) or not vendor_id:
        return None
    status = item.get("status") if isinstance(item.get("status"), str) else "confirmed"
    private = ev.private_properties(item)
    pushed, current = ev.echo_of(item)
    fields: dict[str, Any] = {
        "summary": item.get("summary"),
        "start": _when(item.get("start")),
        "end": _when(item.get("end")),
        "all_day": isinstance(item.get("start"), Mapping) and "date" in item["start"],
        "location": item.get("location"),
        "status": status,
        "description": item.get("description"),
        # Over our fields for our events, else over all of them: equal means unchanged.
        "fingerprint": current or ev.fingerprint(item, ev.MANAGED),
    }
    if isinstance(item.get("recurringEventId"), str):
        fields["recurring_event_id"] = item["recurringEventId"]
    if pushed:
        fields["journeyhub_fingerprint"] = pushed
        fields["journeyhub_echo"] = pushed == current
        fields["journeyhub_kind"] = private.get(ev.P_KIND)
        fields["journeyhub_journey_instance_id"] = private.get(ev.P_INSTANCE)
    return PulledRecord(
        vendor_id=vendor_id,
        kind=KIND,
        fields=fields,
        modified_at=parse_time(item.get("updated")),
        deleted=status == "cancelled",
        our_id=private.get(ev.P_CLIENT),
    )


def _params(state: Cursor, config: GcalConfig) -> dict[str, str]:
    params = {"maxResults": str(config.page_size), "showDeleted": "true"}
    if state.sync_token:
        params["syncToken"] = state.sync_token
    elif state.time_min:
        params["timeMin"] = state.time_min
    if state.page_token:
        params["pageToken"] = state.page_token
    return params


def full_sync(config: GcalConfig, now: datetime | None = None, resync: bool = False) -> Cursor:
    start = (now or datetime.now(UTC)) - timedelta(days=config.sync_window_days)
    return Cursor(time_min=start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), resync=resync)


async def events_page(
    cal: GcalClient,
    cursor: str | None,
    *,
    record: RecordFn = event_record,
    now: datetime | None = None,
) -> PullPage:
    """One page of the connection's calendar, from ``cursor``."""
    state = Cursor.load(cursor)
    # The flag describes the pages of one resync; a finished sync's cursor starts afresh.
    resync = state.resync and state.page_token is not None
    if not state.sync_token and not state.page_token:
        state = full_sync(cal.config, now)
    answer = await cal.list_events(_params(state, cal.config))
    if answer.status == 410:
        if state.sync_token is None and state.page_token is None:
            raise RetryableError("Google Calendar answered 410 to a full sync; retry later")
        state, resync = full_sync(cal.config, now, resync=True), True
        answer = await cal.list_events(_params(state, cal.config))
        if answer.status == 410:
            raise RetryableError("Google Calendar answered 410 to a full resync; retry later")
    body = answer.body if isinstance(answer.body, dict) else {}
    items = body.get("items") if isinstance(body.get("items"), list) else []
    records = [r for item in items if isinstance(item, dict) and (r := record(item)) is not None]
    page_token, sync_token = body.get("nextPageToken"), body.get("nextSyncToken")
    if isinstance(page_token, str) and page_token:
        following = Cursor(
            sync_token=state.sync_token,
            page_token=page_token,
            time_min=state.time_min,
            resync=resync,
        )
        return PullPage(records=records, next_cursor=following.dump(), has_more=True)
    if isinstance(sync_token, str) and sync_token:
        done = Cursor(sync_token=sync_token, resync=resync)
        return PullPage(records=records, next_cursor=done.dump(), has_more=False)
    raise RetryableError("Google Calendar answered events.list with neither page nor sync token")


async def list_events_page(
    http: VendorHttp,
    config: GcalConfig,
    credentials: Mapping[str, Any],
    cursor: str | None,
    *,
    record: RecordFn = event_record,
    now: datetime | None = None,
) -> PullPage:
    """One page of the calendar in ``config`` with fresh ``credentials`` (an access token).

    For reuse: another connector builds a :class:`GcalConfig` for the calendar it reads and
    passes its own ``record`` to turn events into its records (None skips an event).
    """
    return await events_page(GcalClient(http, config, credentials), cursor, record=record, now=now)
