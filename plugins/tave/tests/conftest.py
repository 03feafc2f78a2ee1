"""Fixtures: one VSCO Workspace sandbox for the session (state reset per test), the plugin
loaded through the kernel's registry, a stand-in for what the kernel keeps between pushes
(``hub``), and helpers to build events and delivery tasks."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
import pytest_asyncio
from journeyhub.errors import ConnectorError
from journeyhub.mapping import apply_mappings, merge_defaults
from journeyhub.model import Connection, DeliveryTask, JourneyEvent, Known, KnownRecord
from journeyhub.plugins import PluginRegistry, get_plugin_manager
from journeyhub.vendor_http import VendorHttp
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
async def http() -> AsyncIterator[VendorHttp]:
    async with VendorHttp() as client:
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


class HubMemory:
    """What the kernel gives the push hook as ``known``: per client, the records every push
    returned (or attached to its failure), merged as sync links (a deleted one forgotten);
    per task, how many attempts were started."""

    def __init__(self) -> None:
        self.links: dict[str, dict[tuple[str, str], KnownRecord]] = {}
        self.attempts: Counter[str] = Counter()

    def known(self, task: DeliveryTask) -> Known:
        assert task.event is not None
        self.attempts[task.id] += 1
        records = tuple(self.links.get(task.event.client.id, {}).values())
        return Known(records=records, attempt=self.attempts[task.id])

    def learn(self, client_id: str, records: Iterable[Any]) -> None:
        links = self.links.setdefault(client_id, {})
        for record in records:
            key = (record.kind, record.vendor_id)
            if record.deleted:
                links.pop(key, None)
                continue
            old = links.get(key) or KnownRecord(kind=record.kind, vendor_id=record.vendor_id)
            links[key] = KnownRecord(
                kind=record.kind,
                vendor_id=record.vendor_id,
                ref=record.ref or old.ref,
                our_id=record.our_id or old.our_id,
                email=record.email or old.email,
                fields={**old.fields, **record.fields},
            )

    def pulled_contact(self, client_id: str, contact: dict[str, Any]) -> None:
        """The pull saw the studio's contact with the client's email (``our_id`` None)."""
        self.links.setdefault(client_id, {})[("contact", contact["id"])] = KnownRecord(
            kind="contact",
            vendor_id=contact["id"],
            email=contact.get("email"),
            fields={
                "email": contact.get("email"),
                "first_name": contact.get("firstName"),
                "last_name": contact.get("lastName"),
            },
        )

    def forget_all(self) -> None:
        """The hub knows nothing (its records lost, or never learnt)."""
        self.links.clear()


@pytest.fixture
def hub() -> HubMemory:
    return HubMemory()


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
    http: VendorHttp,
    connection: Connection,
    credentials: dict[str, str],
    hub: HubMemory,
) -> Any:
    """``await push(event_or_task, connection=…, credentials=…, known=…)`` through the kernel
    registry. ``known`` defaults to what ``hub`` learnt from the earlier pushes of the test, with
    the task's attempt counted as the kernel counts it (a task pushed again is attempt 2); the
    records the push returns or attaches to its failure are learnt either way."""

    async def call(
        item: JourneyEvent | DeliveryTask,
        connection: Connection = connection,
        credentials: dict[str, str] = credentials,
        known: Known | None = None,
    ) -> Any:
        task = item if isinstance(item, DeliveryTask) else make_task(item)
        assert task.event is not None
        try:
            result = await registry.call(
                "tave",
                "journeyhub_push",
                task=task,
                connection=connection,
                credentials=credentials,
                idempotency_key=task.id,
                http=http,
                suppressed=frozenset(),
                known=hub.known(task) if known is None else known,
            )
        except ConnectorError as exc:
            hub.learn(task.event.client.id, exc.records)
            raise
        hub.learn(task.event.client.id, result.records)
        return result

    return call


@pytest.fixture
def hook(
    registry: PluginRegistry, http: VendorHttp, connection: Connection, credentials: dict[str, str]
) -> Any:
    """``await hook("journeyhub_pull", cursor=…)``: any vendor hook, defaults filled in."""

    async def call(name: str, **kwargs: Any) -> Any:
        defaults = {"connection": connection, "credentials": credentials, "http": http}
        return await registry.call("tave", name, **{**defaults, **kwargs})

    return call
