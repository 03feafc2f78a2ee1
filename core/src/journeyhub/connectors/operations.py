"""The built-in ``operations`` connector: a tenant's incidents to its operators' endpoint.

Out only: each incident notice (``incident.raised``, ``incident.updated``,
``incident.resolved``; see ``journeyhub.incidents``) to ``config.url`` as a Standard Webhooks
payload, ``{"type": <the notice's type>, "timestamp": <when the incident last changed>,
"kind": "incident", "data": <the incident>}``, signed with the connection's ``secret``
(``webhook-id`` = the task's idempotency key). Delivery is the push machinery's: retries,
the breaker, dead letters and their replay. The config and credentials are the ``webhook``
connector's (``url`` is required); a 410 Gone disables the connection in the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC
from typing import Any

import msgspec

from journeyhub.configs import config_as
from journeyhub.connectors.webhook import Envelope, WebhookConfig, WebhookCredentials, post_signed
from journeyhub.errors import PermanentError
from journeyhub.hookspecs import hookimpl
from journeyhub.model import (
    INCIDENT_NOTICE_TYPES,
    Connection,
    ConnectorInfo,
    DeliveryTask,
    PushResult,
    utcnow,
)
from journeyhub.vendor_http import VendorHttp

VENDOR = "operations"


class OperationsConfig(WebhookConfig, kw_only=True, forbid_unknown_fields=True):
    url: str  # required here: the operators' endpoint


def envelope(task: DeliveryTask) -> Envelope:
    notice = task.incident
    if notice is None:
        raise PermanentError(f"the {task.kind} task {task.id} is no incident notice")
    moment = notice.resolved_at or notice.updated_at
    return Envelope(
        type=notice.type, timestamp=moment.astimezone(UTC), kind="incident", data=notice
    )


@hookimpl
def journeyhub_connector() -> ConnectorInfo:
    return ConnectorInfo(
        vendor=VENDOR,
        display_name="Operations (incidents as Standard Webhooks)",
        capabilities=frozenset({"push", "operations"}),
        auth_kind="shared_secret",
        config_schema=OperationsConfig,
        credentials_schema=WebhookCredentials,
        # Journey events and triggers never match: only incident notices come here.
        push_event_types=INCIDENT_NOTICE_TYPES,
    )


@hookimpl
async def journeyhub_push(
    task: DeliveryTask,
    connection: Connection,
    credentials: Mapping[str, Any],
    idempotency_key: str,
    http: VendorHttp,
) -> PushResult:
    config = config_as(connection, OperationsConfig)
    body = msgspec.json.encode(envelope(task))
    response = await post_signed(
        http,
        config.url,
        credentials["secret"],
        idempotency_key,
        body,
        timeout=config.timeout_seconds,
    )
    return PushResult(vendor_status=response.status_code)


@hookimpl
async def journeyhub_check_connection(
    connection: Connection, credentials: Mapping[str, Any], http: VendorHttp
) -> str:
    config = config_as(connection, OperationsConfig)
    ping = {"type": "journeyhub.ping", "timestamp": utcnow(), "data": {"id": connection.id}}
    response = await post_signed(
        http,
        config.url,
        credentials["secret"],
        f"ping_{connection.id}",
        msgspec.json.encode(ping),
        timeout=config.timeout_seconds,
    )
    return f"{config.url.split('?')[0]} answered {response.status_code}"
