"""The Stripe connector: inbound only (payments originate at Stripe).

Webhooks are the main channel; ``pull`` is a catch-up of events a webhook missed, walked
through ``GET /v1/events`` from the newest event already seen. Both go through
:func:`~journeyhub_stripe.mapping.drafts_for_event`, so one Stripe event makes one trigger
whichever way it arrives.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec
from journeyhub.errors import PermanentError
from journeyhub.hookspecs import hookimpl
from journeyhub.logs import get_logger
from journeyhub.model import (
    Connection,
    ConnectorInfo,
    PullPage,
    RateLimit,
    StoredWebhook,
    TriggerDraft,
    WebhookReceipt,
)
from journeyhub.vendor_http import VendorHttp

from journeyhub_stripe.client import CursorGone, StripeClient
from journeyhub_stripe.mapping import EVENT_TYPES, drafts_for_event
from journeyhub_stripe.schemas import StripeConfig, StripeCredentials
from journeyhub_stripe.verify import HEADER, parse_event, verify_signature

VENDOR = "stripe"
PAGE_SIZE = 100  # Stripe's maximum page
log = get_logger(__name__)


def _config(connection: Connection) -> StripeConfig:
    return msgspec.convert(connection.config, StripeConfig)


def _client(
    connection: Connection, credentials: Mapping[str, Any], http: VendorHttp
) -> StripeClient | None:
    api_key = credentials.get("api_key")
    if not api_key:
        return None
    config = _config(connection)
    return StripeClient(http, config.api_base, api_key, config.timeout_seconds)


def _webhook_secrets(credentials: Mapping[str, Any]) -> list[str]:
    # Read leniently: the gateway must answer 401, never 500, whatever is stored.
    previous = credentials.get("previous_webhook_secrets") or []
    candidates = [
        credentials.get("webhook_secret"),
        *(previous if isinstance(previous, list) else []),
    ]
    return [s for s in candidates if isinstance(s, str) and s]


@hookimpl
def journeyhub_connector() -> ConnectorInfo:
    return ConnectorInfo(
        vendor=VENDOR,
        display_name="Stripe",
        capabilities=frozenset({"webhook", "pull"}),
        auth_kind="api_key",
        config_schema=StripeConfig,
        credentials_schema=StripeCredentials,
        # Stripe allows 100 read requests/s per account in live mode and 25/s in test mode,
        # shared with the account's own integration: 25/s fits both modes and leaves most
        # of a live account's budget to its owner. A catch-up needs a few calls at most.
        rate_limit=RateLimit(requests=25, per_seconds=1),
        webhook_event_types=EVENT_TYPES,
        pull_interval_seconds=300,
        docs_url="https://docs.stripe.com/webhooks",
    )


@hookimpl
def journeyhub_authenticate() -> None:
    return None  # an API key: nothing to refresh


@hookimpl
def journeyhub_verify_webhook(
    connection: Connection,
    credentials: Mapping[str, Any],
    headers: Mapping[str, str],
    body: bytes,
    now: datetime,
) -> WebhookReceipt:
    verify_signature(
        headers.get(HEADER),
        body,
        _webhook_secrets(credentials),
        now=now,
        tolerance=_config(connection).tolerance_seconds,
    )
    event = parse_event(body)
    return WebhookReceipt(event_id=event["id"], event_type=event["type"])


@hookimpl
def journeyhub_handle_webhook(webhook: StoredWebhook) -> list[TriggerDraft] | None:
    try:
        event = msgspec.json.decode(webhook.body)
    except msgspec.DecodeError:
        raise PermanentError("the stored Stripe webhook body is not JSON") from None
    if not isinstance(event, dict):
        raise PermanentError("the stored Stripe webhook body is not a JSON object")
    return drafts_for_event(event)


async def _newest_event_id(client: StripeClient) -> str | None:
    page = await client.list_events(limit=1, types=EVENT_TYPES)
    return next((e["id"] for e in page["data"] if isinstance(e, dict) and "id" in e), None)


@hookimpl
async def journeyhub_pull(
    connection: Connection,
    credentials: Mapping[str, Any],
    cursor: str | None,
    http: VendorHttp,
) -> PullPage:
    """One page of events newer than ``cursor`` (the newest event already processed).

    Without a cursor nothing is replayed: the newest event becomes the cursor, so catch-up
    covers what happens from the first sync on (webhooks cover the live flow).
    """
    client = _client(connection, credentials, http)
    if client is None:  # webhooks only: nothing to catch up with
        return PullPage(next_cursor=cursor)
    if cursor is None:
        return PullPage(next_cursor=await _newest_event_id(client))
    try:
        page = await client.list_events(ending_before=cursor, limit=PAGE_SIZE, types=EVENT_TYPES)
    except CursorGone:
        # Stripe keeps events 30 days (or the key now reads another account): what lies
        # before the newest event cannot be fetched any more, so start again from it.
        log.warning("stripe_cursor_gone", connection_id=connection.id, cursor=cursor)
        return PullPage(next_cursor=await _newest_event_id(client))
    events = [e for e in page["data"] if isinstance(e, dict) and isinstance(e.get("id"), str)]
    triggers: list[TriggerDraft] = []
    for event in reversed(events):  # Stripe lists newest first; triggers go oldest first
        triggers.extend(drafts_for_event(event) or [])
    return PullPage(
        triggers=triggers,
        next_cursor=events[0]["id"] if events else cursor,
        has_more=bool(page.get("has_more")) and bool(events),
    )


@hookimpl
async def journeyhub_check_connection(
    connection: Connection, credentials: Mapping[str, Any], http: VendorHttp
) -> str:
    client = _client(connection, credentials, http)
    if client is None:
        return "No API key: only webhooks are configured (catch-up of missed events is off)."
    page = await client.list_events(limit=1)
    mode = "live" if "_live_" in str(credentials.get("api_key")) else "test"
    newest = next((e for e in page["data"] if isinstance(e, dict)), None)
    if newest is None:
        return (
            f"Stripe answered 200: the key can read Events ({mode} mode); none in the last 30 days."
        )
    created = newest.get("created")
    when = (
        datetime.fromtimestamp(created, UTC).isoformat(timespec="seconds")
        if isinstance(created, int)
        else "an unknown time"
    )
    more = " and older ones" if page.get("has_more") else ""
    return (
        f"Stripe answered 200: the key can read Events ({mode} mode); newest {newest.get('id')} "
        f"({newest.get('type')}) at {when}{more}."
    )
