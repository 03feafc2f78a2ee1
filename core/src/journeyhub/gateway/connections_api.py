"""``/v1/connections``: CRUD, test. Credentials are write-only: accepted, never returned.

A connection of another tenant answers 404, exactly like one that does not exist.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar

import msgspec
from litestar import Controller, Request, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, JSONBody

from journeyhub.gateway.auth import require
from journeyhub.gateway.docs import StrictJSON, problems
from journeyhub.gateway.errors import UnprocessableInput
from journeyhub.hub import Hub
from journeyhub.model import Connection, Direction, FieldMapping
from journeyhub.services import connections
from journeyhub.services.errors import InvalidInput
from journeyhub.store.tenants import Principal

T = TypeVar("T")


class ConnectionCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    vendor: str
    name: str
    direction: Direction = "bidirectional"
    enabled: bool = True
    config: dict[str, Any] = {}
    credentials: dict[str, Any] = {}
    event_types: list[str] = []
    field_mappings: list[FieldMapping] = []


class ConnectionUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: str | msgspec.UnsetType = msgspec.UNSET
    direction: Direction | msgspec.UnsetType = msgspec.UNSET
    enabled: bool | msgspec.UnsetType = msgspec.UNSET
    config: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET
    credentials: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET
    event_types: list[str] | msgspec.UnsetType = msgspec.UNSET
    field_mappings: list[FieldMapping] | msgspec.UnsetType = msgspec.UNSET


class ConnectionRead(msgspec.Struct, kw_only=True):
    id: str
    tenant_id: str
    vendor: str
    name: str
    direction: str
    enabled: bool
    status: str
    config: dict[str, Any]
    event_types: list[str]
    field_mappings: list[FieldMapping]
    webhook_url: str | None
    created_at: datetime | None
    updated_at: datetime | None


class ConnectionTestResult(msgspec.Struct):
    ok: bool
    vendor_answer: str


class SyncRequested(msgspec.Struct):
    connection_id: str
    requested: bool
    detail: str


def public_base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def to_read(connection: Connection, hub: Hub, base_url: str) -> ConnectionRead:
    info = hub.registry.connectors.get(connection.vendor)
    has_webhook = info is not None and "webhook" in info.info.capabilities
    return ConnectionRead(
        id=connection.id,
        tenant_id=connection.tenant_id,
        vendor=connection.vendor,
        name=connection.name,
        direction=connection.direction,
        enabled=connection.enabled,
        status=connection.status,
        config={**connection.config, **connection.options},
        event_types=connection.event_types,
        field_mappings=connection.field_mappings,
        webhook_url=f"{base_url}/webhooks/{connection.vendor}/{connection.id}"
        if has_webhook
        else None,
        created_at=connection.created_at,
        updated_at=connection.updated_at,
    )


@contextmanager
def answered_as_422() -> Iterator[None]:
    """A service's :class:`InvalidInput` as the API's 422 naming the field."""
    try:
        yield
    except InvalidInput as exc:
        raise UnprocessableInput(exc.message, field=exc.field) from None


class ConnectionsController(Controller):
    path = "/v1/connections"
    tags = ["connections"]

    @post(
        "/",
        operation_id="createConnection",
        guards=[require("admin")],
        status_code=201,
        dto=StrictJSON,
        return_dto=None,
        responses=problems(422),
    )
    async def create(
        self,
        request: Request,
        hub: NamedDependency[Hub],
        data: JSONBody[ConnectionCreate | None] = None,
    ) -> ConnectionRead:
        """Create a connection; ``config`` and ``credentials`` are checked against the plugin."""
        principal: Principal = request.user
        body = _required(data)
        with answered_as_422():
            connection = await connections.create_connection(
                hub.store,
                hub.registry,
                tenant_id=principal.tenant_id,
                vendor=body.vendor,
                name=body.name,
                direction=body.direction,
                enabled=body.enabled,
                config=body.config,
                credentials=body.credentials,
                event_types=body.event_types,
                field_mappings=body.field_mappings,
                actor=principal.actor,
                cache=hub.connection_cache,
            )
        return to_read(connection, hub, public_base_url(request))

    @get("/", operation_id="listConnections", guards=[require("read")])
    async def list_connections(
        self, request: Request, hub: NamedDependency[Hub]
    ) -> list[ConnectionRead]:
        principal: Principal = request.user
        base = public_base_url(request)
        found = await connections.list_connections(hub.store, principal.tenant_id)
        return [to_read(c, hub, base) for c in found]

    @get("/{connection_id:str}", operation_id="getConnection", guards=[require("read")])
    async def get_connection(
        self, request: Request, hub: NamedDependency[Hub], connection_id: FromPath[str]
    ) -> ConnectionRead:
        connection = await _owned(hub, request, connection_id)
        return to_read(connection, hub, public_base_url(request))

    @patch(
        "/{connection_id:str}",
        operation_id="updateConnection",
        guards=[require("admin")],
        dto=StrictJSON,
        return_dto=None,
        responses=problems(422),
    )
    async def update(
        self,
        request: Request,
        hub: NamedDependency[Hub],
        connection_id: FromPath[str],
        data: JSONBody[ConnectionUpdate | None] = None,
    ) -> ConnectionRead:
        """Change a connection; only the fields sent change (``credentials`` are replaced)."""
        principal: Principal = request.user
        current = await _owned(hub, request, connection_id)
        body = _required(data)
        changes = {
            k: v
            for k, v in msgspec.structs.asdict(body).items()
            if v is not msgspec.UNSET and k != "credentials"
        }
        with answered_as_422():
            updated = await connections.update_connection(
                hub.store,
                hub.registry,
                current,
                changes,
                credentials=None if body.credentials is msgspec.UNSET else body.credentials,
                actor=principal.actor,
                cache=hub.connection_cache,
            )
        if updated is None:
            raise NotFoundException("no such connection")
        return to_read(updated, hub, public_base_url(request))

    @delete("/{connection_id:str}", operation_id="deleteConnection", guards=[require("admin")])
    async def delete_connection(
        self, request: Request, hub: NamedDependency[Hub], connection_id: FromPath[str]
    ) -> None:
        principal: Principal = request.user
        if not await connections.delete_connection(
            hub.store,
            connection_id,
            principal.tenant_id,
            actor=principal.actor,
            cache=hub.connection_cache,
        ):
            raise NotFoundException("no such connection")

    @post(
        "/{connection_id:str}/test",
        operation_id="testConnection",
        guards=[require("admin")],
        status_code=200,
    )
    async def test_connection(
        self, request: Request, hub: NamedDependency[Hub], connection_id: FromPath[str]
    ) -> ConnectionTestResult:
        """Make one cheap call to the vendor with the stored credentials and report its answer."""
        await _owned(hub, request, connection_id)
        checked = await connections.check_connection(
            hub.store, hub.registry, hub.http, connection_id, auth=hub.auth
        )
        if checked is None:
            raise NotFoundException("no such connection")
        return ConnectionTestResult(ok=checked.ok, vendor_answer=checked.answer)

    @post(
        "/{connection_id:str}/sync",
        operation_id="syncConnection",
        guards=[require("admin")],
        status_code=202,
        responses=problems(422),
    )
    async def sync_connection(
        self, request: Request, hub: NamedDependency[Hub], connection_id: FromPath[str]
    ) -> SyncRequested:
        """Pull changes from the vendor now (at the next tick of any worker)."""
        connection = await _owned(hub, request, connection_id)
        if not connections.can_pull(hub.registry, connection):
            raise UnprocessableInput(
                f"{connection.vendor} connection cannot be pulled (no pull capability, outbound, "
                "disabled or waiting for re-authorisation)",
                field="$.connection_id",
            )
        await connections.request_sync(hub.store, connection.id)
        return SyncRequested(
            connection_id=connection.id,
            requested=True,
            detail="a worker pulls within a few seconds",
        )


def _required(data: T | None) -> T:
    if data is None:
        raise UnprocessableInput("body is not valid JSON: send a JSON object", field="$")
    return data


async def _owned(
    hub: NamedDependency[Hub], request: Request, connection_id: FromPath[str]
) -> Connection:
    principal: Principal = request.user
    connection = await connections.get_connection(hub.store, connection_id, principal.tenant_id)
    if connection is None:
        raise NotFoundException("no such connection")
    return connection
