"""The ``tave`` connector: VSCO Workspace (formerly Táve) REST API v2.

Out: journey events become an address-book contact, a wedding job linked to it, notes on the
job and its lead status. In: REST hook pings (re-fetched from the API) and a pull of contacts
and jobs by ``modified desc``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from journeyhub.errors import PermanentError
from journeyhub.hookspecs import hookimpl
from journeyhub.model import (
    Connection,
    ConnectorInfo,
    DeliveryTask,
    Known,
    PullPage,
    PushResult,
    RateLimit,
    StoredWebhook,
    TriggerDraft,
    WebhookReceipt,
)
from journeyhub.vendor_http import VendorHttp

from journeyhub_tave import client as api
from journeyhub_tave import pull as pulling
from journeyhub_tave import push as pushing
from journeyhub_tave import webhooks
from journeyhub_tave.config import (
    DEFAULT_FIELD_MAPPINGS,
    TaveConfig,
    TaveCredentials,
    load_config,
    mapped_fields,
)

VENDOR = "tave"


def _client(
    connection: Connection, credentials: Mapping[str, Any], http: VendorHttp
) -> tuple[api.TaveClient, TaveConfig]:
    config = load_config(connection)
    key = credentials.get("api_key")
    if not isinstance(key, str) or not key:
        raise PermanentError("the connection has no VSCO Workspace api_key")
    return api.TaveClient(http, key, config.api_base, config.timeout_seconds), config


@hookimpl
def journeyhub_connector() -> ConnectorInfo:
    return ConnectorInfo(
        vendor=VENDOR,
        display_name="Tave (VSCO Workspace)",
        capabilities=frozenset({"push", "pull", "webhook"}),
        auth_kind="api_key",
        config_schema=TaveConfig,
        credentials_schema=TaveCredentials,
        rate_limit=RateLimit(requests=api.RATE_LIMIT_PER_SECOND),  # unverified: none published
        webhook_event_types=api.HOOK_EVENTS,
        push_event_types=pushing.PUSH_EVENT_TYPES,
        default_field_mappings=DEFAULT_FIELD_MAPPINGS,
        pull_interval_seconds=300.0,
        docs_url="https://workspace.vsco.co/api",
    )


@hookimpl
async def journeyhub_push(
    task: DeliveryTask,
    connection: Connection,
    credentials: Mapping[str, Any],
    idempotency_key: str,
    http: VendorHttp,
    known: Known,
) -> PushResult:
    if task.event is None:
        return PushResult(status="skipped", detail="only journey events are pushed to Tave")
    tave, config = _client(connection, credentials, http)
    mapped = mapped_fields(task.event, task.mapped, connection)
    return await pushing.push(tave, config, task.event, mapped, idempotency_key, known)


@hookimpl
async def journeyhub_pull(
    connection: Connection,
    credentials: Mapping[str, Any],
    cursor: str | None,
    http: VendorHttp,
) -> PullPage:
    tave, config = _client(connection, credentials, http)
    return await pulling.pull(tave, config.mappings, cursor, config.page_size)


@hookimpl
def journeyhub_verify_webhook(
    credentials: Mapping[str, Any], body: bytes, query: Mapping[str, str]
) -> WebhookReceipt:
    return webhooks.verify(credentials, body, query)


@hookimpl
async def journeyhub_handle_webhook(
    connection: Connection,
    credentials: Mapping[str, Any],
    webhook: StoredWebhook,
    http: VendorHttp,
) -> list[TriggerDraft] | None:
    tave, config = _client(connection, credentials, http)
    return await webhooks.handle(tave, config.mappings, webhook)


@hookimpl
async def journeyhub_check_connection(
    connection: Connection, credentials: Mapping[str, Any], http: VendorHttp
) -> str:
    tave, _ = _client(connection, credentials, http)
    studio = await tave.request("GET", api.STUDIO)
    name = studio.get("name") if isinstance(studio, dict) else None
    return f"VSCO Workspace answered {tave.last_status}: studio {name!r}"
