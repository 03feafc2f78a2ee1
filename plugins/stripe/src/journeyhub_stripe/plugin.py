"""The Stripe connector: inbound only (payments originate at Stripe). Webhooks are the main
channel; ``pull`` catches up with the events a webhook missed through ``GET /v1/events``. Both
map with :func:`~journeyhub_stripe.mapping.drafts_for_event`: one Stripe event, one trigger."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from functools import partial
from typing import Any

import msgspec
from journeyhub.configs import config_as
from journeyhub.kit import (
    Connection,
    ConnectorInfo,
    PermanentError,
    PullPage,
    RateLimit,
    RetryableError,
    StoredWebhook,
    TriggerDraft,
    VendorHttp,
    WebhookReceipt,
    hookimpl,
)
from journeyhub.logs import get_logger

from journeyhub_stripe.mapping import API_VERSION, EVENT_TYPES, drafts_for_event, occurred_at
from journeyhub_stripe.schemas import StripeConfig, StripeCredentials
from journeyhub_stripe.verify import HEADER, parse_event, verify_signature

PAGE_SIZE = 100  # Stripe's maximum page
_OURS = [("types[]", event_type) for event_type in EVENT_TYPES]  # the event types we map
_KEY_SHAPED = re.compile(r"\b(sk|rk|pk)_(live|test)_[A-Za-z0-9*]+")
log = get_logger(__name__)


@hookimpl
def journeyhub_connector() -> ConnectorInfo:
    return ConnectorInfo(
        vendor="stripe",
        display_name="Stripe",
        capabilities=frozenset({"webhook", "pull"}),
        auth_kind="api_key",
        config_schema=StripeConfig,
        credentials_schema=StripeCredentials,
        # Stripe allows 100 reads/s per account live and 25/s in test mode, shared with the
        # account's own integration: 25/s fits both and leaves a live account most of its budget.
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
    # The raw credentials, not ``creds``: verification must refuse, never fail, whatever is
    # stored. The connection, not ``config``: benchmarks and tests call this hook directly.
    tolerance = config_as(connection, StripeConfig).tolerance_seconds
    previous = credentials.get("previous_webhook_secrets")
    found = [credentials.get("webhook_secret"), *(previous if isinstance(previous, list) else [])]
    secrets = [secret for secret in found if isinstance(secret, str) and secret]
    verify_signature(headers.get(HEADER), body, secrets, now=now, tolerance=tolerance)
    event = parse_event(body)
    return WebhookReceipt(event_id=event.id, event_type=event.type)


@hookimpl
def journeyhub_handle_webhook(webhook: StoredWebhook) -> list[TriggerDraft] | None:
    try:
        event = msgspec.json.decode(webhook.body, type=dict[str, Any])
    except (msgspec.DecodeError, msgspec.ValidationError):
        raise PermanentError("the stored Stripe webhook body is not a JSON object") from None
    return drafts_for_event(event)


class CursorGone(PermanentError):
    """Stripe no longer knows the cursor event (events are kept 30 days)."""


async def _events(
    http: VendorHttp, config: StripeConfig, api_key: str, *query: tuple[str, Any]
) -> tuple[list[dict[str, Any]], bool]:
    """``GET /v1/events``, newest first (with ``ending_before``, the events just newer than that
    one): the events listed, and whether more follow. ``Stripe-Version`` pins the shape of the
    answer and its errors (not of the events' data: see :mod:`.mapping`)."""
    response = await http.get(
        f"{config.api_base}/v1/events",
        params=query,
        headers={"authorization": f"Bearer {api_key}", "stripe-version": API_VERSION},
        timeout=config.timeout_seconds,
    )
    try:
        body = msgspec.json.decode(response.content, type=dict[str, Any])
    except (msgspec.DecodeError, msgspec.ValidationError):
        body = {}
    if response.is_success and isinstance(body.get("data"), list):
        events = [e for e in body["data"] if isinstance(e, dict) and isinstance(e.get("id"), str)]
        return events, bool(body.get("has_more"))
    if response.is_success:
        raise RetryableError("Stripe answered with a body that is not an event list")
    error = body["error"] if isinstance(body.get("error"), dict) else {}
    said = [f"{f}={error[f]}" for f in ("type", "code", "param") if isinstance(error.get(f), str)]
    # Stripe's 401/403 messages echo a masked form of the refused key (sk_test_****abcd), so
    # they are never passed on, and other messages lose anything key-shaped.
    if response.status_code in (401, 403):
        said.append("(the API key was refused or cannot read Events)")
    elif isinstance(message := error.get("message"), str):
        said.append(_KEY_SHAPED.sub("[redacted]", message.replace(api_key, "[redacted]")))
    text = f"Stripe answered {response.status_code}" + (": " + " ".join(said) if said else "")
    if error.get("code") == "resource_missing" and error.get("param") == "ending_before":
        raise CursorGone(text, vendor_status=response.status_code)
    raise response.error(text)


@hookimpl
async def journeyhub_pull(
    connection: Connection,
    config: StripeConfig,
    creds: StripeCredentials,
    cursor: str | None,
    http: VendorHttp,
) -> PullPage:
    """Events newer than ``cursor`` (the newest one processed), oldest first. Without a cursor,
    the newest event becomes it: catch-up starts at the first sync (webhooks carry the rest)."""
    if creds.api_key is None:  # webhooks only: nothing to catch up with
        return PullPage(next_cursor=cursor)
    events = partial(_events, http, config, creds.api_key)
    if cursor is not None:
        try:
            listed, more = await events(("limit", PAGE_SIZE), ("ending_before", cursor), *_OURS)
        except CursorGone:
            # Stripe keeps events 30 days (or the key now reads another account): what lies
            # before the newest event cannot be fetched any more, so start again from it.
            log.warning("stripe_cursor_gone", connection_id=connection.id, cursor=cursor)
        else:
            triggers = [d for event in reversed(listed) for d in drafts_for_event(event) or []]
            newest = listed[0]["id"] if listed else cursor
            return PullPage(triggers=triggers, next_cursor=newest, has_more=more and bool(listed))
    listed, _ = await events(("limit", 1), *_OURS)
    return PullPage(next_cursor=listed[0]["id"] if listed else None)


@hookimpl
async def journeyhub_check_connection(
    config: StripeConfig, creds: StripeCredentials, http: VendorHttp
) -> str:
    if creds.api_key is None:
        return "No API key: only webhooks are configured (catch-up of missed events is off)."
    listed, more = await _events(http, config, creds.api_key, ("limit", 1))
    mode = "live" if "_live_" in creds.api_key else "test"
    said = f"Stripe answered 200: the key can read Events ({mode} mode)"
    if not listed:
        return f"{said}; none in the last 30 days."
    created = occurred_at(listed[0].get("created"))
    when = created.isoformat(timespec="seconds") if created else "an unknown time"
    newest = f"{listed[0]['id']} ({listed[0].get('type')}) at {when}"
    return f"{said}; newest {newest}{' and older ones' if more else ''}."
