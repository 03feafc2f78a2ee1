"""``POST /webhooks/{vendor}/{connection_id}``: inbound webhooks.

Answered 2xx only after the raw request is durably stored in JetStream. The signature is
verified by the vendor's plugin before anything is stored; a redelivered event (same vendor
event id) is acknowledged and, through the bus's ``Nats-Msg-Id`` dedupe and the trigger ids,
processed once. Bad input gets its 4xx: 401 (signature, with the reason), 404 (unknown,
disabled or another vendor's connection), 413 (too large); 503 with ``Retry-After`` when the
bus did not acknowledge.

This is a hot path: ``gateway/ingress.py`` answers it in front of Litestar; the route declared
here serves the OpenAPI document and the requests left to Litestar. Both answer through
:func:`accept`.
"""

from __future__ import annotations

import functools

import msgspec
import structlog
from litestar import Controller, Request, Response, post
from litestar.di import NamedDependency
from litestar.params import FromPath

from journeyhub import metrics
from journeyhub.bus.jetstream import BusUnavailable
from journeyhub.bus.subjects import Subjects
from journeyhub.errors import ConnectorNotFound, WebhookRejected
from journeyhub.gateway.answers import Answer, problem
from journeyhub.gateway.docs import WebhookOperation, problems
from journeyhub.hub import Hub
from journeyhub.logs import get_logger
from journeyhub.model import StoredWebhook, utcnow

log = get_logger(__name__)

# Headers never stored with a webhook: credentials of the caller's and proxy noise.
_DROPPED_HEADERS = frozenset(
    {"authorization", "cookie", "proxy-authorization", "x-journeyhub-token"}
)
_encode = msgspec.json.Encoder().encode
_JSON = (b"content-type", b"application/json")


class WebhookAccepted(msgspec.Struct):
    received: bool
    duplicate: bool
    event_id: str


def _count(vendor: str, outcome: str) -> None:
    metrics.child(metrics.webhooks_received, vendor, outcome).inc()


@functools.lru_cache(maxsize=4096)
def _inbound_subject(subjects: Subjects, vendor: str, connection_id: str) -> str:
    # Subjects.inbound makes each part a safe token character by character: once per
    # connection, not once per webhook.
    return subjects.inbound(vendor, connection_id)


async def accept(
    hub: Hub,
    vendor: str,
    connection_id: str,
    *,
    headers: dict[str, str],
    body: bytes | None,
    query: dict[str, str],
    request_id: str | None,
) -> Answer:
    """Verify one webhook and store it on the bus; the answer to give. ``headers`` have
    lower-case names; ``body`` is None when it was larger than the limit."""
    if body is None:
        _count(vendor, "too_large")
        return problem(413, f"body larger than {hub.settings.webhook_max_bytes} bytes")

    entry = await hub.connection_cache.get(connection_id)
    # Unknown, disabled, or another vendor's connection: the same 404, so nothing leaks.
    if entry is None or not entry[0].enabled or entry[0].vendor != vendor:
        _count(vendor, "not_found")
        return problem(404, "no such webhook endpoint")
    connection, credentials = entry

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
            query=query,
        )
    except WebhookRejected as exc:
        _count(vendor, "rejected")
        log.info("webhook_rejected", reason=exc.reason, detail=exc.detail)
        return problem(401, f"webhook rejected: {exc.reason}", reason=exc.reason)
    except ConnectorNotFound:
        _count(vendor, "not_found")
        return problem(404, "no such webhook endpoint")

    stored = StoredWebhook(
        vendor=vendor,
        connection_id=connection.id,
        tenant_id=connection.tenant_id,
        event_id=receipt.event_id,
        event_type=receipt.event_type,
        received_at=now,
        headers={k: v for k, v in headers.items() if k not in _DROPPED_HEADERS},
        body=body,
        correlation_id=request_id,
    )
    try:
        ack = await hub.bus.publish(
            _inbound_subject(hub.bus.subjects, vendor, connection.id),
            _encode(stored),
            msg_id=f"{vendor}:{connection.id}:{receipt.event_id}",
        )
    except BusUnavailable as exc:
        _count(vendor, "bus_unavailable")
        log.error("webhook_not_stored", error=str(exc))
        return Answer(
            503,
            {"status_code": 503, "detail": "not stored: the bus is unavailable; retry"},
            retry_after="5",
        )
    duplicate = bool(ack.duplicate)
    _count(vendor, "duplicate" if duplicate else "accepted")
    # At debug only: a line per accepted webhook was the largest cost of the gateway after
    # the publish. The stored webhook carries the request id, and the inbound worker's line
    # for its batch lists it.
    log.debug(
        "webhook_stored",
        event_id=receipt.event_id,
        event_type=receipt.event_type,
        duplicate=duplicate,
    )
    return Answer(
        200, WebhookAccepted(received=True, duplicate=duplicate, event_id=receipt.event_id)
    )


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
        result = await accept(
            hub,
            vendor,
            connection_id,
            headers={k.lower(): v for k, v in request.headers.items()},
            body=await _read_limited(request, hub.settings.webhook_max_bytes),
            query=dict(request.query_params),
            request_id=request.scope.get("state", {}).get("request_id"),
        )
        headers = {"retry-after": result.retry_after} if result.retry_after else None
        return Response(result.content, status_code=result.status, headers=headers)
