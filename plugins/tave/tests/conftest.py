"""Fixtures: one VSCO Workspace sandbox for the session (state reset per test), the plugin
loaded through the kernel's registry, and helpers to build events and delivery tasks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import msgspec
import pytest
import pytest_asyncio
from journeyhub.mapping import apply_mappings, merge_defaults
from journeyhub.model import Connection, DeliveryTask, JourneyEvent
from journeyhub.plugins import PluginRegistry, get_plugin_manager
from journeyhub_tave.config import DEFAULT_FIELD_MAPPINGS
from journeyhub_tave.sandbox import TaveSandbox

WEBHOOK_TOKEN = "tok_0123456789abcdef"


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[TaveSandbox]:
    with TaveSandbox() as server:
        yield server


@pytest.fixture
def sandbox(sandbox_server: TaveSandbox) -> TaveSandbox:
    sandbox_server.reset()
    sandbox_server.rate_limit = None
    sandbox_server.unfreeze()
    return sandbox_server


@pytest.fixture(scope="session")
def registry() -> PluginRegistry:
    registry = get_plugin_manager(only=("tave",))
    assert "tave" in registry.connectors, registry.errors
    return registry


@pytest_asyncio.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def connection(sandbox: TaveSandbox) -> Connection:
    return make_connection(sandbox)


@pytest.fixture
def credentials(sandbox: TaveSandbox) -> dict[str, str]:
    return {"api_key": sandbox.api_key, "webhook_token": WEBHOOK_TOKEN}


def make_connection(sandbox: TaveSandbox, **config: Any) -> Connection:
    return Connection(
        id="con_test",
        tenant_id="ten_test",
        vendor="tave",
        name="t",
        config={"api_base": sandbox.api_base, **config},
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
            "name": "Ada Lovelace",
            "email": "ada@example.com",
            "phone": "+1 555 0100",
        },
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
        vendor="tave",
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
def push(
    registry: PluginRegistry,
    http: httpx.AsyncClient,
    connection: Connection,
    credentials: dict[str, str],
) -> Any:
    """``await push(event_or_task, connection=…, credentials=…)`` through the kernel registry."""

    async def call(
        item: JourneyEvent | DeliveryTask,
        connection: Connection = connection,
        credentials: dict[str, str] = credentials,
    ) -> Any:
        task = item if isinstance(item, DeliveryTask) else make_task(item)
        return await registry.call(
            "tave",
            "journeyhub_push",
            task=task,
            connection=connection,
            credentials=credentials,
            idempotency_key=task.id,
            http=http,
            suppressed=frozenset(),
        )

    return call


@pytest.fixture
def hook(registry: PluginRegistry, http: httpx.AsyncClient, connection: Connection,
         credentials: dict[str, str]) -> Any:  # fmt: skip
    """``await hook("journeyhub_pull", cursor=…)``: any vendor hook, defaults filled in."""

    async def call(name: str, **kwargs: Any) -> Any:
        defaults = {"connection": connection, "credentials": credentials, "http": http}
        return await registry.call("tave", name, **{**defaults, **kwargs})

    return call
