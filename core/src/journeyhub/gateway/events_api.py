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

from journeyhub import metrics
from journeyhub.bus.jetstream import BusUnavailable
from journeyhub.gateway.auth import require
from journeyhub.gateway.errors import UnprocessableInput, decode_json
from journeyhub.hub import Hub
from journeyhub.model import JourneyEvent
from journeyhub.store.keys import Principal

MAX_EVENTS = 500


class EventsAccepted(msgspec.Struct):
    accepted: list[str]
    duplicates: list[str]


class EventsController(Controller):
    path = "/v1/events"
    tags = ["events"]

    @post("/", operation_id="sendEvents", guards=[require("ingest")], status_code=202)
    async def send(self, request: Request, hub: NamedDependency[Hub]) -> Response[Any]:
        """Accept journey events; 202 once durable, 422 naming the bad field, 503 if not stored."""
        principal: Principal = request.user
        events = decode_json(await request.body(), JourneyEvent | list[JourneyEvent])
        batch = events if isinstance(events, list) else [events]
        if not batch:
            raise UnprocessableInput("send at least one event", field="$")
        if len(batch) > MAX_EVENTS:
            raise UnprocessableInput(
                f"at most {MAX_EVENTS} events per request, not {len(batch)}", field="$"
            )
        subject = hub.bus.subjects.events(principal.tenant_id)
        correlation_id = request.scope.get("state", {}).get("request_id", "")
        try:
            acks = await asyncio.gather(
                *(
                    hub.bus.publish(
                        subject,
                        msgspec.json.encode(event),
                        msg_id=f"{principal.tenant_id}:{event.id}",
                        headers={"Journeyhub-Correlation-Id": f"{correlation_id}:{event.id}"},
                    )
                    for event in batch
                )
            )
        except BusUnavailable:
            metrics.events_received.labels("bus_unavailable").inc(len(batch))
            # Some may be stored: sending the same ids again is safe (they are deduplicated).
            return Response(
                {
                    "status_code": 503,
                    "detail": "not stored: the bus is unavailable; retry with the same ids",
                },
                status_code=503,
                headers={"retry-after": "5"},
            )
        duplicates = [e.id for e, ack in zip(batch, acks, strict=True) if ack.duplicate]
        metrics.events_received.labels("accepted").inc(len(batch) - len(duplicates))
        metrics.events_received.labels("duplicate").inc(len(duplicates))
        return Response(
            EventsAccepted(accepted=[e.id for e in batch], duplicates=duplicates), status_code=202
        )
