"""Resend a connection's kept journey events by filter, or backfill a new connection from them
(``services/redelivery.py``). Admin only; the answer is the operation: its id, how many kept
events matched and how many tasks were queued. The tasks' deliveries carry the operation id as
their correlation id (``GET /v1/deliveries``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from litestar import Controller, Request, post
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, JSONBody, Parameter

from journeyhub.gateway.auth import require
from journeyhub.gateway.connections_api import answered_as_422
from journeyhub.gateway.docs import StrictJSON, problems
from journeyhub.gateway.errors import UnprocessableInput
from journeyhub.hub import Hub
from journeyhub.services.redelivery import Operation, RedeliveryFilter, redeliver
from journeyhub.store.tenants import Principal

QueryMoment = Annotated[
    str | None,
    Parameter(
        description="RFC 3339 date-time with an offset, e.g. 2026-06-20T12:00:00Z",
        schema_extra={"format": "date-time"},
    ),
]


def query_moment(value: str | None, name: str) -> datetime | None:
    """A query parameter's time; 422 naming the parameter when it is not RFC 3339 with an
    offset."""
    if value is None:
        return None
    try:
        return msgspec.convert(value, Annotated[datetime, msgspec.Meta(tz=True)], strict=True)
    except msgspec.ValidationError:
        raise UnprocessableInput(
            f"{name} must be an RFC 3339 date-time with an offset", field=name
        ) from None


class RedeliveryController(Controller):
    path = "/v1/connections"
    tags = ["connections"]

    @post(
        "/{connection_id:str}/resend",
        operation_id="resendEvents",
        guards=[require("admin")],
        status_code=202,
        dto=StrictJSON,
        return_dto=None,
        responses=problems(422),
    )
    async def resend(
        self,
        request: Request,
        hub: NamedDependency[Hub],
        connection_id: FromPath[str],
        data: JSONBody[RedeliveryFilter | None] = None,
    ) -> Operation:
        """Push the connection's kept journey events that match the filter again, as new
        deliveries (fresh idempotency keys; the same ``key`` again pushes nothing twice)."""
        principal: Principal = request.user
        if data is None:
            raise UnprocessableInput("send a JSON filter", field="$")
        with answered_as_422():
            try:
                return await redeliver(
                    hub, principal.tenant_id, connection_id, "resend", data, principal.actor
                )
            except LookupError:
                raise NotFoundException("no such connection") from None

    @post(
        "/{connection_id:str}/backfill",
        operation_id="backfillConnection",
        guards=[require("admin")],
        status_code=202,
        responses=problems(422),
    )
    async def backfill(
        self,
        request: Request,
        hub: NamedDependency[Hub],
        connection_id: FromPath[str],
        since: QueryMoment = None,
        until: QueryMoment = None,
    ) -> Operation:
        """Fill the connection with the journey events the hub kept since ``since``, in each
        client's order, with the original idempotency keys: a repeat pushes nothing twice."""
        principal: Principal = request.user
        wanted = RedeliveryFilter(
            since=query_moment(since, "since"), until=query_moment(until, "until")
        )
        with answered_as_422():
            try:
                return await redeliver(
                    hub, principal.tenant_id, connection_id, "backfill", wanted, principal.actor
                )
            except LookupError:
                raise NotFoundException("no such connection") from None
