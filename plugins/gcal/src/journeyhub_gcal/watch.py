"""Watch channels: Google's push notifications for a calendar's events.

A notification is a POST with headers only, no body (Calendar "Push notifications" guide):
``X-Goog-Channel-ID``, ``X-Goog-Channel-Token`` (the ``token`` we gave the channel),
``X-Goog-Channel-Expiration``, ``X-Goog-Resource-ID``, ``X-Goog-Resource-URI``,
``X-Goog-Resource-State`` (``sync`` once when the channel opens, then ``exists`` /
``not_exists``) and ``X-Goog-Message-Number``. It only says "something changed": the kernel
answers it by running a sync (``journeyhub_pull``), which reads the changes themselves.

A channel cannot be extended: before ``expiration`` a new one is opened and the old one stopped
(``needs_renewal`` / ``renew_watch``, called by the kernel's scheduler).
"""

from __future__ import annotations

import contextlib
import hmac
import re
import time
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from journeyhub.errors import RetryableError, WebhookRejected
from journeyhub.model import WebhookReceipt
from journeyhub.vendor_http import VendorHttp

from journeyhub_gcal.client import GcalClient
from journeyhub_gcal.config import GcalConfig

STATES = ("sync", "exists", "not_exists")
H_CHANNEL = "x-goog-channel-id"
H_TOKEN = "x-goog-channel-token"  # noqa: S105 (a header name)
H_STATE = "x-goog-resource-state"
H_NUMBER = "x-goog-message-number"
H_RESOURCE = "x-goog-resource-id"
CHANNEL_ID = re.compile(r"^[A-Za-z0-9\-_+/=]{1,64}$")  # Google's channel id alphabet, ≤ 64


def _same(given: str, expected: str) -> bool:
    # surrogatepass: garbage header text must be rejected, not crash the encoder.
    return hmac.compare_digest(
        given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    )


def verify(credentials: Mapping[str, Any], headers: Mapping[str, str]) -> WebhookReceipt:
    """Check the channel token (constant time) and name the notification:
    ``<channel id>:<message number>``, typed by its resource state."""
    token = headers.get(H_TOKEN)
    if not token:
        raise WebhookRejected("missing_signature", "no X-Goog-Channel-Token header")
    expected = credentials.get("channel_token")
    if not isinstance(expected, str) or not expected:
        raise WebhookRejected("bad_token", "this connection has no channel_token")
    if not isinstance(token, str) or not _same(token, expected):
        raise WebhookRejected("bad_token", "the channel token does not match this connection")
    channel = headers.get(H_CHANNEL) or ""
    number = headers.get(H_NUMBER) or ""
    state = headers.get(H_STATE) or ""
    if not CHANNEL_ID.match(channel):
        raise WebhookRejected("bad_body", "missing or malformed X-Goog-Channel-ID")
    if not (number.isascii() and number.isdigit() and len(number) <= 20):
        raise WebhookRejected("bad_body", "missing or malformed X-Goog-Message-Number")
    if state not in STATES:
        raise WebhookRejected("bad_body", "unknown X-Goog-Resource-State")
    return WebhookReceipt(event_id=f"{channel}:{number}", event_type=state)


def new_channel_id() -> str:
    return f"jh-{uuid.uuid4().hex}"


def expiration_ms(channel: Mapping[str, Any]) -> int | None:
    """A channel's ``expiration`` (Google sends an int64 as a string)."""
    raw = channel.get("expiration")
    try:
        return int(raw) if raw is not None else None
    except (TypeError, ValueError):
        return None


async def start_watch(
    http: VendorHttp,
    config: GcalConfig,
    credentials: Mapping[str, Any],
    address: str,
    channel_id: str,
    token: str,
    ttl_seconds: int,
) -> dict[str, Any]:
    """Open a channel on the calendar's events; ``{"id", "resourceId", "expiration",
    "resourceUri"}`` (expiration in epoch milliseconds, as Google counts it)."""
    if not CHANNEL_ID.match(channel_id):
        raise ValueError("channel_id must be 1-64 of A-Z, a-z, 0-9, -, _, +, /, =")
    wanted = int((time.time() + ttl_seconds) * 1000)
    body = {
        "id": channel_id,
        "type": "web_hook",
        "address": address,
        "token": token,
        "expiration": wanted,
        "params": {"ttl": str(int(ttl_seconds))},
    }
    answer = await GcalClient(http, config, credentials).watch(body)
    resource_id = answer.get("resourceId")
    if not isinstance(resource_id, str) or not resource_id:
        raise RetryableError("Google Calendar opened a channel without a resourceId")
    return {
        "id": str(answer.get("id") or channel_id),
        "resourceId": resource_id,
        # Google may shorten the lifetime asked for: its answer is what counts.
        "expiration": expiration_ms(answer) or wanted,
        "resourceUri": answer.get("resourceUri"),
    }


async def stop_watch(
    http: VendorHttp,
    config: GcalConfig,
    credentials: Mapping[str, Any],
    channel_id: str,
    resource_id: str,
) -> bool:
    """Stop a channel; False when Google did not know it any more (expired or stopped)."""
    return await GcalClient(http, config, credentials).stop_channel(channel_id, resource_id)


def needs_renewal(
    expiration_ms: int | None, now: datetime | float, margin: timedelta | float
) -> bool:
    """True when a channel expiring at ``expiration_ms`` (epoch ms) is within ``margin`` of
    ``now`` (a datetime or epoch seconds), or has no known expiration."""
    if expiration_ms is None:
        return True
    now_s = now.timestamp() if isinstance(now, datetime) else float(now)
    margin_s = margin.total_seconds() if isinstance(margin, timedelta) else float(margin)
    return expiration_ms / 1000.0 - now_s <= margin_s


async def renew_watch(
    http: VendorHttp,
    config: GcalConfig,
    credentials: Mapping[str, Any],
    address: str,
    old: Mapping[str, Any] | None,
    token: str,
    ttl_seconds: int,
    channel_id: str | None = None,
) -> dict[str, Any]:
    """Open the next channel, then stop ``old`` (``{"id", "resourceId"}``): opening first
    leaves no gap without notifications. A failure to stop the old one is not an error: it
    expires by itself, and its notifications carry the same token."""
    fresh = await start_watch(
        http, config, credentials, address, channel_id or new_channel_id(), token, ttl_seconds
    )
    if old and old.get("id") and old.get("resourceId") and old.get("id") != fresh["id"]:
        with contextlib.suppress(RetryableError):
            await stop_watch(http, config, credentials, str(old["id"]), str(old["resourceId"]))
    return fresh
