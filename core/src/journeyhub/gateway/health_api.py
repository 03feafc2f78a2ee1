"""``GET /v1/connections/health`` and ``GET /v1/connections/{id}/health``.

The first is a static path, so Litestar's router matches it before the
``/v1/connections/{connection_id}`` of the connections controller. Another tenant's connection
answers 404, like one that does not exist. The computation is ``journeyhub.health``.
"""

from __future__ import annotations

from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import FromPath

from journeyhub.gateway.auth import require
from journeyhub.health import ConnectionHealth, connection_health, tenant_health
from journeyhub.hub import Hub
from journeyhub.services.connections import get_connection
from journeyhub.store.tenants import Principal


class ConnectionHealthController(Controller):
    path = "/v1/connections"
    tags = ["connections"]

    @get("/health", operation_id="listConnectionHealth", guards=[require("read")])
    async def all_health(
        self, request: Request, hub: NamedDependency[Hub]
    ) -> list[ConnectionHealth]:
        """The health of every connection of the key's tenant."""
        principal: Principal = request.user
        return await tenant_health(hub, principal.tenant_id)

    @get(
        "/{connection_id:str}/health",
        operation_id="getConnectionHealth",
        guards=[require("read")],
    )
    async def one_health(
        self, request: Request, hub: NamedDependency[Hub], connection_id: FromPath[str]
    ) -> ConnectionHealth:
        """Breaker, re-authorisation, last sync, success rates, latency, backlog, dead letters."""
        principal: Principal = request.user
        connection = await get_connection(hub.store, connection_id, principal.tenant_id)
        if connection is None:
            raise NotFoundException("no such connection")
        return await connection_health(hub, connection)
