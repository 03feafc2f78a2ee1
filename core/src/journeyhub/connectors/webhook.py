"""The built-in ``webhook`` connector.

Out: the trigger (or journey event) to ``config.url`` as a Standard Webhooks payload,
``{"type": <its type>, "timestamp": <when it occurred, RFC 3339>, "kind": "trigger" | "event",
"data": <the trigger or event>}``, signed per the spec with the connection's ``secret``
(``webhook-id`` = the task's idempotency key, so a receiver can drop a retry it already has).
This is how triggers reach a journey engine over HTTP. A 410 Gone raises ``EndpointGone``: the
kernel disables the connection, as the spec asks.

In: JSON posted to ``/webhooks/webhook/<connection id>``, authenticated by a Standard Webhooks
signature with the connection's ``secret`` or, for senders that cannot sign, by the
connection's ``token`` (a separate random value, never the signing secret) as the
``x-journeyhub-token`` header or ``?token=`` in the URL. A connection without a ``token``
accepts signatures only. The body names a trigger:
``{"id", "type", "occurred_at"?, "client_id"?, "client_email"?, "data"?}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec

from journeyhub import signing
from journeyhub.configs import config_as
from journeyhub.errors import EndpointGone, PermanentError, WebhookRejected
from journeyhub.hookspecs import hookimpl
from journeyhub.model import (
    TRIGGER_TYPES,
    Connection,
    ConnectorInfo,
    DeliveryTask,
    PushResult,
    StoredWebhook,
    TriggerDraft,
    WebhookReceipt,
    utcnow,
)
from journeyhub.vendor_http import VendorHttp, VendorResponse

VENDOR = "webhook"
TOKEN_HEADER = "x-journeyhub-token"  # noqa: S105 - a header name, not a secret


class WebhookConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    url: str | None = None  # where pushes go; required to push
    timeout_seconds: float = 15.0  # the spec recommends 15-30 s for the receiver to answer
    tolerance_seconds: float = 300.0

    def __post_init__(self) -> None:
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")
        if not 0 < self.timeout_seconds <= 60:
            raise ValueError("timeout_seconds must be in (0, 60]")


class WebhookCredentials(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    secret: str  # Standard Webhooks secret, "whsec_<base64>": signs out, verifies in
    # For senders that cannot sign: the x-journeyhub-token / ?token= they send. Without one,
    # inbound requests must be signed.
    token: str | None = None

    def __post_init__(self) -> None:
        if not signing.valid_secret(self.secret):
            raise ValueError("secret must be a Standard Webhooks secret: whsec_<base64>")
        if self.token is not None and (problem := signing.token_problem(self.token, self.secret)):
            raise ValueError(problem)


class Envelope(msgspec.Struct, kw_only=True):
    """What the receiver gets (see the module docstring)."""

    type: str
    timestamp: datetime
    kind: str
    data: Any


def envelope(task: DeliveryTask) -> Envelope:
    """The Standard Webhooks payload of a task: its trigger or journey event as ``data``."""
    item: Any = task.trigger if task.kind == "trigger" else task.event
    if item is None:
        raise PermanentError(f"the {task.kind} task {task.id} carries no {task.kind}")
    return Envelope(
        type=item.type,
        timestamp=item.occurred_at.astimezone(UTC),
        kind=task.kind,
        data=item,
    )


class InboundTrigger(msgspec.Struct, kw_only=True):
    id: str
    type: str
    occurred_at: datetime | None = None
    client_id: str | None = None
    client_email: str | None = None
    data: dict[str, Any] = {}


async def post_signed(
    http: VendorHttp,
    url: str,
    secret: str,
    msg_id: str,
    body: bytes,
    *,
    timeout: float,
    extra_headers: Mapping[str, str] | None = None,
) -> VendorResponse:
    """POST ``body`` signed per Standard Webhooks; raise the classified error on failure."""
    headers = {
        "content-type": "application/json",
        **signing.signed_headers(secret, msg_id, body),
        **(extra_headers or {}),
    }
    # No answer raises the kernel's VendorUnreachable or OutcomeUnknown as it is.
    response = await http.post(url, content=body, headers=headers, timeout=timeout)
    where = url.split("?")[0]
    if response.status_code == 410:
        raise EndpointGone(
            f"{where} answered 410 Gone: it wants no more webhooks", vendor_status=410
        )
    if response.status_code >= 300:
        raise response.error(f"{where} answered {response.status_code}")
    return response


@hookimpl
def journeyhub_connector() -> ConnectorInfo:
    return ConnectorInfo(
        vendor=VENDOR,
        display_name="Webhook (Standard Webhooks)",
        capabilities=frozenset({"push", "webhook"}),
        auth_kind="shared_secret",
        config_schema=WebhookConfig,
        credentials_schema=WebhookCredentials,
        webhook_event_types=TRIGGER_TYPES,
        push_event_types=("*",),
    )


@hookimpl
async def journeyhub_push(
    task: DeliveryTask,
    connection: Connection,
    credentials: Mapping[str, Any],
    idempotency_key: str,
    http: VendorHttp,
) -> PushResult:
    config = config_as(connection, WebhookConfig)
    if not config.url:
        raise PermanentError("this webhook connection has no url to push to")
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
def journeyhub_verify_webhook(
    connection: Connection,
    credentials: Mapping[str, Any],
    headers: Mapping[str, str],
    body: bytes,
    now: datetime,
    query: Mapping[str, str],
) -> WebhookReceipt:
    secret = credentials.get("secret", "")
    presented = headers.get(TOKEN_HEADER) or query.get("token")
    if presented is not None:
        token = credentials.get("token")
        if not isinstance(token, str) or not token:
            raise WebhookRejected(
                "bad_token", "this connection takes no token: sign the request instead"
            )
        if not signing.token_matches(presented, token):
            raise WebhookRejected("bad_token", "the token does not match this connection")
    else:
        tolerance = float(connection.config.get("tolerance_seconds", 300.0))
        signing.verify([secret], dict(headers), body, now=now, tolerance=tolerance)
    try:
        inbound = msgspec.json.decode(body, type=InboundTrigger)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise WebhookRejected("bad_body", str(exc)) from None
    return WebhookReceipt(event_id=inbound.id, event_type=inbound.type)


@hookimpl
def journeyhub_handle_webhook(webhook: StoredWebhook) -> list[TriggerDraft] | None:
    inbound = msgspec.json.decode(webhook.body, type=InboundTrigger)
    if inbound.type not in TRIGGER_TYPES:
        return None
    return [
        TriggerDraft(
            type=inbound.type,  # type: ignore[arg-type]
            source_event_id=inbound.id,
            occurred_at=inbound.occurred_at,
            client_id=inbound.client_id,
            client_email=inbound.client_email,
            data=inbound.data,
        )
    ]


@hookimpl
async def journeyhub_check_connection(
    connection: Connection, credentials: Mapping[str, Any], http: VendorHttp
) -> str:
    config = config_as(connection, WebhookConfig)
    if not config.url:
        return "inbound only: nothing to call"
    ping = {"type": "journeyhub.ping", "timestamp": utcnow(), "data": {"id": connection.id}}
    body = msgspec.json.encode(ping)
    response = await post_signed(
        http,
        config.url,
        credentials["secret"],
        f"ping_{connection.id}",
        body,
        timeout=config.timeout_seconds,
    )
    return f"{config.url.split('?')[0]} answered {response.status_code}"
