"""The ``honeybook`` connector: HoneyBook has no public API, so it goes through the user's
Zaps (HoneyBook's Zapier app) by way of the Zapier bridge, plus its payments report as CSV.

Out: ``journey_started`` → Create Client and Create Project actions. In: the Client Created,
New Project Booked and New Payment Paid triggers, POSTed by Zaps; the "Payments completed"
report imported as CSV.
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

from journeyhub_honeybook import inbound
from journeyhub_honeybook.config import (
    ACTIONS,
    DEFAULT_FIELD_MAPPINGS,
    HoneyBookConfig,
    load_config,
)
from journeyhub_honeybook.csv_import import parse_payments_report
from journeyhub_honeybook.push import PUSH_EVENT_TYPES, push

VENDOR = "honeybook"


def _secret(credentials: Mapping[str, Any]) -> str:
    secret = credentials.get("secret")
    if not isinstance(secret, str) or not secret:
        raise PermanentError("the honeybook connection has no secret")
    return secret


@hookimpl
def journeyhub_connector() -> ConnectorInfo:
    return ConnectorInfo(
        vendor=VENDOR,
        display_name="HoneyBook (via Zapier)",
        capabilities=frozenset({"push", "webhook"}),
        auth_kind="shared_secret",
        config_schema=HoneyBookConfig,
        credentials_schema=ZapierCredentials,
        # Zapier: about 30 requests/s per catch hook, 10,000 per 5 minutes per Zapier user
        # (shared with the user's other Zaps). A push is two requests; 5/s leaves room.
        rate_limit=RateLimit(requests=5, per_seconds=1),
        webhook_event_types=inbound.EVENT_TYPES,
        push_event_types=PUSH_EVENT_TYPES,
        default_field_mappings=DEFAULT_FIELD_MAPPINGS,
        docs_url="https://zapier.com/apps/honeybook/integrations",
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
        return PushResult(status="skipped", detail="only journey_started is pushed to HoneyBook")
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
    return verify_zapier(credentials, headers, query, body)


@hookimpl
def journeyhub_handle_webhook(
    connection: Connection, webhook: StoredWebhook
) -> list[TriggerDraft] | None:
    try:
        parsed = parse_inbound(
            webhook.body, webhook.headers.get("content-type", ""), webhook.event_type
        )
    except WebhookRejected as exc:  # verified at the gateway, so only a corrupted store
        raise PermanentError(f"the stored honeybook webhook cannot be read: {exc}") from None
    return inbound.drafts(parsed, load_config(connection).currency)


@hookimpl
def journeyhub_import_csv(connection: Connection, text: str) -> list[TriggerDraft]:
    return parse_payments_report(text, load_config(connection).currency)


@hookimpl
async def journeyhub_check_connection(
    connection: Connection, credentials: Mapping[str, Any], http: httpx.AsyncClient
) -> str:
    """Send a ``ping`` envelope to each catch hook (the Zaps' Filter on ``action`` stops it)."""
    config = load_config(connection)
    answers = []
    for action in ACTIONS:
        url = config.catch_hook_url(action)
        if url is None:
            answers.append(f"{action}: no catch hook configured")
            continue
        msg_id = stable_id("ping", connection.id, action, utcnow().isoformat())
        response = await send_action(
            http,
            url,
            _secret(credentials),
            msg_id,
            "ping",
            {"for_action": action},
            config.timeout_seconds,
        )
        answers.append(f"{action}: Zapier answered {response.status_code}")
    return "; ".join(answers)
