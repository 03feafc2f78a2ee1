"""``POST /webhooks/{vendor}/{connection_id}``: inbound webhooks.

Answered 2xx only after the raw request is durably stored in JetStream. The signature is
verified by the vendor's plugin before anything is stored; a redelivered event (same vendor
event id) is acknowledged and, through the bus's ``Nats-Msg-Id`` dedupe and the trigger ids,
processed once.
"""

from __future__ import annotations

from typing import Any

import msgspec
import structlog
from litestar import Controller, Request, Response, post
from litestar.di import NamedDependency
from litestar.params import FromPath

from journeyhub import metrics
from journeyhub.bus.jetstream import BusUnavailable
from journeyhub.errors import ConnectorNotFound, WebhookRejected
from journeyhub.gateway.docs import WebhookOperation, problems
from journeyhub.hub import Hub
from journeyhub.logs import get_logger
from journeyhub.model import StoredWebhook, utcnow

log = get_logger(__name__)

# Headers never stored with a webhook: credentials of the caller's and proxy noise.
_DROPPED_HEADERS = frozenset(
    {"authorization", "cookie", "proxy-authorization", "x-journeyhub-token"}
)


class WebhookAccepted(msgspec.Struct):
    received: bool
    duplicate: bool
    event_id: str


def _problem(status: int, detail: str, **extra: Any) -> Response[dict[str, Any]]:
    return Response({"status_code": status, "detail": detail, **extra}, status_code=status)


async def _read_limited(request: Request, limit: int) -> bytes | None:
    """The body, or None when it is larger than ``limit`` (stop reading at once)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


class WebhooksController(Controller):
    path = "/webhooks"
    tags = ["webhooks"]

    @post(
        "/{vendor:str}/{connection_id:str}",
        operation_id="receiveWebhook",
        exclude_from_auth=True,
        status_code=200,
        responses=problems(401, 404, 413, 503),
        operation_class=WebhookOperation,
    )
    async def receive(
        self,
        request: Request,
        hub: NamedDependency[Hub],
        vendor: FromPath[str],
        connection_id: FromPath[str],
    ) -> Response[WebhookAccepted]:
        """Receive a vendor's webhook: verify, store durably, then acknowledge."""
        structlog.contextvars.bind_contextvars(vendor=vendor, connection_id=connection_id)
        body = await _read_limited(request, hub.settings.webhook_max_bytes)
        if body is None:
            metrics.webhooks_received.labels(vendor, "too_large").inc()
            return _problem(413, f"body larger than {hub.settings.webhook_max_bytes} bytes")

        entry = await hub.connections.get(connection_id)
        # Unknown, disabled, or another vendor's connection: the same 404, so nothing leaks.
        if entry is None or not entry[0].enabled or entry[0].vendor != vendor:
            metrics.webhooks_received.labels(vendor, "not_found").inc()
            return _problem(404, "no such webhook endpoint")
        connection, credentials = entry

        headers = {k.lower(): v for k, v in request.headers.items()}
        now = utcnow()
        try:
            receipt = await hub.registry.call(
                vendor,
                "journeyhub_verify_webhook",
                connection=connection,
                credentials=credentials,
                headers=headers,
                body=body,
                now=now,
                query=dict(request.query_params),
            )
        except WebhookRejected as exc:
            metrics.webhooks_received.labels(vendor, "rejected").inc()
            log.info("webhook_rejected", reason=exc.reason, detail=exc.detail)
            return _problem(401, f"webhook rejected: {exc.reason}", reason=exc.reason)
        except ConnectorNotFound:
            metrics.webhooks_received.labels(vendor, "not_found").inc()
            return _problem(404, "no such webhook endpoint")

        correlation_id = request.scope.get("state", {}).get("request_id")
        stored = StoredWebhook(
            vendor=vendor,
            connection_id=connection.id,
            tenant_id=connection.tenant_id,
            event_id=receipt.event_id,
            event_type=receipt.event_type,
            received_at=now,
            headers={k: v for k, v in headers.items() if k not in _DROPPED_HEADERS},
            body=body,
            correlation_id=correlation_id,
        )
        try:
            ack = await hub.bus.publish(
                hub.bus.subjects.inbound(vendor, connection.id),
                msgspec.json.encode(stored),
                msg_id=f"{vendor}:{connection.id}:{receipt.event_id}",
            )
        except BusUnavailable as exc:
            metrics.webhooks_received.labels(vendor, "bus_unavailable").inc()
            log.error("webhook_not_stored", error=str(exc))
            return Response(
                {"status_code": 503, "detail": "not stored: the bus is unavailable; retry"},
                status_code=503,
                headers={"retry-after": "5"},
            )
        metrics.webhooks_received.labels(vendor, "duplicate" if ack.duplicate else "accepted").inc()
        log.info("webhook_stored", event_id=receipt.event_id, event_type=receipt.event_type,
                 duplicate=bool(ack.duplicate))  # fmt: skip
        return Response(
            WebhookAccepted(
                received=True, duplicate=bool(ack.duplicate), event_id=receipt.event_id
            ),
            status_code=200,
        )
