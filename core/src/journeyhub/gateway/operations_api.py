"""Deliveries, dead letters (with replay), triggers and the audit log of a tenant.

Everything is scoped to the key's tenant: another tenant's record answers 404.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException, ValidationException
from litestar.params import FromPath, FromQuery, JSONBody, Parameter

from journeyhub.gateway.auth import require
from journeyhub.gateway.docs import OptionalBody, StrictJSON, problems
from journeyhub.hub import Hub
from journeyhub.services import dead_letters
from journeyhub.services.dead_letters import DeadLetterFilter
from journeyhub.store.tenants import Principal

# A time in a query: RFC 3339 with an offset, nothing else (Litestar's own conversion would
# also take a Unix timestamp, "0.5", and a time without an offset, and guess).
Moment = Annotated[
    str | None,
    Parameter(
        description="RFC 3339 date-time with an offset, e.g. 2026-06-20T12:00:00Z",
        schema_extra={"format": "date-time"},
    ),
]


def moment(value: str | None, name: str) -> datetime | None:
    """A ``Moment`` parameter's value; 400 naming the parameter when it is not one."""
    if value is None:
        return None
    try:
        parsed = msgspec.convert(value, Annotated[datetime, msgspec.Meta(tz=True)], strict=True)
    except msgspec.ValidationError:
        raise ValidationException(
            f"query parameter {name!r}: {value!r} is not an RFC 3339 date-time with an offset",
            extra=[
                {
                    "message": "not an RFC 3339 date-time with an offset",
                    "key": name,
                    "source": "query",
                }
            ],
        ) from None
    return parsed


class DeliveryView(msgspec.Struct):
    id: int
    task_id: str
    connection_id: str
    vendor: str
    source_id: str
    attempt: int
    status: str
    vendor_status: int | None
    latency_ms: float | None
    external_ids: dict[str, Any] | None
    error: str | None
    correlation_id: str | None
    created_at: datetime


class DeadLetterView(msgspec.Struct):
    id: str
    connection_id: str
    vendor: str
    stage: str
    subject: str
    error: str
    attempts: int
    created_at: datetime
    replayed_at: datetime | None
    replay_count: int
    payload: Any


