"""Fixtures: one Studio Ninja sandbox (Google's calendar and token endpoint, and the enquiry
form) for the session, reset per test; the plugin loaded through the kernel's registry; and
builders for connections, events and delivery tasks."""

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
from journeyhub_studioninja.config import DEFAULT_FIELD_MAPPINGS
from journeyhub_studioninja.enquiry import LEDGER
from journeyhub_studioninja.sandbox import StudioNinjaSandbox


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[StudioNinjaSandbox]:
    with StudioNinjaSandbox() as server:
        yield server


@pytest.fixture
def sandbox(sandbox_server: StudioNinjaSandbox) -> StudioNinjaSandbox:
    sandbox_server.reset()
    LEDGER.clear()  # the in-process memory of sent enquiries, kept between pushes
    return sandbox_server


@pytest.fixture(scope="session")
def registry() -> PluginRegistry:
    registry = get_plugin_manager(only=("studioninja",))
    assert "studioninja" in registry.connectors, registry.errors
    return registry


@pytest_asyncio.fixture
async def http() -> AsyncIterator[VendorHttp]:
    async with VendorHttp() as client:
        yield client


def make_connection(
    sandbox: StudioNinjaSandbox,
    field_mappings: list[FieldMapping] | None = None,
    connection_id: str = "con_test",
    **config: Any,
) -> Connection:
    return Connection(
        id=connection_id,
        tenant_id="ten_test",
        vendor="studioninja",
        name="t",
        config=sandbox.config(**config),
        field_mappings=field_mappings or [],
    )


def make_event(event_type: str = "journey_started", **overrides: Any) -> JourneyEvent:
    raw: dict[str, Any] = {
        "id": f"evt_{event_type}",
        "type": event_type,
        "occurred_at": datetime(2026, 3, 1, 12, 0, tzinfo=UTC).isoformat(),
        "journey_instance_id": "ji_001",
        "journey_name": "Wedding enquiry",
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
        "data": {"message": "Golden hour portraits, please."},
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
        vendor="studioninja",
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
def connection(sandbox: StudioNinjaSandbox) -> Connection:
    return make_connection(sandbox)


@pytest.fixture
def credentials(sandbox: StudioNinjaSandbox) -> dict[str, Any]:
    """Stored credentials before any refresh: no access token yet."""
    return sandbox.credentials()


@pytest.fixture
def hook(
    registry: PluginRegistry, http: VendorHttp, connection: Connection, credentials: dict[str, Any]
) -> Any:
    """``await hook("journeyhub_…", **kwargs)``: a vendor hook of this plugin."""

    async def call(name: str, **kwargs: Any) -> Any:
        defaults = {"connection": connection, "credentials": credentials, "http": http}
        return await registry.call("studioninja", name, **{**defaults, **kwargs})

    return call


@pytest_asyncio.fixture
async def fresh(hook: Any) -> dict[str, Any]:
    """Credentials after the kernel's authenticate step (one refresh at the sandbox)."""
    refreshed = await hook("journeyhub_authenticate", refused=False)
    assert refreshed is not None and refreshed["access_token"]
    return dict(refreshed)


@pytest.fixture
def pull(hook: Any, fresh: dict[str, Any]) -> Any:
    """``await pull(cursor, connection=…)`` → PullPage, with fresh credentials."""

    async def call(cursor: str | None = None, **kwargs: Any) -> Any:
        return await hook("journeyhub_pull", cursor=cursor, **{"credentials": fresh, **kwargs})

    return call


@pytest.fixture
def push(hook: Any, connection: Connection) -> Any:
    """``await push(event_or_task, connection=…)`` → PushResult."""

    async def call(item: JourneyEvent | DeliveryTask, **kwargs: Any) -> Any:
        conn = kwargs.get("connection", connection)
        task = item if isinstance(item, DeliveryTask) else make_task(item, conn)
        return await hook(
            "journeyhub_push",
            task=task,
            idempotency_key=task.id,
            suppressed=frozenset(),
            known=Known(),
            **kwargs,
        )

    return call
