"""Fixtures: one Light Blue sandbox for the session (emptied per test); the registry, builders
and ``call`` come from ``journeyhub.testing.connector``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from journeyhub.model import Connection, DeliveryTask, JourneyEvent, Known
from journeyhub.testing.connector import SAMPLE_EVENT, make_event
from journeyhub_lightblue.sandbox import LightBlueSandbox


@pytest.fixture(scope="session")
def connector_vendor() -> str:
    return "lightblue"


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[LightBlueSandbox]:
    with LightBlueSandbox() as server:
        yield server


@pytest.fixture
def sandbox(sandbox_server: LightBlueSandbox) -> LightBlueSandbox:
    sandbox_server.reset()
    return sandbox_server


@pytest.fixture
def new_event() -> Any:
    """The shared sample, with spaces around the email for the default ``strip`` to remove."""
    client = {**SAMPLE_EVENT["client"], "email": " ada@example.com "}
    return lambda event_type="journey_started", **overrides: make_event(
        event_type, **{"client": client, **overrides}
    )


@pytest.fixture
def new_connection(new_connection: Any) -> Any:
    """``new_connection(sandbox, field_mappings=None, **config)``: a connection to ``sandbox``."""
    return lambda sandbox, field_mappings=None, **config: new_connection(
        {"api_url": sandbox.api_url, **config}, field_mappings
    )


@pytest.fixture
def connection(sandbox: LightBlueSandbox, new_connection: Any) -> Connection:
    return new_connection(sandbox)


@pytest.fixture
def credentials(sandbox: LightBlueSandbox) -> dict[str, str]:
    return {"api_key": sandbox.api_key}


@pytest.fixture
def push(call: Any, new_task: Any, connection: Connection, credentials: dict[str, str]) -> Any:
    """``await push(event_or_task, connection=…, credentials=…)`` through the kernel registry."""

    async def run(
        item: JourneyEvent | DeliveryTask,
        connection: Connection = connection,
        credentials: dict[str, str] = credentials,
    ) -> Any:
        task = item if isinstance(item, DeliveryTask) else new_task(item, connection)
        return await call(
            "journeyhub_push",
            task=task,
            connection=connection,
            credentials=credentials,
            idempotency_key=task.id,
            suppressed=frozenset(),
            known=Known(),
        )

    return run


@pytest.fixture
def check(call: Any, connection: Connection, credentials: dict[str, str]) -> Any:
    async def run(
        connection: Connection = connection, credentials: dict[str, str] = credentials
    ) -> Any:
        return await call(
            "journeyhub_check_connection", connection=connection, credentials=credentials
        )

    return run
