"""Fixtures: one Studio Ninja sandbox (Google's calendar and token endpoint, and the enquiry
form) for the session, reset per test. ``registry``, ``http``, ``new_task``, ``new_connection``
and ``call`` come from ``journeyhub.testing.connector``; ``new_event`` is local (its client's
email needs stripping, and its data carries the enquiry's message), and ``hook``, ``pull`` and
``push`` call the plugin with the sandbox's connection by default."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import pytest_asyncio
from journeyhub.model import Connection, DeliveryTask, JourneyEvent, Known
from journeyhub.testing.connector import SAMPLE_EVENT, make_event
from journeyhub_studioninja.enquiry import LEDGER
from journeyhub_studioninja.sandbox import StudioNinjaSandbox


@pytest.fixture(scope="session")
def connector_vendor() -> str:
    return "studioninja"


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[StudioNinjaSandbox]:
    with StudioNinjaSandbox() as server:
        yield server


@pytest.fixture
def sandbox(sandbox_server: StudioNinjaSandbox) -> StudioNinjaSandbox:
    sandbox_server.reset()
    LEDGER.clear()  # the in-process memory of sent enquiries, kept between pushes
    return sandbox_server


@pytest.fixture
def new_event() -> Any:
    def build(event_type: str = "journey_started", **overrides: Any) -> JourneyEvent:
        sample = {
            "client": {**SAMPLE_EVENT["client"], "email": " ada@example.com "},
            "data": {"message": "Golden hour portraits, please."},
        }
        return make_event(event_type, **{**sample, **overrides})

    return build


@pytest.fixture
def connection(sandbox: StudioNinjaSandbox, new_connection: Any) -> Connection:
    return new_connection(sandbox.config())


@pytest.fixture
def credentials(sandbox: StudioNinjaSandbox) -> dict[str, Any]:
    """Stored credentials before any refresh: no access token yet."""
    return sandbox.credentials()


@pytest.fixture
def hook(call: Any, connection: Connection, credentials: dict[str, Any]) -> Any:
    """``await hook("journeyhub_…", **kwargs)``: a vendor hook of this plugin."""

    async def run(name: str, **kwargs: Any) -> Any:
        return await call(name, **{"connection": connection, "credentials": credentials, **kwargs})

    return run


@pytest_asyncio.fixture
async def fresh(hook: Any) -> dict[str, Any]:
    """Credentials after the kernel's authenticate step (one refresh at the sandbox)."""
    refreshed = await hook("journeyhub_authenticate", refused=False)
    assert refreshed is not None and refreshed["access_token"]
    return dict(refreshed)


@pytest.fixture
def pull(hook: Any, fresh: dict[str, Any]) -> Any:
    """``await pull(cursor, connection=…)`` → PullPage, with fresh credentials."""

    async def run(cursor: str | None = None, **kwargs: Any) -> Any:
        return await hook("journeyhub_pull", cursor=cursor, **{"credentials": fresh, **kwargs})

    return run


@pytest.fixture
def push(hook: Any, connection: Connection, new_task: Any) -> Any:
    """``await push(event_or_task, connection=…)`` → PushResult."""

    async def run(item: JourneyEvent | DeliveryTask, **kwargs: Any) -> Any:
        conn = kwargs.get("connection", connection)
        task = item if isinstance(item, DeliveryTask) else new_task(item, conn)
        return await hook(
            "journeyhub_push",
            task=task,
            idempotency_key=task.id,
            suppressed=frozenset(),
            known=Known(),
            **kwargs,
        )

    return run