class ReplayFilter(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The body of ``POST /v1/dlq/replay``; every field is optional (no body: all of them)."""

    connection_id: str | None = None
    vendor: str | None = None
    since: Annotated[datetime, msgspec.Meta(tz=True)] | None = None
    until: Annotated[datetime, msgspec.Meta(tz=True)] | None = None
    error: str | None = None
    limit: int = 1000


class ReplayResult(msgspec.Struct):
    replayed: list[str]


class TriggerView(msgspec.Struct):
    id: str
    type: str
    connection_id: str
    vendor: str
    client_id: str | None
    source_event_id: str
    occurred_at: datetime
    data: dict[str, Any]
    created_at: datetime


class AuditView(msgspec.Struct):
    id: int
    actor: str
    action: str
    connection_id: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    created_at: datetime


def _payload(raw: bytes) -> Any:
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return None


def dead_view(row: Any) -> DeadLetterView:
    return DeadLetterView(
        id=row.id,
        connection_id=row.connection_id,
        vendor=row.vendor,
        stage=row.stage,
        subject=row.subject,
        error=row.error,
        attempts=row.attempts,
        created_at=row.created_at,
        replayed_at=row.replayed_at,
        replay_count=row.replay_count,
        payload=_payload(row.payload),
    )


class OperationsController(Controller):
    path = "/v1"
    tags = ["operations"]

    @get("/deliveries", operation_id="listDeliveries", guards=[require("read")])
    async def deliveries(
        self,
        request: Request,
        hub: NamedDependency[Hub],
        connection_id: FromQuery[str | None] = None,
        status: FromQuery[str | None] = None,
        since: Moment = None,
        limit: FromQuery[int] = 100,
    ) -> list[DeliveryView]:
        """Delivery attempts, newest first."""
        principal: Principal = request.user
        rows = await hub.store.deliveries.list(
            principal.tenant_id,
            connection_id=connection_id,
            status=status,
            since=moment(since, "since"),
            limit=min(max(limit, 1), 1000),
        )
        return [msgspec.convert(r, DeliveryView, from_attributes=True) for r in rows]

    @get("/dlq", operation_id="listDeadLetters", guards=[require("read")])
    async def dead_letters(
        self,
        request: Request,
        hub: NamedDependency[Hub],
        connection_id: FromQuery[str | None] = None,
        vendor: FromQuery[str | None] = None,
        since: Moment = None,
        until: Moment = None,
        error: FromQuery[str | None] = None,
        pending_only: FromQuery[bool] = False,
        limit: FromQuery[int] = 100,
    ) -> list[DeadLetterView]:
        """Dead letters, newest first; filter by connection, vendor, time and error text."""
        principal: Principal = request.user
        wanted = DeadLetterFilter(
            connection_id=connection_id,
            vendor=vendor,
            since=moment(since, "since"),
            until=moment(until, "until"),
            error=error,
        )
        rows = await dead_letters.list_dead_letters(
            hub.store,
            principal.tenant_id,
            wanted,
            limit=min(max(limit, 1), 1000),
            pending_only=pending_only,
        )
        return [dead_view(r) for r in rows]

    @post(
        "/dlq/{dead_letter_id:str}/replay",
        operation_id="replayDeadLetter",
        guards=[require("admin")],
        status_code=202,
    )
    async def replay_one(
        self, request: Request, hub: NamedDependency[Hub], dead_letter_id: FromPath[str]
    ) -> ReplayResult:
        """Put one dead letter back on the bus; it is delivered once."""
        principal: Principal = request.user
        found, _ = await dead_letters.get_dead_letters(
            hub.store, principal.tenant_id, [dead_letter_id]
        )
        if not found:
            raise NotFoundException("no such dead letter")
        return ReplayResult(
            replayed=await dead_letters.replay_dead_letters(hub, found, principal.actor)
        )

    @post(
        "/dlq/replay",
        operation_id="replayDeadLetters",
        guards=[require("admin")],
        status_code=202,
        dto=StrictJSON,
        return_dto=None,
        operation_class=OptionalBody,
        responses=problems(422),
    )
    async def replay_many(
        self,
        request: Request,
        hub: NamedDependency[Hub],
        data: JSONBody[ReplayFilter | None] = None,
    ) -> ReplayResult:
        """Replay every not-yet-replayed dead letter that matches the filter."""
        principal: Principal = request.user
        query = data or ReplayFilter()
        wanted = DeadLetterFilter(
            connection_id=query.connection_id,
            vendor=query.vendor,
            since=query.since,
            until=query.until,
            error=query.error,
        )
        rows = await dead_letters.pending_dead_letters(
            hub.store, principal.tenant_id, wanted, limit=min(max(query.limit, 1), 10_000)
        )
        return ReplayResult(
            replayed=await dead_letters.replay_dead_letters(hub, rows, principal.actor)
        )

    @get("/triggers", operation_id="listTriggers", guards=[require("read")])
    async def triggers(
        self,
        request: Request,
        hub: NamedDependency[Hub],
        connection_id: FromQuery[str | None] = None,
        limit: FromQuery[int] = 100,
    ) -> list[TriggerView]:
        """Triggers emitted to the journey engine, newest first."""
        principal: Principal = request.user
        rows = await hub.store.triggers.list(
            principal.tenant_id, connection_id=connection_id, limit=min(max(limit, 1), 1000)
        )
        return [msgspec.convert(r, TriggerView, from_attributes=True) for r in rows]

    @get("/audit", operation_id="listAudit", guards=[require("read")])
    async def audit(
        self,
        request: Request,
        hub: NamedDependency[Hub],
        since: Moment = None,
        until: Moment = None,
        actor: FromQuery[str | None] = None,
        action: FromQuery[str | None] = None,
        connection_id: FromQuery[str | None] = None,
        limit: FromQuery[int] = 100,
    ) -> list[AuditView]:
        """Configuration changes, keys, replays and conflict resolutions, newest first."""
        principal: Principal = request.user
        rows = await hub.store.audit.list(
            principal.tenant_id,
            since=moment(since, "since"),
            until=moment(until, "until"),
            actor=actor,
            action=action,
            connection_id=connection_id,
            limit=min(max(limit, 1), 1000),
        )
        return [msgspec.convert(r, AuditView, from_attributes=True) for r in rows]
