"""Fixtures: one Google sandbox for the session (state reset per test), the plugin loaded
through the kernel's registry, and helpers to build events, tasks and fresh credentials."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
import pytest_asyncio
from journeyhub.mapping import apply_mappings, merge_defaults
from journeyhub.model import Connection, DeliveryTask, JourneyEvent, Known
from journeyhub.plugins import PluginRegistry, get_plugin_manager
from journeyhub.vendor_http import VendorHttp
from journeyhub_gcal.config import DEFAULT_FIELD_MAPPINGS
from journeyhub_gcal.sandbox import GcalSandbox

CHANNEL_TOKEN = "chan-token-0123456789abcdef"


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[GcalSandbox]:
    with GcalSandbox() as server:
        yield server


@pytest.fixture
def sandbox(sandbox_server: GcalSandbox) -> GcalSandbox:
    sandbox_server.reset()
    sandbox_server.rate_limit = None
    sandbox_server.rate_limit_status = 403
    sandbox_server.access_token_ttl = 3599
    sandbox_server.require_https = True
    sandbox_server.deliver_notifications = False
    return sandbox_server


@pytest.fixture(scope="session")
def registry() -> PluginRegistry:
    registry = get_plugin_manager(only=("gcal",))
    assert "gcal" in registry.connectors, registry.errors
    return registry


@pytest_asyncio.fixture
async def http() -> AsyncIterator[VendorHttp]:
    async with VendorHttp() as client:
        yield client


def make_connection(sandbox: GcalSandbox, **config: Any) -> Connection:
    return Connection(
        id="con_test",
        tenant_id="ten_test",
        vendor="gcal",
        name="t",
        config=sandbox.config(**config),
    )


@pytest.fixture
def connection(sandbox: GcalSandbox) -> Connection:
    return make_connection(sandbox)


@pytest.fixture
def credentials(sandbox: GcalSandbox) -> dict[str, Any]:
    """Stored credentials before any refresh: no access token yet."""
    return sandbox.credentials(channel_token=CHANNEL_TOKEN)


@pytest_asyncio.fixture
async def fresh(
    registry: PluginRegistry,
    connection: Connection,
    credentials: dict[str, Any],
    http: VendorHttp,
) -> dict[str, Any]:
    """Credentials after the kernel's authenticate step (one refresh)."""
    refreshed = await registry.call(
        "gcal",
        "journeyhub_authenticate",
        connection=connection,
        credentials=credentials,
        http=http,
        refused=False,
    )
    assert refreshed is not None
    return dict(refreshed)


def make_event(event_type: str = "journey_started", **overrides: Any) -> JourneyEvent:
    raw: dict[str, Any] = {
        "id": f"evt_{event_type}",
        "type": event_type,
        "occurred_at": datetime(2026, 3, 1, 12, 0, tzinfo=UTC).isoformat(),
        "journey_instance_id": "ji_001",
        "journey_name": "Wedding onboarding",
        "client": {"id": "cl_001", "name": "Ada Lovelace", "email": "ada@example.com"},
        "wedding": {
            "date": "2026-06-20",
            "venue": {"name": "Rose Barn", "address": "1 Lane"},
            "guest_count": 120,
        },
    }
    raw.update(overrides)
    return msgspec.convert(raw, JourneyEvent)


def make_task(event: JourneyEvent, task_id: str | None = None) -> DeliveryTask:
    return DeliveryTask(
        id=task_id or f"tsk_{event.id}",
        tenant_id="ten_test",
        connection_id="con_test",
        vendor="gcal",
        kind="event",
        order_key=event.client.id,
        sequence=1,
        event=event,
        mapped=apply_mappings(merge_defaults(DEFAULT_FIELD_MAPPINGS, []), event),
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
def hook(
    registry: PluginRegistry, http: VendorHttp, connection: Connection, fresh: dict[str, Any]
) -> Any:
    """``await hook("journeyhub_pull", cursor=…)``: a vendor hook with fresh credentials."""

    async def call(name: str, **kwargs: Any) -> Any:
        defaults = {"connection": connection, "credentials": fresh, "http": http}
        return await registry.call("gcal", name, **{**defaults, **kwargs})

    return call


@pytest.fixture
def push(hook: Any) -> Any:
    """``await push(event_or_task, connection=…, credentials=…)`` through the registry."""

    async def call(item: JourneyEvent | DeliveryTask, **kwargs: Any) -> Any:
        task = item if isinstance(item, DeliveryTask) else make_task(item)
        return await hook(
            "journeyhub_push",
            task=task,
            idempotency_key=task.id,
            suppressed=frozenset(),
            known=Known(),
            **kwargs,
        )

    return call
