"""``POST /v1/events``: journey events in, one or an array of up to 500.

Answered 202 with the ids only after every event is durable in JetStream. The event ``id`` is
the idempotency key: the bus dedupes it as ``Nats-Msg-Id`` and the delivery task ids derive
from it, so a repeated id is accepted and not delivered again.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from litestar import Controller, Request, Response, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from journeyhub import metrics
from journeyhub.bus.jetstream import BusUnavailable
from journeyhub.gateway.answers import Answer, problem
from journeyhub.gateway.auth import require
from journeyhub.gateway.docs import StrictJSON, problems
from journeyhub.gateway.limits import events_limiter, retry_after_header
from journeyhub.hub import Hub
from journeyhub.logs import child_correlation_id, correlation_scope, get_logger
from journeyhub.model import JourneyEvent
from journeyhub.store.tenants import Principal

log = get_logger(__name__)
MAX_EVENTS = 500
_encode = msgspec.json.Encoder().encode


class EventsAccepted(msgspec.Struct):
    accepted: list[str]
    duplicates: list[str]


async def accept_events(
    hub: Hub,
    state: Any,
    principal: Principal,
    data: JourneyEvent | list[JourneyEvent] | None,
    request_id: str,
) -> Answer:
    """Store a request's events on the bus; the answer to give: 202 once durable, 422 naming
    the bad field, 429 over the tenant's rate (with ``Retry-After``; nothing stored), 503 if
    not stored."""
    if data is None:
        return _unprocessable("body is not valid JSON: send an event or an array")
    batch = data if isinstance(data, list) else [data]
    if not batch:
        return _unprocessable("send at least one event")
    if len(batch) > MAX_EVENTS:
        return _unprocessable(f"at most {MAX_EVENTS} events per request, not {len(batch)}")
    limiter = events_limiter(state, hub.settings)
    if limiter is not None:
        if len(batch) > limiter.burst:
            return _unprocessable(
                f"at most {limiter.burst:g} events per request on this hub "
                f"(JOURNEYHUB_EVENTS_BURST), not {len(batch)}"
            )
        wait = limiter.take(principal.tenant_id, len(batch))
        if wait > 0:
            metrics.child(metrics.events_received, "rate_limited").inc(len(batch))
            detail = (
                f"over this tenant's rate of {limiter.rate:g} events/s; nothing was "
                "stored: retry after Retry-After seconds"
            )
            return Answer(
                429, {"status_code": 429, "detail": detail}, retry_after=retry_after_header(wait)
            )
    subject = hub.bus.subjects.events(principal.tenant_id)
    # Each event's journey has its own correlation id: the request's id, then the event's.
    correlation = {e.id: child_correlation_id(request_id, e.id) for e in batch}
    try:
        acks = await asyncio.gather(
            *(
                hub.bus.publish(
                    subject,
                    _encode(event),
                    msg_id=f"{principal.tenant_id}:{event.id}",
                    headers={"Journeyhub-Correlation-Id": correlation[event.id]},
                )
                for event in batch
            )
        )
    except BusUnavailable:
        metrics.child(metrics.events_received, "bus_unavailable").inc(len(batch))
        # Some may be stored: sending the same ids again is safe (they are deduplicated).
        return Answer(
            503,
            {
                "status_code": 503,
                "detail": "not stored: the bus is unavailable; retry with the same ids",
            },
            retry_after="5",
        )
    duplicates = [e.id for e, ack in zip(batch, acks, strict=True) if ack.duplicate]
    for event, ack in zip(batch, acks, strict=True):
        with correlation_scope(correlation[event.id], event_id=event.id):
            log.info("event_accepted", event_type=event.type, duplicate=bool(ack.duplicate))
    metrics.child(metrics.events_received, "accepted").inc(len(batch) - len(duplicates))
    metrics.child(metrics.events_received, "duplicate").inc(len(duplicates))
    return Answer(202, EventsAccepted(accepted=[e.id for e in batch], duplicates=duplicates))


def _unprocessable(message: str) -> Answer:
    """A 422 as ``UnprocessableInput`` answers it through Litestar (the whole body is at
    fault: ``$``)."""
    return problem(422, message, extra={"errors": [{"field": "$", "message": message}]})


class EventsController(Controller):
    """The route's declaration (OpenAPI) and the requests ``gateway/ingress.py`` leaves to
    Litestar; both answer through :func:`accept_events`."""

    path = "/v1/events"
    tags = ["events"]

    @post(
        "/",
        operation_id="sendEvents",
        guards=[require("ingest")],
        status_code=202,
        dto=StrictJSON,
        return_dto=None,
        responses=problems(401, 403, 413, 422, 429, 503),
    )
    async def send(
        self,
        request: Request,
        hub: NamedDependency[Hub],
        data: JSONBody[JourneyEvent | list[JourneyEvent] | None] = None,
    ) -> Response[EventsAccepted]:
        """Accept journey events; 202 once durable, 422 naming the bad field, 429 over the
        tenant's rate (with ``Retry-After``; nothing stored), 503 if not stored."""
        request_id = request.scope.get("state", {}).get("request_id", "")
        result = await accept_events(hub, request.app.state, request.user, data, request_id)
        headers = {"retry-after": result.retry_after} if result.retry_after else None
        return Response(result.content, status_code=result.status, headers=headers)
