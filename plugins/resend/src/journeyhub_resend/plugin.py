"""The Resend connector: transactional emails out, email events in.

Out: ``email_requested`` events and completed ``email`` steps become emails rendered from the
connection's templates and sent with ``POST /emails`` (or ``/emails/batch`` for bursts), the
task id as ``Idempotency-Key``. In: Svix-signed ``email.*`` webhooks become ``email_*`` triggers.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from journeyhub.configs import config_as
from journeyhub.errors import PermanentError
from journeyhub.hookspecs import hookimpl
from journeyhub.model import (
    Connection,
    ConnectorInfo,
    DeliveryTask,
    FieldMapping,
    PushResult,
    RateLimit,
    StoredWebhook,
    TriggerDraft,
    WebhookReceipt,
)
from journeyhub.vendor_http import VendorHttp

from journeyhub_resend import inbound, outbound, verify
from journeyhub_resend.client import MAX_BATCH, ResendClient
from journeyhub_resend.config import ResendConfig, ResendCredentials

VENDOR = "resend"

DEFAULT_FIELD_MAPPINGS = (
    FieldMapping(source="client.email", target="to"),
    FieldMapping(source="client.name", target="client_name"),
    FieldMapping(source="client.name", target="first_name", transform="first_name"),
    FieldMapping(source="data.couple", target="couple"),
    FieldMapping(source="wedding.date", target="wedding_date", transform="date:%d %B %Y"),
    FieldMapping(source="wedding.venue.name", target="venue"),
)


def _config(connection: Connection) -> ResendConfig:
    return config_as(connection, ResendConfig)


def _client(config: ResendConfig, credentials: Mapping[str, Any], http: VendorHttp) -> ResendClient:
    api_key = credentials.get("api_key")
    if not isinstance(api_key, str) or not api_key:
        raise PermanentError("this resend connection has no api_key")
    return ResendClient(
        http, api_base=config.api_base, api_key=api_key, timeout=config.timeout_seconds
    )


@hookimpl
def journeyhub_connector() -> ConnectorInfo:
    return ConnectorInfo(
        vendor=VENDOR,
        display_name="Resend",
        capabilities=frozenset({"push", "webhook"}),
        auth_kind="bearer",
        config_schema=ResendConfig,
        credentials_schema=ResendCredentials,
        rate_limit=RateLimit(requests=2, per_seconds=1),  # Resend's default per team
        webhook_event_types=inbound.WEBHOOK_EVENT_TYPES,
        push_event_types=("email_requested", "step_completed"),
        default_field_mappings=DEFAULT_FIELD_MAPPINGS,
        max_batch=MAX_BATCH,
        docs_url="https://resend.com/docs/api-reference/introduction",
    )


@hookimpl
async def journeyhub_push(
    task: DeliveryTask,
    connection: Connection,
    credentials: Mapping[str, Any],
    idempotency_key: str,
    http: VendorHttp,
    suppressed: frozenset[str],
) -> PushResult:
    config = _config(connection)
    return await outbound.push_one(
        task, config, lambda: _client(config, credentials, http), idempotency_key, suppressed
    )


@hookimpl
async def journeyhub_push_batch(
    tasks: list[DeliveryTask],
    connection: Connection,
    credentials: Mapping[str, Any],
    idempotency_key: str,
    http: VendorHttp,
    suppressed: frozenset[str],
) -> list[PushResult | Exception]:
    config = _config(connection)
    return await outbound.push_many(
        tasks, config, lambda: _client(config, credentials, http), idempotency_key, suppressed
    )


@hookimpl
def journeyhub_verify_webhook(
    connection: Connection,
    credentials: Mapping[str, Any],
    headers: Mapping[str, str],
    body: bytes,
    now: datetime,
) -> WebhookReceipt:
    tolerance = connection.config.get("tolerance_seconds", 300.0)
    if not isinstance(tolerance, int | float) or tolerance <= 0:
        tolerance = 300.0
    return verify.verify(credentials, headers, body, now=now, tolerance=float(tolerance))


@hookimpl
def journeyhub_handle_webhook(webhook: StoredWebhook) -> list[TriggerDraft] | None:
    return inbound.drafts(webhook)


@hookimpl
async def journeyhub_check_connection(
    connection: Connection, credentials: Mapping[str, Any], http: VendorHttp
) -> str:
    config = _config(connection)
    try:
        status, body = await _client(config, credentials, http).list_domains()
    except PermanentError as exc:
        if getattr(exc, "vendor_error", None) == "restricted_api_key":
            return "Resend accepted the API key (sending access only: it cannot list domains)"
        raise
    domains = body.get("data") or []
    verified = sum(1 for d in domains if isinstance(d, dict) and d.get("status") == "verified")
    return f"Resend answered {status}: {len(domains)} domain(s), {verified} verified"
