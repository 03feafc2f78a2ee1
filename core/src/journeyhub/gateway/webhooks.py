"""``POST /webhooks/{vendor}/{connection_id}``: inbound webhooks.

Answered 2xx only after the raw request is durably stored in JetStream. The signature is
verified by the vendor's plugin before anything is stored; a redelivered event (same vendor
event id) is acknowledged and, through the bus's ``Nats-Msg-Id`` dedupe and the trigger ids,
processed once. Bad input gets its 4xx: 401 (signature, with the reason), 404 (unknown,
disabled or another vendor's connection), 413 (too large); 503 with ``Retry-After`` when the
bus did not acknowledge.

This is the gateway's hot path, so it is served by :class:`WebhookIngress`, a plain ASGI app in
front of Litestar: Litestar's routing, middleware stack, dependency injection and response
machinery cost more CPU per webhook than the work itself (``bench/ingest/attribution.py``
measures each layer). The route is declared in Litestar too (:class:`WebhooksController`): for
the OpenAPI document, and for the requests the fast path leaves to Litestar (a trailing slash,
another method). Both answer through :func:`accept`.
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import msgspec
import structlog
from litestar import Controller, Request, Response, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.types import ASGIApp, Receive, Scope, Send

from journeyhub import metrics
from journeyhub.bus.jetstream import BusUnavailable
from journeyhub.bus.subjects import Subjects
from journeyhub.errors import ConnectorNotFound, WebhookRejected
from journeyhub.gateway.docs import WebhookOperation, problems
from journeyhub.hub import Hub
from journeyhub.logs import get_logger, secrets_registry
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


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    content: WebhookAccepted | dict[str, Any]
    retry_after: str | None = None


def _problem(status: int, detail: str, **extra: Any) -> Answer:
    return Answer(status, {"status_code": status, "detail": detail, **extra})


# Counter children by (vendor, outcome): ``labels()`` takes a lock and builds a key each time.
_received: dict[tuple[str, str], Any] = {}


def _count(vendor: str, outcome: str) -> None:
    child = _received.get((vendor, outcome))
    if child is None:
        child = _received[(vendor, outcome)] = metrics.webhooks_received.labels(vendor, outcome)
    child.inc()


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
        return _problem(413, f"body larger than {hub.settings.webhook_max_bytes} bytes")

    entry = await hub.connections.get(connection_id)
    # Unknown, disabled, or another vendor's connection: the same 404, so nothing leaks.
    if entry is None or not entry[0].enabled or entry[0].vendor != vendor:
        _count(vendor, "not_found")
        return _problem(404, "no such webhook endpoint")
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
        return _problem(401, f"webhook rejected: {exc.reason}", reason=exc.reason)
    except ConnectorNotFound:
        _count(vendor, "not_found")
        return _problem(404, "no such webhook endpoint")

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
    log.debug("webhook_stored", event_id=receipt.event_id, event_type=receipt.event_type,
              duplicate=duplicate)  # fmt: skip
    return Answer(
        200, WebhookAccepted(received=True, duplicate=duplicate, event_id=receipt.event_id)
    )


class WebhookIngress:
    """The gateway's ASGI app: ``POST /webhooks/{vendor}/{connection_id}`` is answered here,
    every other request by ``app`` (the Litestar application, whose attributes it exposes).

    What it keeps of the Litestar stack for this route: the request id (the caller's
    ``x-request-id`` or a new one, on the log context, in the answer's headers and on the
    stored webhook), the error answers' shape (``{"status_code", "detail"}``), and a 500 that
    logs the error scrubbed and tells nothing of it."""

    def __init__(self, hub: Hub, app: ASGIApp) -> None:
        self.hub = hub
        self.app = app
        self.limit = hub.settings.webhook_max_bytes

    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            path = scope["path"]
            if path.startswith("/webhooks/"):
                parts = path.split("/")
                if len(parts) == 4 and parts[2] and parts[3]:
                    await self._webhook(scope, receive, send, parts[2], parts[3])
                    return
        await self.app(scope, receive, send)

    async def _webhook(
        self, scope: Scope, receive: Receive, send: Send, vendor: str, connection_id: str
    ) -> None:
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1")
            for name, value in scope["headers"]
        }
        request_id = headers.get("x-request-id", "")[:80] or uuid.uuid4().hex
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(
            request_id=request_id,
            correlation_id=request_id,
            vendor=vendor,
            connection_id=connection_id,
        )
        started = False

        async def answer(status: int, body: bytes, retry_after: str | None = None) -> None:
            nonlocal started
            response_headers = [
                _JSON,
                (b"content-length", str(len(body)).encode()),
                (b"x-request-id", request_id.encode("latin-1")),
            ]
            if retry_after is not None:
                response_headers.append((b"retry-after", retry_after.encode()))
            started = True
            await send(
                {"type": "http.response.start", "status": status, "headers": response_headers}
            )
            await send({"type": "http.response.body", "body": body})

        try:
            body = await _read_body(receive, headers.get("content-length"), self.limit)
            raw_query = scope.get("query_string") or b""
            query: dict[str, str] = {}
            if raw_query:
                for key, value in parse_qsl(raw_query.decode("latin-1"), keep_blank_values=True):
                    query.setdefault(key, value)  # the first of repeated names, as Litestar
            result = await accept(
                self.hub,
                vendor,
                connection_id,
                headers=headers,
                body=body,
                query=query,
                request_id=request_id,
            )
            await answer(result.status, _encode(result.content), result.retry_after)
        except _Disconnected:
            return  # the sender went away before its body was read: no one to answer
        except Exception as exc:
            log.error(
                "unhandled_error", path=scope["path"], error=secrets_registry.scrub(repr(exc))
            )
            if started:
                raise
            await answer(500, b'{"status_code":500,"detail":"internal error"}')


class _Disconnected(Exception):
    """The client went away before its body was read."""


async def _read_body(receive: Receive, declared: str | None, limit: int) -> bytes | None:
    """The body, or None when it is larger than ``limit`` (reading stops at once)."""
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


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
        return Response(result.content, status_code=result.status, headers=headers)  # type: ignore[arg-type]
