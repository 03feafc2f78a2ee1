"""Fixtures: one Google sandbox for the session (state reset per test), connections pointed at
it, fresh credentials, and hooks called with them. ``registry``, ``http``, ``call`` and the
builders come from ``journeyhub.testing.connector``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import pytest_asyncio
from journeyhub.model import Connection, DeliveryTask, JourneyEvent, Known
from journeyhub.testing.connector import make_event
from journeyhub_gcal.client import time_zones
from journeyhub_gcal.sandbox import GcalSandbox

CHANNEL_TOKEN = "chan-token-0123456789abcdef"


@pytest.fixture(scope="session")
def connector_vendor() -> str:
    return "gcal"


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[GcalSandbox]:
    with GcalSandbox() as server:
        yield server


@pytest.fixture
def sandbox(sandbox_server: GcalSandbox) -> Iterator[GcalSandbox]:
    """The sandbox, reset; no request a test made may be one Google's contract refuses (a
    test that sends such requests on purpose sets ``refusals`` back to 0)."""
    sandbox_server.reset()
    time_zones.clear()  # every test's connection has the same id
    sandbox_server.rate_limit = None
    sandbox_server.rate_limit_status = 403
    sandbox_server.access_token_ttl = 3599
    sandbox_server.require_https = True
    sandbox_server.deliver_notifications = False
    yield sandbox_server
    assert sandbox_server.refusals == 0, "a request was refused by calendar_v3.json's contract"


@pytest.fixture
def new_connection(new_connection: Any) -> Any:
    """``new_connection(sandbox, **config)``: a connection to the sandbox's calendar."""
    return lambda sandbox, **config: new_connection(sandbox.config(**config))


@pytest.fixture
def new_event() -> Any:
    """The shared sample event with this suite's client and venue."""

    def build(event_type: str = "journey_started", **overrides: Any) -> JourneyEvent:
        sample = {
            "client": {"id": "cl_001", "name": "Ada Lovelace", "email": "ada@example.com"},
            "wedding": {
                "date": "2026-06-20",
                "venue": {"name": "Rose Barn", "address": "1 Lane"},
                "guest_count": 120,
            },
        }
        return make_event(event_type, **{**sample, **overrides})

    return build


@pytest.fixture
def connection(sandbox: GcalSandbox, new_connection: Any) -> Connection:
    return new_connection(sandbox)


@pytest.fixture
def credentials(sandbox: GcalSandbox) -> dict[str, Any]:
    """Stored credentials before any refresh: no access token yet."""
    return sandbox.credentials(channel_token=CHANNEL_TOKEN)


@pytest_asyncio.fixture
async def fresh(call: Any, connection: Connection, credentials: dict[str, Any]) -> dict[str, Any]:
    """Credentials after the kernel's authenticate step (one refresh)."""
    refreshed = await call(
        "journeyhub_authenticate", connection=connection, credentials=credentials, refused=False
    )
    assert refreshed is not None
    return dict(refreshed)


@pytest.fixture
def hook(call: Any, connection: Connection, fresh: dict[str, Any]) -> Any:
    """``await hook("journeyhub_pull", cursor=…)``: a vendor hook with fresh credentials."""

    async def run(name: str, **kwargs: Any) -> Any:
        return await call(name, **{"connection": connection, "credentials": fresh, **kwargs})

    return run


@pytest.fixture
def push(hook: Any, new_task: Any) -> Any:
    """``await push(event_or_task, connection=…, credentials=…)`` through the registry."""

    async def run(item: JourneyEvent | DeliveryTask, **kwargs: Any) -> Any:
        task = item if isinstance(item, DeliveryTask) else new_task(item)
        return await hook(
            "journeyhub_push",
            task=task,
            idempotency_key=task.id,
            **{"suppressed": frozenset(), "known": Known(), **kwargs},
        )

    return run
