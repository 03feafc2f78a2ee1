"""The ``gcal`` connector (this package is the plugin): Google Calendar API v3 with OAuth2.

Out: the wedding day and dated journey steps become calendar events with our own ids. In:
``events.list`` with sync tokens, and watch-channel notifications that ask for a sync. Other
connectors that read a Google Calendar (Studio Ninja) import the schemas, ``authenticate`` /
``refresh_access_token``, ``GcalClient``, ``list_events_page`` and ``event_record`` from here.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from journeyhub.kit import (
    Connection,
    ConnectorInfo,
    DeliveryTask,
    Known,
    OAuthClient,
    PullPage,
    PushResult,
    RateLimit,
    StoredWebhook,
    TriggerDraft,
    VendorHttp,
    WebhookReceipt,
    hookimpl,
)

from journeyhub_gcal import sync
from journeyhub_gcal.client import GcalClient, authenticate, oauth_client
from journeyhub_gcal.client import refresh_access_token as refresh_access_token
from journeyhub_gcal.config import DEFAULT_FIELD_MAPPINGS, GcalConfig, GcalCredentials
from journeyhub_gcal.events import PUSH_EVENT_TYPES, Pusher
from journeyhub_gcal.sync import event_record as event_record
from journeyhub_gcal.sync import list_events_page


@hookimpl
def journeyhub_connector() -> ConnectorInfo:
    return ConnectorInfo(
        vendor="gcal",
        display_name="Google Calendar",
        capabilities=frozenset({"push", "pull", "webhook"}),
        auth_kind="oauth2",
        config_schema=GcalConfig,
        credentials_schema=GcalCredentials,
        # Google's quota is 600 requests/min per user per project (10/s, sliding window). A
        # push makes 1 call (patch) or 2 (patch 404, insert), so 5 pushes/s stays within it,
        # leaving room for syncs of the same account.
        rate_limit=RateLimit(requests=5),
        webhook_event_types=sync.STATES,
        push_event_types=PUSH_EVENT_TYPES,
        default_field_mappings=DEFAULT_FIELD_MAPPINGS,
        # Watch notifications ask for a sync as changes happen; the schedule is the safety net.
        pull_interval_seconds=900.0,
        sync_on_webhook=True,
        docs_url="https://developers.google.com/calendar/api/v3/reference",
    )


# OAuth works on the raw credentials: it returns them whole with the new token, and a missing
# refresh token must ask for a person (ReauthRequired), not fail as a bad schema.
@hookimpl
async def journeyhub_authenticate(
    config: GcalConfig, credentials: Mapping[str, Any], http: VendorHttp, refused: bool
) -> Mapping[str, Any] | None:
    return await authenticate(http, config, credentials, refused)


@hookimpl
def journeyhub_oauth_client(config: GcalConfig, credentials: Mapping[str, Any]) -> OAuthClient:
    # The raw credentials: a connection without a refresh token yet is what this is for.
    return oauth_client(config, credentials)


@hookimpl
async def journeyhub_maintain(
    config: GcalConfig,
    creds: GcalCredentials,
    http: VendorHttp,
    webhook_url: str,
    state: Mapping[str, Any],
) -> Mapping[str, Any] | None:
    """Keep a watch channel open on the calendar, renewed before it expires. Without a
    channel_token, notifications are off and the schedule alone syncs."""
    if not creds.channel_token:
        return None
    channel = state.get("channel")
    expiration = channel.get("expiration") if isinstance(channel, Mapping) else None
    margin = config.watch_renew_margin_seconds
    if channel and not sync.needs_renewal(expiration, time.time(), margin):
        return None
    fresh = await sync.renew_watch(
        http, config, creds, webhook_url, channel, creds.channel_token, config.watch_ttl_seconds
    )
    return {"channel": fresh}


@hookimpl
async def journeyhub_push(
    task: DeliveryTask,
    connection: Connection,
    config: GcalConfig,
    creds: GcalCredentials,
    idempotency_key: str,
    http: VendorHttp,
    known: Known,
) -> PushResult:
    if task.event is None:
        return PushResult(status="skipped", detail="only journey events go to Google Calendar")
    cal = GcalClient(http, config, creds)
    return await Pusher(cal, task.event, task.mapped, idempotency_key, known).push(connection.id)


@hookimpl
async def journeyhub_pull(
    config: GcalConfig, creds: GcalCredentials, cursor: str | None, http: VendorHttp
) -> PullPage:
    return await list_events_page(http, config, creds, cursor)


@hookimpl
def journeyhub_verify_webhook(
    credentials: Mapping[str, Any], headers: Mapping[str, str]
) -> WebhookReceipt:
    # The raw credentials: refuse, never fail. Google sends headers only, no body, no timestamp.
    return sync.verify(credentials, headers)


@hookimpl
def journeyhub_handle_webhook(webhook: StoredWebhook) -> list[TriggerDraft] | None:
    # Only "something changed": the kernel runs a sync, and the pulled records make triggers.
    return [] if webhook.event_type in sync.STATES else None


@hookimpl
async def journeyhub_check_connection(
    config: GcalConfig, credentials: Mapping[str, Any], http: VendorHttp
) -> str:
    # The check may get stored credentials with a stale token: refresh for this call only.
    fresh = await authenticate(http, config, credentials) or credentials
    cal = GcalClient(http, config, fresh)
    calendar = await cal.calendar()
    name = calendar.get("summary") or calendar.get("id")
    return f"Google Calendar answered {cal.last_status}: calendar {name!r}"
