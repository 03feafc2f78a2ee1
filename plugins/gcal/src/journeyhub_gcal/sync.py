"""Reading the calendar: ``events.list`` with Google's sync tokens, and the watch channels whose
notifications ask for a sync ("Synchronize resources efficiently", "Push notifications").

- Full sync (no cursor): ``timeMin`` = now - ``sync_window_days``, ``showDeleted=true``, paged
  by ``pageToken``; only the last page has ``nextSyncToken``. Incremental: ``syncToken`` (+
  ``pageToken``), never with ``timeMin`` (refused); deletions come as ``status: "cancelled"``.
  ``singleEvents`` stays false (a recurring event is one series event) in both syncs alike.
- 410 Gone (``fullSyncRequired``): the token expired; the page returned is the first page of a
  full resync, whose cursors say ``"resync": true`` (the kernel dedupes records by fingerprint).
- A notification is a POST with only headers (``X-Goog-Channel-ID``, ``-Token``: the token we
  gave the channel, ``X-Goog-Resource-State``: ``sync`` when it opens, then ``exists`` /
  ``not_exists``, ``X-Goog-Message-Number``...): "something changed". A channel cannot be
  extended: before it expires, a new one is opened and the old one stopped.
"""

from __future__ import annotations

import contextlib
import hmac
import re
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypeAlias

import msgspec
from journeyhub.kit import (
    PermanentError,
    PullPage,
    RetryableError,
    VendorHttp,
    WebhookReceipt,
    WebhookRejected,
)
from journeyhub.model import PulledRecord

from journeyhub_gcal import events as ev
from journeyhub_gcal.client import GcalClient
from journeyhub_gcal.config import GcalConfig, GcalCredentials

STATES = ("sync", "exists", "not_exists")
CHANNEL_ID = re.compile(r"^[A-Za-z0-9\-_+/=]{1,64}$")  # Google's channel id alphabet, ≤ 64
Creds: TypeAlias = Mapping[str, Any] | GcalCredentials


class Cursor(msgspec.Struct, kw_only=True, omit_defaults=True):
    sync_token: str | None = None
    page_token: str | None = None
    time_min: str | None = None  # the full sync's bound, repeated on each of its pages
    resync: bool = False  # this page belongs to a full resync after a 410

    @classmethod
    def load(cls, raw: str | None) -> Cursor:
        try:
            return msgspec.json.decode(raw, type=cls) if raw else cls()
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise PermanentError(f"unreadable Google Calendar pull cursor: {exc}") from None

    def dump(self) -> str:
        return msgspec.json.encode(self).decode()

    def params(self, page_size: int) -> dict[str, Any]:
        """events.list's query: the sync token, else the full sync's bound (None is left out)."""
        bound = {"syncToken": self.sync_token} if self.sync_token else {"timeMin": self.time_min}
        return {"maxResults": page_size, "showDeleted": True, "pageToken": self.page_token, **bound}


def full_sync(config: GcalConfig, resync: bool = False) -> Cursor:
    start = datetime.now(UTC) - timedelta(days=config.sync_window_days)
    return Cursor(time_min=start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), resync=resync)


def _when(value: Any) -> str | None:
    found = (value.get("date") or value.get("dateTime")) if isinstance(value, Mapping) else None
    return found if isinstance(found, str) else None


def event_record(item: dict[str, Any]) -> PulledRecord | None:
    """One calendar event as a pulled record (None for an item without an id)."""
    vendor_id = item.get("id")
    if not isinstance(vendor_id, str) or not vendor_id:
        return None
    status = item.get("status") if isinstance(item.get("status"), str) else "confirmed"
    private = ev.private_properties(item)
    pushed, current = ev.echo_of(item)
    updated = ev.parse_when(item.get("updated"), UTC)
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
        kind="calendar_event",
        fields=fields,
        modified_at=updated if isinstance(updated, datetime) else None,
        deleted=status == "cancelled",
        our_id=private.get(ev.P_CLIENT),
    )


async def list_events_page(
    http: VendorHttp,
    config: GcalConfig,
    credentials: Creds,
    cursor: str | None,
    *,
    record: Callable[[dict[str, Any]], PulledRecord | None] = event_record,
) -> PullPage:
    """One page of the calendar in ``config`` from ``cursor``. Reused by other connectors (Studio
    Ninja), with their own ``record`` to turn events into their records (None skips one)."""
    cal = GcalClient(http, config, credentials)
    state = Cursor.load(cursor)
    # The flag describes the pages of one resync; a finished sync's cursor starts afresh.
    resync = state.resync and state.page_token is not None
    if not state.sync_token and not state.page_token:
        state = full_sync(config)
    while True:
        params = state.params(config.page_size)
        status, body = await cal.call("GET", cal.events_path, params=params, allow=(410,))
        if status != 410:
            break
        if not state.sync_token and not state.page_token:  # 410 to a full sync: Google's fault
            which = "full resync" if resync else "full sync"
            raise RetryableError(f"Google Calendar answered 410 to a {which}; retry later")
        state, resync = full_sync(config, resync=True), True
    page: Any = body if isinstance(body, dict) else {}
    items = page.get("items") if isinstance(page.get("items"), list) else []
    records = [r for item in items if isinstance(item, dict) and (r := record(item)) is not None]
    page_token, sync_token = page.get("nextPageToken"), page.get("nextSyncToken")
    if isinstance(page_token, str) and page_token:
        following = msgspec.structs.replace(state, page_token=page_token, resync=resync)
        return PullPage(records=records, next_cursor=following.dump(), has_more=True)
    if isinstance(sync_token, str) and sync_token:
        done = Cursor(sync_token=sync_token, resync=resync)
        return PullPage(records=records, next_cursor=done.dump(), has_more=False)
    raise RetryableError("Google Calendar answered events.list with neither page nor sync token")


