"""``GET /v1/incidents``: the tenant's incidents (``workers/incidents.py``), newest first."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec
from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.params import FromQuery

from journeyhub.gateway.auth import require
from journeyhub.hub import Hub
from journeyhub.store.tenants import Principal


class IncidentView(msgspec.Struct):
    id: str
    kind: str
    connection_id: str
    status: str  # open | resolved
    summary: str
    details: dict[str, Any]
    revision: int
    started_at: datetime
    updated_at: datetime
    resolved_at: datetime | None


class IncidentsController(Controller):
    path = "/v1"
    tags = ["operations"]

    @get("/incidents", operation_id="listIncidents", guards=[require("read")])
    async def incidents(
        self,
        request: Request,
        hub: NamedDependency[Hub],
        status: FromQuery[Literal["open", "resolved"] | None] = None,
        limit: FromQuery[int] = 100,
    ) -> list[IncidentView]:
        """Operational incidents of the tenant's connections (a connection to authorise
        again, a breaker open, dead letters, a stalled backlog, a failing sync, an endpoint
        gone), newest first; ``status`` filters."""
        principal: Principal = request.user
        rows = await hub.store.incidents.list(
            principal.tenant_id, status=status, limit=min(max(limit, 1), 1000)
        )
        return [msgspec.convert(r, IncidentView, from_attributes=True) for r in rows]
