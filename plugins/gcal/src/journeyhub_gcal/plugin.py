"""The ``gcal`` connector: Google Calendar API v3 with OAuth2.

Out: the wedding day and dated journey steps become calendar events with our own ids.
In: ``events.list`` with sync tokens, and watch-channel notifications that ask for a sync.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from journeyhub.hookspecs import hookimpl
from journeyhub.model import (
    Connection,
    ConnectorInfo,
    DeliveryTask,
    PullPage,
    PushResult,
    RateLimit,
    StoredWebhook,
    TriggerDraft,
    WebhookReceipt,
)
from journeyhub.vendor_http import VendorHttp

from journeyhub_gcal import oauth, pull, push, watch
from journeyhub_gcal.client import GcalClient
from journeyhub_gcal.config import (
    DEFAULT_FIELD_MAPPINGS,
    GcalConfig,
    GcalCredentials,
    load_config,
    mapped_fields,
)

VENDOR = "gcal"


@hookimpl
def journeyhub_connector() -> ConnectorInfo:
    return ConnectorInfo(
        vendor=VENDOR,
        display_name="Google Calendar",
        capabilities=frozenset({"push", "pull", "webhook"}),
        auth_kind="oauth2",
        config_schema=GcalConfig,
        credentials_schema=GcalCredentials,
        # Google's quota is 600 requests/min per user per project (10/s, sliding window). A
        # push makes 1 call (patch) or 2 (patch 404, insert), so 5 pushes/s stays within it,
        # leaving room for syncs of the same account.
        rate_limit=RateLimit(requests=5),
        webhook_event_types=watch.STATES,
        push_event_types=push.PUSH_EVENT_TYPES,
        default_field_mappings=DEFAULT_FIELD_MAPPINGS,
        # Watch notifications ask for a sync as changes happen; the schedule is the safety net.
        pull_interval_seconds=900.0,
        sync_on_webhook=True,
        docs_url="https://developers.google.com/calendar/api/v3/reference",
    )


@hookimpl
async def journeyhub_authenticate(
    connection: Connection, credentials: Mapping[str, Any], http: VendorHttp, refused: bool
) -> Mapping[str, Any] | None:
    if refused:  # Google answered 401 to this token: refresh now, whatever its expiry says
        return await oauth.refresh_access_token(http, load_config(connection), credentials)
    return await oauth.authenticate(http, load_config(connection), credentials)


WATCH_TTL_SECONDS = 7 * 24 * 3600  # Google caps web_hook channels at about a week
WATCH_RENEW_MARGIN = 6 * 3600.0


@hookimpl
async def journeyhub_maintain(
    connection: Connection,
    credentials: Mapping[str, Any],
    http: VendorHttp,
    webhook_url: str,
    state: Mapping[str, Any],
) -> Mapping[str, Any] | None:
    """Keep a watch channel open on the calendar: renewed before it expires (the next one
    opened, then the old one stopped). Without a channel_token, notifications are off and the
    schedule alone syncs."""
    token = credentials.get("channel_token")
    if not token:
        return None
    channel = state.get("channel")
    expiration = channel.get("expiration") if isinstance(channel, Mapping) else None
    if channel and not watch.needs_renewal(expiration, time.time(), WATCH_RENEW_MARGIN):
        return None
    fresh = await watch.renew_watch(
        http, load_config(connection), credentials, webhook_url, channel, token, WATCH_TTL_SECONDS
    )
    return {"channel": fresh}


@hookimpl
async def journeyhub_push(
    task: DeliveryTask,
    connection: Connection,
    credentials: Mapping[str, Any],
    idempotency_key: str,
    http: VendorHttp,
) -> PushResult:
    if task.event is None:
        return PushResult(status="skipped", detail="only journey events go to Google Calendar")
    config = load_config(connection)
    mapped = mapped_fields(task.event, task.mapped, connection)
    cal = GcalClient(http, config, credentials)
    return await push.push(cal, config, task.event, mapped, idempotency_key)


@hookimpl
async def journeyhub_pull(
    connection: Connection,
    credentials: Mapping[str, Any],
    cursor: str | None,
    http: VendorHttp,
) -> PullPage:
    return await pull.list_events_page(http, load_config(connection), credentials, cursor)


@hookimpl
def journeyhub_verify_webhook(
    credentials: Mapping[str, Any], headers: Mapping[str, str]
) -> WebhookReceipt:
    # Headers only: Google's notifications have no body and no timestamp to check.
    return watch.verify(credentials, headers)


@hookimpl
def journeyhub_handle_webhook(webhook: StoredWebhook) -> list[TriggerDraft] | None:
    # A notification carries no change, only "something changed": the kernel runs a sync
    # for the connection, and the pulled records make the triggers.
    if webhook.event_type in watch.STATES:
        return []
    return None


@hookimpl
async def journeyhub_check_connection(
    connection: Connection, credentials: Mapping[str, Any], http: VendorHttp
) -> str:
    config = load_config(connection)
    # The check may get stored credentials with a stale token: refresh for this call only.
    fresh = await oauth.authenticate(http, config, credentials) or credentials
    cal = GcalClient(http, config, fresh)
    calendar = await cal.calendar()
    name = calendar.get("summary") or calendar.get("id")
    return f"Google Calendar answered {cal.last_status}: calendar {name!r}"
