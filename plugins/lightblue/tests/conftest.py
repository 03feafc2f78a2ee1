"""Fixtures: one Light Blue sandbox for the session (emptied per test), the plugin loaded through
the kernel's registry, and builders for events, delivery tasks and connections."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
import pytest_asyncio
from journeyhub.mapping import apply_mappings, merge_defaults
from journeyhub.model import Connection, DeliveryTask, FieldMapping, JourneyEvent, Known
from journeyhub.plugins import PluginRegistry, get_plugin_manager
from journeyhub.vendor_http import VendorHttp
from journeyhub_lightblue.config import DEFAULT_FIELD_MAPPINGS
from journeyhub_lightblue.sandbox import LightBlueSandbox


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[LightBlueSandbox]:
    with LightBlueSandbox() as server:
        yield server


@pytest.fixture
def sandbox(sandbox_server: LightBlueSandbox) -> LightBlueSandbox:
    sandbox_server.reset()
    return sandbox_server


@pytest.fixture(scope="session")
def registry() -> PluginRegistry:
    registry = get_plugin_manager(only=("lightblue",))
    assert "lightblue" in registry.connectors, registry.errors
    return registry


@pytest_asyncio.fixture
async def http() -> AsyncIterator[VendorHttp]:
    async with VendorHttp() as client:
        yield client


def make_connection(
    sandbox: LightBlueSandbox, field_mappings: list[FieldMapping] | None = None, **config: Any
) -> Connection:
    return Connection(
        id="con_test",
        tenant_id="ten_test",
        vendor="lightblue",
        name="t",
        config={"api_url": sandbox.api_url, **config},
        field_mappings=field_mappings or [],
    )


def make_event(event_type: str = "journey_started", **overrides: Any) -> JourneyEvent:
    raw: dict[str, Any] = {
        "id": f"evt_{event_type}",
        "type": event_type,
        "occurred_at": datetime(2026, 3, 1, 12, 0, tzinfo=UTC).isoformat(),
        "journey_instance_id": "ji_001",
        "journey_name": "Wedding onboarding",
        "client": {
            "id": "cl_001",
            "name": "Ada King Lovelace",
            "email": " ada@example.com ",
            "phone": "+44 20 7946 0100",
        },
        "wedding": {
            "date": "2026-06-20",
            "venue": {"name": "Rose Barn", "address": "1 Lane, Bath"},
            "guest_count": 120,
        },
        "data": {"notes": "Golden hour portraits, please."},
    }
    raw.update(overrides)
    return msgspec.convert(raw, JourneyEvent)


def make_task(
    event: JourneyEvent, connection: Connection | None = None, task_id: str | None = None
) -> DeliveryTask:
    """A task as the router makes it: ``mapped`` from the defaults and the connection's own."""
    own = connection.field_mappings if connection is not None else []
    return DeliveryTask(
        id=task_id or f"tsk_{event.id}",
        tenant_id="ten_test",
        connection_id="con_test",
        vendor="lightblue",
        kind="event",
        order_key=event.client.id,
        sequence=1,
        event=event,
        mapped=apply_mappings(merge_defaults(DEFAULT_FIELD_MAPPINGS, own), event),
    )


# Tests import nothing from here (importlib mode): the helpers come as fixtures.


@pytest.fixture
def new_event() -> Any:
    return make_event


@pytest.fixture
def new_task() -> Any:
    return make_task


@pytest.fixture
def new_connection() -> Any:
    return make_connection


@pytest.fixture
def connection(sandbox: LightBlueSandbox) -> Connection:
    return make_connection(sandbox)


@pytest.fixture
def credentials(sandbox: LightBlueSandbox) -> dict[str, str]:
    return {"api_key": sandbox.api_key}


@pytest.fixture
def push(
    registry: PluginRegistry,
    http: VendorHttp,
    connection: Connection,
    credentials: dict[str, str],
) -> Any:
    """``await push(event_or_task, connection=…, credentials=…)`` through the kernel registry."""

    async def call(
        item: JourneyEvent | DeliveryTask,
        connection: Connection = connection,
        credentials: dict[str, str] = credentials,
    ) -> Any:
        task = item if isinstance(item, DeliveryTask) else make_task(item, connection)
        return await registry.call(
            "lightblue",
            "journeyhub_push",
            task=task,
            connection=connection,
            credentials=credentials,
            idempotency_key=task.id,
            http=http,
            suppressed=frozenset(),
            known=Known(),
        )

    return call


@pytest.fixture
def check(
    registry: PluginRegistry,
    http: VendorHttp,
    connection: Connection,
    credentials: dict[str, str],
) -> Any:
    async def call(
        connection: Connection = connection, credentials: dict[str, str] = credentials
    ) -> Any:
        return await registry.call(
            "lightblue",
            "journeyhub_check_connection",
            connection=connection,
            credentials=credentials,
            http=http,
        )

    return call
