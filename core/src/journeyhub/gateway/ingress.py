"""The gateway's hot paths, answered in front of Litestar: vendors' webhooks
(``POST /webhooks/{vendor}/{connection_id}``) and journey events (``POST /v1/events``).

Litestar's routing, middleware stack, dependency injection and response machinery cost more
CPU per request than the work itself (``bench/ingest/attribution.py`` measures each layer).
So these two routes are served by this small ASGI app, and every other request by the Litestar
application (``.app``), which also declares the two routes: for the OpenAPI document, and for
the requests left to it here (a trailing slash, another method). Both answer through the same
functions (``webhooks.accept``, ``events_api.accept_events``), with the same error bodies.

What this keeps of the Litestar stack: the request id (the caller's ``x-request-id`` or a new
one, on the log context and in the answer's headers), the bearer key and role check for
events, the body size limits, the error answers' shape (``{"status_code", "detail"}``), and a
500 that logs the error scrubbed and tells nothing of it.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any, cast
from urllib.parse import parse_qsl

import msgspec
import structlog
from litestar.types import HTTPResponseStartEvent, HTTPScope, Receive, Scope, Send

from journeyhub import tracing
from journeyhub.gateway import events_api, webhooks
from journeyhub.gateway.answers import Answer, problem
from journeyhub.gateway.auth import key_cache, role_problem
from journeyhub.gateway.errors import UnprocessableInput, decode_json
from journeyhub.hub import Hub
from journeyhub.logs import get_logger, secrets_registry
from journeyhub.model import JourneyEvent

log = get_logger(__name__)
_encode = msgspec.json.Encoder().encode
_JSON = (b"content-type", b"application/json")
EVENTS_PATH = "/v1/events"
WEBHOOK_ROUTE = "/webhooks/{vendor}/{connection_id}"
EventsBody = JourneyEvent | list[JourneyEvent]


class Disconnected(Exception):
    """The client went away before its body was read."""


async def read_body(receive: Receive, declared: str | None, limit: int) -> bytes | None:
    """The body, or None when it is larger than ``limit`` (reading stops at once)."""
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Disconnected
        chunk = cast(bytes, message.get("body", b""))
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class Ingress:
    """The gateway's ASGI app (see the module's docstring); Litestar's attributes pass
    through."""

    def __init__(self, hub: Hub, app: Any) -> None:
        self.hub = hub
        self.app = app
        self.webhook_limit = hub.settings.webhook_max_bytes
        self.events_limit = app.request_max_body_size

    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and cast(HTTPScope, scope)["method"] == "POST":
            path = scope["path"]
            if path == EVENTS_PATH:
                await self._serve(scope, receive, send, self._events, {})
                return
            if path.startswith("/webhooks/"):
                parts = path.split("/")
                if len(parts) == 4 and parts[2] and parts[3]:
                    bound = {"vendor": parts[2], "connection_id": parts[3]}
                    await self._serve(scope, receive, send, self._webhook, bound)
                    return
        await self.app(scope, receive, send)

    async def _serve(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        route: Callable[..., Awaitable[Answer]],
        bound: dict[str, str],
    ) -> None:
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1")
            for name, value in scope["headers"]
        }
        request_id = headers.get("x-request-id", "")[:80] or uuid.uuid4().hex
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(
            request_id=request_id, correlation_id=request_id, **bound
        )
        started = False

        async def answer(status: int, body: bytes, retry_after: str | None = None) -> None:
            nonlocal started
            response_headers: list[tuple[bytes, bytes]] = [
                _JSON,
                (b"content-length", str(len(body)).encode()),
                (b"x-request-id", request_id.encode("latin-1")),
            ]
            if retry_after is not None:
                response_headers.append((b"retry-after", retry_after.encode()))
            started = True
            start: HTTPResponseStartEvent = {
                "type": "http.response.start",
                "status": status,
                "headers": response_headers,
            }
            await send(start)
            await send({"type": "http.response.body", "body": body, "more_body": False})

        try:
            if tracing.ENABLED:
                result = await self._traced(route, scope, receive, headers, request_id, bound)
            else:
                result = await route(scope, receive, headers, request_id, **bound)
            await answer(result.status, _encode(result.content), result.retry_after)
        except Disconnected:
            return  # the sender went away before its body was read: no one to answer
        except Exception as exc:
            log.error(
                "unhandled_error", path=scope["path"], error=secrets_registry.scrub(repr(exc))
            )
            if started:
                raise
            await answer(500, b'{"status_code":500,"detail":"internal error"}')

    async def _traced(
        self,
        route: Callable[..., Awaitable[Answer]],
        scope: Scope,
        receive: Receive,
        headers: dict[str, str],
        request_id: str,
        bound: dict[str, str],
    ) -> Answer:
        """``route`` inside the request's server span. A journey engine's events continue the
        engine's trace (its ``traceparent``); a vendor's webhook starts one of its own."""
        if bound:
            template, parent = WEBHOOK_ROUTE, None
            about = {f"journeyhub.{name}": value for name, value in bound.items()}
        else:
            template, parent, about = EVENTS_PATH, headers, {}
        with tracing.server_span(
            "POST", template, parent, {"journeyhub.request_id": request_id, **about}
        ) as span:
            result = await route(scope, receive, headers, request_id, **bound)
            tracing.answered(span, result.status)
            return result

    async def _webhook(
        self,
        scope: Scope,
        receive: Receive,
        headers: dict[str, str],
        request_id: str,
        *,
        vendor: str,
        connection_id: str,
    ) -> Answer:
        body = await read_body(receive, headers.get("content-length"), self.webhook_limit)
        raw_query = scope.get("query_string") or b""
        query: dict[str, str] = {}
        if raw_query:
            for key, value in parse_qsl(raw_query.decode("latin-1"), keep_blank_values=True):
                query.setdefault(key, value)  # the first of repeated names, as Litestar
        return await webhooks.accept(
            self.hub,
            vendor,
            connection_id,
            headers=headers,
            body=body,
            query=query,
            request_id=request_id,
        )

    async def _events(
        self, scope: Scope, receive: Receive, headers: dict[str, str], request_id: str
    ) -> Answer:
        scheme, _, presented = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            return problem(401, "missing API key: send 'Authorization: Bearer <tenant key>'")
        principal = await key_cache(self.app.state).principal(self.hub, presented.strip())
        if principal is None:
            return problem(401, "unknown or revoked API key")
        if (refused := role_problem(principal, "ingest")) is not None:
            return refused
        body = await read_body(receive, headers.get("content-length"), self.events_limit)
        if body is None:
            return problem(413, "Request Entity Too Large")
        try:
            events = decode_json(body, cast(Any, EventsBody)) if body else None
        except UnprocessableInput as exc:
            return Answer(
                exc.status_code,
                {"status_code": exc.status_code, "detail": exc.detail, "extra": exc.extra},
            )
        return await events_api.accept_events(
            self.hub, self.app.state, principal, events, request_id
        )
