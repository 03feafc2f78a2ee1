"""``/v1/connections``: CRUD, test. Credentials are write-only: accepted, never returned.

A connection of another tenant answers 404, exactly like one that does not exist.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

import msgspec
from litestar import Controller, Request, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, JSONBody

from journeyhub.errors import ConnectorError, ConnectorNotFound
from journeyhub.gateway.auth import require
from journeyhub.gateway.docs import StrictJSON, problems
from journeyhub.gateway.errors import UnprocessableInput, convert
from journeyhub.hub import Hub
from journeyhub.mapping import MappingError, validate_mappings
from journeyhub.model import (
    EVENT_TYPES,
    KERNEL_CONFIG_KEYS,
    TRIGGER_TYPES,
    Connection,
    Direction,
    FieldMapping,
)
from journeyhub.plugins import PluginRegistry
from journeyhub.store.keys import Principal

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


def validate_connection(
    registry: PluginRegistry,
    *,
    vendor: str,
    direction: str,
    config: dict[str, Any],
    credentials: dict[str, Any] | None,
    event_types: list[str],
    field_mappings: list[FieldMapping],
) -> dict[str, Any]:
    """Check a connection against its plugin; return the config as the schema normalised it."""
    try:
        info = registry.connector(vendor)
    except ConnectorNotFound:
        known = ", ".join(sorted(registry.connectors)) or "none"
        raise UnprocessableInput(
            f"no connector plugin for vendor {vendor!r} (loaded: {known})", field="$.vendor"
        ) from None
    caps = info.capabilities
    if direction == "outbound" and "push" not in caps:
        raise UnprocessableInput(f"{vendor} cannot push, so it cannot be outbound", "$.direction")
    if direction == "inbound" and not ({"webhook", "pull"} & caps):
        raise UnprocessableInput(
            f"{vendor} receives nothing, so it cannot be inbound", "$.direction"
        )
    kernel = {k: config[k] for k in KERNEL_CONFIG_KEYS if k in config}
    vendor_config = {k: v for k, v in config.items() if k not in KERNEL_CONFIG_KEYS}
    if info.config_schema is not None:
        vendor_config = msgspec.to_builtins(convert(vendor_config, info.config_schema, "$.config"))
    rate = kernel.get("rate_limit_per_second")
    if rate is not None and (
        not isinstance(rate, int | float) or isinstance(rate, bool) or rate <= 0
    ):
        raise UnprocessableInput("must be a positive number", "$.config.rate_limit_per_second")
    config = {**vendor_config, **kernel}
    if credentials is not None and info.credentials_schema is not None:
        convert(credentials, info.credentials_schema, "$.credentials")
    allowed = set(EVENT_TYPES) | set(TRIGGER_TYPES)
    for index, event_type in enumerate(event_types):
        if event_type not in allowed:
            raise UnprocessableInput(
                f"unknown event type {event_type!r}", field=f"$.event_types[{index}]"
            )
    try:
        validate_mappings(field_mappings)
    except MappingError as exc:
        raise UnprocessableInput(str(exc), field=exc.path) from None
    return config


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
        config = validate_connection(
            hub.registry,
            vendor=body.vendor,
            direction=body.direction,
            config=body.config,
            credentials=body.credentials,
            event_types=body.event_types,
            field_mappings=body.field_mappings,
        )
        connection = await hub.store.connections.create(
            tenant_id=principal.tenant_id,
            vendor=body.vendor,
            name=body.name,
            direction=body.direction,
            enabled=body.enabled,
            config=config,
            credentials=body.credentials,
            event_types=body.event_types,
            field_mappings=body.field_mappings,
            actor=principal.actor,
        )
        hub.connections.invalidate(connection.id, principal.tenant_id)
        return to_read(connection, hub, public_base_url(request))

    @get("/", operation_id="listConnections", guards=[require("read")])
    async def list_connections(
        self, request: Request, hub: NamedDependency[Hub]
    ) -> list[ConnectionRead]:
        principal: Principal = request.user
        base = public_base_url(request)
        return [
            to_read(c, hub, base) for c in await hub.store.connections.list(principal.tenant_id)
        ]

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
        current = msgspec.structs.replace(current, config={**current.config, **current.options})
        merged = msgspec.structs.replace(current, **changes)
        credentials = None if body.credentials is msgspec.UNSET else body.credentials
        changes["config"] = validate_connection(
            hub.registry,
            vendor=merged.vendor,
            direction=merged.direction,
            config=merged.config,
            credentials=credentials,
            event_types=merged.event_types,
            field_mappings=merged.field_mappings,
        )
        updated = await hub.store.connections.update(
            connection_id,
            principal.tenant_id,
            changes,
            actor=principal.actor,
            credentials=credentials,
        )
        hub.connections.invalidate(connection_id, principal.tenant_id)
        if updated is None:
            raise NotFoundException("no such connection")
        return to_read(updated, hub, public_base_url(request))

    @delete("/{connection_id:str}", operation_id="deleteConnection", guards=[require("admin")])
    async def delete_connection(
        self, request: Request, hub: NamedDependency[Hub], connection_id: FromPath[str]
    ) -> None:
        principal: Principal = request.user
        if not await hub.store.connections.delete(
            connection_id, principal.tenant_id, actor=principal.actor
        ):
            raise NotFoundException("no such connection")
        hub.connections.invalidate(connection_id, principal.tenant_id)

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
        return await check_connection(hub, connection_id)

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
        from journeyhub.workers.sync import can_pull, request_sync

        connection = await _owned(hub, request, connection_id)
        if not can_pull(hub, connection):
            raise UnprocessableInput(
                f"{connection.vendor} connection cannot be pulled (no pull capability, outbound, "
                "disabled or waiting for re-authorisation)",
                field="$.connection_id",
            )
        await request_sync(hub, connection.id)
        return SyncRequested(
            connection_id=connection.id,
            requested=True,
            detail="a worker pulls within a few seconds",
        )


async def check_connection(
    hub: NamedDependency[Hub], connection_id: FromPath[str]
) -> ConnectionTestResult:
    found = await hub.store.connections.get_with_credentials(connection_id)
    if found is None:
        raise NotFoundException("no such connection")
    connection, credentials = found
    try:
        credentials = await hub.auth.credentials(connection, credentials)
        answer = await hub.registry.call(
            connection.vendor,
            "journeyhub_check_connection",
            connection=connection,
            credentials=credentials,
            http=hub.http,
        )
    except ConnectorError as exc:
        return ConnectionTestResult(ok=False, vendor_answer=exc.message)
    except ConnectorNotFound as exc:
        return ConnectionTestResult(ok=False, vendor_answer=str(exc))
    return ConnectionTestResult(ok=True, vendor_answer=str(answer))


def _required(data: T | None) -> T:
    if data is None:
        raise UnprocessableInput("body is not valid JSON: send a JSON object", field="$")
    return data


async def _owned(
    hub: NamedDependency[Hub], request: Request, connection_id: FromPath[str]
) -> Connection:
    principal: Principal = request.user
    connection = await hub.store.connections.get(connection_id, principal.tenant_id)
    if connection is None:
        raise NotFoundException("no such connection")
    return connection