def verify(credentials: Mapping[str, Any], headers: Mapping[str, str]) -> WebhookReceipt:
    """Check the channel token (constant time); the id is ``<channel id>:<message number>``."""
    token = headers.get("x-goog-channel-token")
    if not token:
        raise WebhookRejected("missing_signature", "no X-Goog-Channel-Token header")
    expected = credentials.get("channel_token")
    if not isinstance(expected, str) or not expected:
        raise WebhookRejected("bad_token", "this connection has no channel_token")
    # surrogatepass: garbage header text must be rejected, not crash the encoder.
    given, wanted = (text.encode("utf-8", "surrogatepass") for text in (token, expected))
    if not hmac.compare_digest(given, wanted):
        raise WebhookRejected("bad_token", "the channel token does not match this connection")
    channel = headers.get("x-goog-channel-id") or ""
    number = headers.get("x-goog-message-number") or ""
    state = headers.get("x-goog-resource-state") or ""
    if not CHANNEL_ID.match(channel):
        raise WebhookRejected("bad_body", "missing or malformed X-Goog-Channel-ID")
    if not (number.isascii() and number.isdigit() and len(number) <= 20):
        raise WebhookRejected("bad_body", "missing or malformed X-Goog-Message-Number")
    if state not in STATES:
        raise WebhookRejected("bad_body", "unknown X-Goog-Resource-State")
    return WebhookReceipt(event_id=f"{channel}:{number}", event_type=state)


async def start_watch(
    http: VendorHttp,
    config: GcalConfig,
    credentials: Creds,
    address: str,
    channel_id: str,
    token: str,
    ttl_seconds: int,
) -> dict[str, Any]:
    """Open a channel: ``{"id", "resourceId", "expiration" (epoch ms), "resourceUri"}``."""
    if not CHANNEL_ID.match(channel_id):
        raise ValueError("channel_id must be 1-64 of A-Z, a-z, 0-9, -, _, +, /, =")
    wanted = int((time.time() + ttl_seconds) * 1000)
    lifetime = {"expiration": wanted, "params": {"ttl": str(int(ttl_seconds))}}
    body = {"id": channel_id, "type": "web_hook", "address": address, "token": token, **lifetime}
    cal = GcalClient(http, config, credentials)
    _, answer = await cal.call("POST", f"{cal.events_path}/watch", json=body)
    answer = answer if isinstance(answer, dict) else {}
    resource_id = answer.get("resourceId")
    if not isinstance(resource_id, str) or not resource_id:
        raise RetryableError("Google Calendar opened a channel without a resourceId")
    # Google may shorten the lifetime asked for: its answer (an int64 string) is what counts.
    with contextlib.suppress(KeyError, TypeError, ValueError):
        wanted = int(answer["expiration"]) or wanted
    channel = {"id": str(answer.get("id") or channel_id), "resourceId": resource_id}
    return {**channel, "expiration": wanted, "resourceUri": answer.get("resourceUri")}


async def stop_watch(
    http: VendorHttp, config: GcalConfig, credentials: Creds, channel_id: str, resource_id: str
) -> bool:
    """Stop a channel; False when Google did not know it any more (expired or stopped)."""
    body = {"id": channel_id, "resourceId": resource_id}
    cal = GcalClient(http, config, credentials)
    status, _ = await cal.call("POST", "/channels/stop", json=body, allow=(404,))
    return status != 404


def needs_renewal(
    expiration_ms: int | None, now: datetime | float, margin: timedelta | float
) -> bool:
    """Whether a channel expiring at ``expiration_ms`` (epoch ms, None: unknown) is within
    ``margin`` of ``now`` (a datetime or epoch seconds)."""
    if expiration_ms is None:
        return True
    now_s = now.timestamp() if isinstance(now, datetime) else float(now)
    margin_s = margin.total_seconds() if isinstance(margin, timedelta) else float(margin)
    return expiration_ms / 1000.0 - now_s <= margin_s


async def renew_watch(
    http: VendorHttp,
    config: GcalConfig,
    credentials: Creds,
    address: str,
    old: Mapping[str, Any] | None,
    token: str,
    ttl_seconds: int,
    channel_id: str | None = None,
) -> dict[str, Any]:
    """Open the next channel, then stop ``old``: no gap. Failing to stop it is no error: it
    expires by itself, and its notifications carry the same token."""
    channel_id = channel_id or f"jh-{uuid.uuid4().hex}"
    fresh = await start_watch(http, config, credentials, address, channel_id, token, ttl_seconds)
    if old and old.get("id") and old.get("resourceId") and old.get("id") != fresh["id"]:
        with contextlib.suppress(RetryableError):
            await stop_watch(http, config, credentials, str(old["id"]), str(old["resourceId"]))
    return fresh
