"""The ``seventeenhats`` connector: 17hats has no public API; its Zapier app covers contacts
only, so contacts go both ways through the user's Zaps by way of the Zapier bridge.

Out: ``journey_started`` / ``client_updated`` → one ``upsert_contact`` action (the Zap finds
the contact by email, creating it if needed, and updates it). In: the New Contact and Updated
Contact triggers, POSTed by Zaps → ``client_updated``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx
from journeyhub.connectors.zapier import (
    ZapierCredentials,
    parse_inbound,
    send_action,
    verify_zapier,
)
from journeyhub.errors import PermanentError, WebhookRejected
from journeyhub.hookspecs import hookimpl
from journeyhub.mapping import apply_mappings, merge_defaults
from journeyhub.model import (
    Connection,
    ConnectorInfo,
    DeliveryTask,
    PushResult,
    RateLimit,
    StoredWebhook,
    TriggerDraft,
    WebhookReceipt,
    stable_id,
    utcnow,
)

from journeyhub_seventeenhats import inbound
from journeyhub_seventeenhats.config import (
    ACTION,
    DEFAULT_FIELD_MAPPINGS,
    SeventeenHatsConfig,
    load_config,
)
from journeyhub_seventeenhats.push import PUSH_EVENT_TYPES, push

VENDOR = "seventeenhats"


def _secret(credentials: Mapping[str, Any]) -> str:
    secret = credentials.get("secret")
    if not isinstance(secret, str) or not secret:
        raise PermanentError("the seventeenhats connection has no secret")
    return secret


@hookimpl
def journeyhub_connector() -> ConnectorInfo:
    return ConnectorInfo(
        vendor=VENDOR,
        display_name="17hats (via Zapier)",
        capabilities=frozenset({"push", "webhook"}),
        auth_kind="shared_secret",
        config_schema=SeventeenHatsConfig,
        credentials_schema=ZapierCredentials,
        # Zapier: about 30 requests/s per catch hook, 10,000 per 5 minutes per Zapier user
        # (shared with the user's other Zaps); 5/s leaves room.
        rate_limit=RateLimit(requests=5, per_seconds=1),
        webhook_event_types=inbound.EVENT_TYPES,
        push_event_types=PUSH_EVENT_TYPES,
        default_field_mappings=DEFAULT_FIELD_MAPPINGS,
        docs_url="https://zapier.com/apps/17hats/integrations",
    )


@hookimpl
async def journeyhub_push(
    task: DeliveryTask,
    connection: Connection,
    credentials: Mapping[str, Any],
    idempotency_key: str,
    http: httpx.AsyncClient,
) -> PushResult:
    event = task.event
    if event is None or event.type not in PUSH_EVENT_TYPES:
        return PushResult(status="skipped", detail="only client changes are pushed to 17hats")
    mapped = task.mapped or apply_mappings(
        merge_defaults(DEFAULT_FIELD_MAPPINGS, connection.field_mappings), event
    )
    return await push(
        http, load_config(connection), _secret(credentials), event, mapped, idempotency_key
    )


@hookimpl
def journeyhub_verify_webhook(
    credentials: Mapping[str, Any],
    headers: Mapping[str, str],
    body: bytes,
    query: Mapping[str, str],
) -> WebhookReceipt:
    return verify_zapier(credentials, headers, query, body, versioned=inbound.VERSIONED)


@hookimpl
def journeyhub_handle_webhook(webhook: StoredWebhook) -> list[TriggerDraft] | None:
    try:
        parsed = parse_inbound(
            webhook.body,
            webhook.headers.get("content-type", ""),
            webhook.event_type,
            versioned=inbound.VERSIONED,
        )
    except WebhookRejected as exc:  # verified at the gateway, so only a corrupted store
        raise PermanentError(f"the stored 17hats webhook cannot be read: {exc}") from None
    return inbound.drafts(parsed)


@hookimpl
async def journeyhub_check_connection(
    connection: Connection, credentials: Mapping[str, Any], http: httpx.AsyncClient
) -> str:
    """Send a ``ping`` envelope to the catch hook (the Zap's Filter on ``action`` stops it)."""
    config = load_config(connection)
    url = config.catch_hook_url(ACTION)
    if url is None:
        return "inbound only: no catch hook configured for upsert_contact"
    msg_id = stable_id("ping", connection.id, ACTION, utcnow().isoformat())
    response = await send_action(
        http,
        url,
        _secret(credentials),
        msg_id,
        "ping",
        {"for_action": ACTION},
        config.timeout_seconds,
    )
    return f"upsert_contact: Zapier answered {response.status_code}"
