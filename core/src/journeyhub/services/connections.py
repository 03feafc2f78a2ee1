"""Connections, a tenant's account at one vendor: checked against the connector that owns the
vendor, created, changed, deleted, tried against the vendor, and synced on demand.

``POST/PATCH/DELETE /v1/connections``, ``journeyhub connections add|list|test`` and the
dashboard go through here. Every change is audited by the store and dropped from the process's
connection cache (``cache``) at once; other processes see it within the cache's few seconds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec

from journeyhub.connection_cache import ConnectionCache
from journeyhub.delivery.retry_policy import PolicyError, RetryPolicy, parse_policy
from journeyhub.errors import ConnectorError, ConnectorNotFound
from journeyhub.mapping import MappingError, validate_mappings
from journeyhub.model import (
    EVENT_TYPES,
    KERNEL_CONFIG_KEYS,
    TRIGGER_TYPES,
    Connection,
    FieldMapping,
)
from journeyhub.plugins import PluginRegistry
from journeyhub.resilience.auth import Authenticator
from journeyhub.services.errors import InvalidInput
from journeyhub.store.store import Store
from journeyhub.vendor_http import VendorHttp

T = TypeVar("T")
_AT_PATH = re.compile(r" - at `(?P<path>[^`]+)`$")


@dataclass(frozen=True)
class ConnectionCheck:
    """What one cheap call to the vendor said: ``ok``, and the vendor's answer or error."""

    ok: bool
    answer: str


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
    """Check a connection against its plugin; return the config as the schema normalised it.
    Raises :class:`InvalidInput` naming the field."""
    try:
        info = registry.connector(vendor)
    except ConnectorNotFound:
        known = ", ".join(sorted(registry.connectors)) or "none"
        raise InvalidInput(
            f"no connector plugin for vendor {vendor!r} (loaded: {known})", field="$.vendor"
        ) from None
    caps = info.capabilities
    if direction == "outbound" and "push" not in caps:
        raise InvalidInput(f"{vendor} cannot push, so it cannot be outbound", "$.direction")
    if direction == "inbound" and not ({"webhook", "pull"} & caps):
        raise InvalidInput(f"{vendor} receives nothing, so it cannot be inbound", "$.direction")
    kernel = {k: config[k] for k in KERNEL_CONFIG_KEYS if k in config}
    vendor_config = {k: v for k, v in config.items() if k not in KERNEL_CONFIG_KEYS}
    if info.config_schema is not None:
        vendor_config = msgspec.to_builtins(_convert(vendor_config, info.config_schema, "$.config"))
    rate = kernel.get("rate_limit_per_second")
    if rate is not None and (
        not isinstance(rate, int | float) or isinstance(rate, bool) or rate <= 0
    ):
        raise InvalidInput("must be a positive number", "$.config.rate_limit_per_second")
    if "retry" in kernel:
        try:
            parse_policy(kernel["retry"], RetryPolicy())
        except PolicyError as exc:
            raise InvalidInput(exc.message, field=exc.field) from None
    config = {**vendor_config, **kernel}
    if credentials is not None and info.credentials_schema is not None:
        _convert(credentials, info.credentials_schema, "$.credentials")
    allowed = set(EVENT_TYPES) | set(TRIGGER_TYPES)
    for index, event_type in enumerate(event_types):
        if event_type not in allowed:
            raise InvalidInput(
                f"unknown event type {event_type!r}", field=f"$.event_types[{index}]"
            )
    try:
        validate_mappings(field_mappings)
    except MappingError as exc:
        raise InvalidInput(str(exc), field=exc.path) from None
    return config


def _convert(value: Any, kind: type[T], where: str) -> T:
    """Validate an already-decoded value (a plugin's config) and prefix the field path."""
    try:
        return msgspec.convert(value, kind, strict=True)
    except msgspec.ValidationError as exc:
        text = str(exc)
        match = _AT_PATH.search(text)
        path = where + (match.group("path")[1:] if match else "")
        message = _AT_PATH.sub("", text)
        raise InvalidInput(f"{message} - at `{path}`", field=path) from None


async def list_connections(store: Store, tenant_id: str | None = None) -> list[Connection]:
    """The tenant's connections (every tenant's with None), oldest first."""
    return await store.connections.list(tenant_id)


async def get_connection(
    store: Store, connection_id: str, tenant_id: str | None = None
) -> Connection | None:
    """The connection; None when there is none, or it belongs to another tenant than
    ``tenant_id`` (so another tenant's connection looks exactly like a missing one)."""
    return await store.connections.get(connection_id, tenant_id)


