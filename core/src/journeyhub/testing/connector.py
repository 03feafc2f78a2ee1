"""Fixtures for a connector's own tests, loaded by pytest wherever journeyhub is installed.

A connector's ``conftest.py`` names its vendor and its sandbox; the rest comes from here::

    @pytest.fixture(scope="session")
    def connector_vendor() -> str:
        return "acme"

Then ``registry`` (the kernel's plugin registry with that connector alone, loaded through its
entry point), ``http`` (the kernel's ``VendorHttp``), ``new_event`` / ``new_task`` /
``new_connection`` (builders: ``new_task`` fills ``task.mapped`` with the kernel's mapping
engine, as the push worker does) and ``call`` (a hook called through the registry, so
``config`` and ``creds`` are decoded as in production).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
import pytest_asyncio

from journeyhub.mapping import apply_mappings, merge_defaults
from journeyhub.model import Connection, DeliveryTask, FieldMapping, JourneyEvent
from journeyhub.plugins import PluginRegistry, get_plugin_manager
from journeyhub.vendor_http import VendorHttp

SAMPLE_EVENT: dict[str, Any] = {
    "id": "evt_journey_started",
    "type": "journey_started",
    "occurred_at": datetime(2026, 3, 1, 12, 0, tzinfo=UTC).isoformat(),
    "journey_instance_id": "ji_001",
    "journey_name": "Wedding onboarding",
    "client": {
        "id": "cl_001",
        "name": "Ada King Lovelace",
        "email": "ada@example.com",
        "phone": "+44 20 7946 0100",
    },
    "wedding": {
        "date": "2026-06-20",
        "venue": {"name": "Rose Barn", "address": "1 Lane, Bath"},
        "guest_count": 120,
    },
    "data": {"notes": "Golden hour portraits, please."},
}


def make_event(event_type: str = "journey_started", **overrides: Any) -> JourneyEvent:
    """A valid journey event of ``event_type``; ``overrides`` replace top-level fields."""
    raw = {**SAMPLE_EVENT, "id": f"evt_{event_type}", "type": event_type, **overrides}
    return msgspec.convert(raw, JourneyEvent)


@pytest.fixture(scope="session")
def connector_vendor() -> str:
    raise pytest.UsageError(
        "a connector's conftest.py defines a session fixture `connector_vendor` naming its vendor"
    )


_registries: dict[str, PluginRegistry] = {}


def registry_for(vendor: str) -> PluginRegistry:
    """The registry with ``vendor``'s connector alone, loaded through its entry point once
    per session (one pytest run holds several connectors' tests)."""
    loaded = _registries.get(vendor)
    if loaded is None:
        loaded = _registries[vendor] = get_plugin_manager(only=(vendor,))
    assert vendor in loaded.connectors, loaded.errors
    return loaded


@pytest.fixture
def registry(connector_vendor: str) -> PluginRegistry:
    return registry_for(connector_vendor)


@pytest_asyncio.fixture
async def http() -> AsyncIterator[VendorHttp]:
    async with VendorHttp() as client:
        yield client


@pytest.fixture
def new_event() -> Callable[..., JourneyEvent]:
    return make_event


@pytest.fixture
def new_connection(connector_vendor: str) -> Callable[..., Connection]:
    def build(
        config: Mapping[str, Any], field_mappings: list[FieldMapping] | None = None, **fields: Any
    ) -> Connection:
        return Connection(
            **{
                "id": "con_test",
                "tenant_id": "ten_test",
                "vendor": connector_vendor,
                "name": "test",
                "config": dict(config),
                "field_mappings": field_mappings or [],
                **fields,
            }
        )

    return build


@pytest.fixture
def new_task(registry: PluginRegistry, connector_vendor: str) -> Callable[..., DeliveryTask]:
    defaults = registry.connector(connector_vendor).default_field_mappings

    def build(
        event: JourneyEvent,
        connection: Connection | None = None,
        task_id: str | None = None,
        **fields: Any,
    ) -> DeliveryTask:
        """A task as the router makes it, ``mapped`` from the defaults and the connection's."""
        own = connection.field_mappings if connection is not None else []
        return DeliveryTask(
            **{
                "id": task_id or f"tsk_{event.id}",
                "tenant_id": "ten_test",
                "connection_id": connection.id if connection is not None else "con_test",
                "vendor": connector_vendor,
                "kind": "event",
                "order_key": event.client.id,
                "sequence": 1,
                "event": event,
                "mapped": apply_mappings(merge_defaults(defaults, own), event),
                **fields,
            }
        )

    return build


@pytest.fixture
def call(
    registry: PluginRegistry, connector_vendor: str, http: VendorHttp
) -> Callable[..., Awaitable[Any]]:
    async def hook(name: str, **kwargs: Any) -> Any:
        """Call one of the connector's hooks as the workers do (``http`` filled in)."""
        kwargs.setdefault("http", http)
        return await registry.call(connector_vendor, name, **kwargs)

    return hook
