"""``/v1/clients/{client_id}``: erasing one client's personal data (``services/clients.py``)."""

from __future__ import annotations

from litestar import Controller, Request, delete
from litestar.di import NamedDependency
from litestar.params import FromPath

from journeyhub.gateway.auth import require
from journeyhub.gateway.connections_api import answered_as_422
from journeyhub.gateway.docs import problems
from journeyhub.hub import Hub
from journeyhub.services.clients import ClientErasure, erase_client
from journeyhub.store.tenants import Principal


class ClientsController(Controller):
    path = "/v1/clients"
    tags = ["clients"]

    @delete(
        "/{client_id:str}",
        operation_id="eraseClient",
        guards=[require("admin")],
        status_code=200,
        responses=problems(422),
    )
    async def erase(
        self, request: Request, hub: NamedDependency[Hub], client_id: FromPath[str]
    ) -> ClientErasure:
        """Erase the client's personal data everywhere the hub keeps it (its rows in every
        table, its messages in every stream); answers how many of each were erased. Erasing
        a client again, or one the hub never saw, answers zeros."""
        principal: Principal = request.user
        with answered_as_422():
            return await erase_client(hub, principal.tenant_id, client_id, principal.actor)