async def create_connection(
    store: Store,
    registry: PluginRegistry,
    *,
    tenant_id: str,
    vendor: str,
    name: str,
    direction: str,
    enabled: bool,
    config: dict[str, Any],
    credentials: dict[str, Any],
    event_types: list[str],
    field_mappings: list[FieldMapping],
    actor: str,
    cache: ConnectionCache | None = None,
) -> Connection:
    """Check the connection against its plugin and create it. Raises :class:`InvalidInput`,
    or ``LookupError`` when there is no such tenant."""
    checked = validate_connection(
        registry,
        vendor=vendor,
        direction=direction,
        config=config,
        credentials=credentials,
        event_types=event_types,
        field_mappings=field_mappings,
    )
    if not await store.tenants.exists(tenant_id):
        raise LookupError(f"no tenant {tenant_id!r}")
    connection = await store.connections.create(
        tenant_id=tenant_id,
        vendor=vendor,
        name=name,
        direction=direction,
        enabled=enabled,
        config=checked,
        credentials=credentials,
        event_types=event_types,
        field_mappings=field_mappings,
        actor=actor,
    )
    if cache is not None:
        cache.invalidate(connection.id, tenant_id)
    return connection


async def update_connection(
    store: Store,
    registry: PluginRegistry,
    current: Connection,
    changes: Mapping[str, Any],
    *,
    credentials: dict[str, Any] | None,
    actor: str,
    cache: ConnectionCache | None = None,
) -> Connection | None:
    """Apply ``changes`` (any of ``name``, ``direction``, ``enabled``, ``config``,
    ``event_types``, ``field_mappings``) to ``current``, and replace its credentials when
    ``credentials`` is not None; the connection as a whole is checked against its plugin
    first. None when it was deleted meanwhile. Raises :class:`InvalidInput`."""
    current = msgspec.structs.replace(current, config={**current.config, **current.options})
    merged = msgspec.structs.replace(current, **changes)
    updates = dict(changes)
    updates["config"] = validate_connection(
        registry,
        vendor=merged.vendor,
        direction=merged.direction,
        config=merged.config,
        credentials=credentials,
        event_types=merged.event_types,
        field_mappings=merged.field_mappings,
    )
    updated = await store.connections.update(
        current.id, current.tenant_id, updates, actor=actor, credentials=credentials
    )
    if cache is not None:
        cache.invalidate(current.id, current.tenant_id)
    return updated


async def delete_connection(
    store: Store,
    connection_id: str,
    tenant_id: str,
    *,
    actor: str,
    cache: ConnectionCache | None = None,
) -> bool:
    """Delete the tenant's connection; False when it has none by that id."""
    if not await store.connections.delete(connection_id, tenant_id, actor=actor):
        return False
    if cache is not None:
        cache.invalidate(connection_id, tenant_id)
    return True


async def check_connection(
    store: Store,
    registry: PluginRegistry,
    http: VendorHttp,
    connection_id: str,
    *,
    auth: Authenticator | None = None,
) -> ConnectionCheck | None:
    """One cheap call to the vendor with the stored credentials (refreshed first by ``auth``
    when given), and what it said; None when there is no such connection."""
    found = await store.connections.get_with_credentials(connection_id)
    if found is None:
        return None
    connection, credentials = found
    try:
        if auth is not None:
            credentials = await auth.credentials(connection, credentials)
        answer = await registry.call(
            connection.vendor,
            "journeyhub_check_connection",
            connection=connection,
            credentials=credentials,
            http=http,
        )
    except ConnectorError as exc:
        return ConnectionCheck(ok=False, answer=exc.message)
    except ConnectorNotFound as exc:
        return ConnectionCheck(ok=False, answer=str(exc))
    return ConnectionCheck(ok=True, answer=str(answer))


# --- syncing on demand ---------------------------------------------------------------------------


def can_pull(registry: PluginRegistry, connection: Connection) -> bool:
    """Whether the sync worker pulls this connection: enabled, not outbound, not waiting for a
    person to re-authorise it, and its plugin can pull."""
    loaded = registry.connectors.get(connection.vendor)
    return (
        connection.enabled
        and connection.direction != "outbound"
        and connection.status != "needs_reauth"
        and loaded is not None
        and "pull" in loaded.info.capabilities
    )


def sync_lease(connection_id: str) -> str:
    """The lease whose expiry schedules the connection's next pull (see ``workers.pull``)."""
    return f"sync:{connection_id}"


async def request_sync(store: Store, connection_id: str) -> None:
    """Sync this connection at the next tick of any worker."""
    await store.leases.make_due(sync_lease(connection_id))
