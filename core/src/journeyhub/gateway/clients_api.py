"""``/v1/clients``: finding a client by id, name or email, one client's timeline
(``services/timeline.py``), and erasing one client's personal data (``services/clients.py``)."""

from __future__ import annotations

from litestar import Controller, Request, delete, get
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery

from journeyhub.gateway.auth import require
from journeyhub.gateway.connections_api import answered_as_422
from journeyhub.gateway.docs import problems
from journeyhub.hub import Hub
from journeyhub.services.clients import ClientErasure, erase_client
from journeyhub.services.timeline import (
    DEFAULT_LIMIT,
    ClientTimeline,
    ClientView,
    client_timeline,
    find_clients,
)
from journeyhub.store.tenants import Principal


class ClientsController(Controller):
    path = "/v1/clients"
    tags = ["clients"]

    @get("/", operation_id="findClients", guards=[require("read")], responses=problems(422))
    async def find(
        self,
        request: Request,
        hub: NamedDependency[Hub],
        q: FromQuery[str],
        limit: FromQuery[int] = 20,
    ) -> list[ClientView]:
        """The clients whose id, email, name or a word of the name starts with ``q``
        (case-insensitive), as their newest journey event names them; at most ``limit``
        (up to 50). A client is found by every name and email it has had."""
        principal: Principal = request.user
        with answered_as_422():
            return await find_clients(hub, principal.tenant_id, q, limit=limit)

    @get(
        "/{client_id:str}/timeline",
        operation_id="getClientTimeline",
        guards=[require("read")],
        responses=problems(422),
    )
    async def timeline(
        self,
        request: Request,
        hub: NamedDependency[Hub],
        client_id: FromPath[str],
        before: FromQuery[str | None] = None,
        limit: FromQuery[int] = DEFAULT_LIMIT,
    ) -> ClientTimeline:
        """Everything the hub did for the client, newest first, across every connection:
        journey events received, delivery attempts and their outcome at each vendor (with
        the vendor's record ids), triggers emitted, dead letters (replay one with
        ``POST /v1/dlq/{ids.dead_letter}/replay``); and the client's records at the vendors.
        ``limit`` entries a page (up to 200); pass ``next`` as ``before`` for the next page.
        A client the tenant never had answers an empty page."""
        principal: Principal = request.user
        with answered_as_422():
            return await client_timeline(
                hub, principal.tenant_id, client_id, before=before, limit=limit
            )

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
