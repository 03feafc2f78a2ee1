"""Fixtures: one VSCO Workspace sandbox for the session (state reset per test), a stand-in for
what the kernel keeps between pushes (``hub``), and the kit's connector fixtures (``registry``,
``http``, ``call``) with builders of this suite's own events, tasks and connections."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
from journeyhub.errors import ConnectorError
from journeyhub.model import Connection, DeliveryTask, JourneyEvent, Known, KnownRecord
from journeyhub.testing.connector import make_event
from journeyhub_tave.sandbox import TaveSandbox

WEBHOOK_TOKEN = "tok_0123456789abcdef"
CLIENT = {
    "id": "cl_001",
    "name": "Ada Lovelace",
    "email": "ada@example.com",
    "phone": "+1 555 0100",
}
WEDDING = {
    "date": "2026-06-20",
    "venue": {"name": "Rose Barn", "address": "1 Lane"},
    "guest_count": 120,
}


@pytest.fixture(scope="session")
def connector_vendor() -> str:
    return "tave"


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[TaveSandbox]:
    with TaveSandbox() as server:
        yield server


@pytest.fixture
def sandbox(sandbox_server: TaveSandbox) -> Iterator[TaveSandbox]:
    """The sandbox, reset; no request a test made may be one the published contract refuses
    (a test that sends such requests on purpose sets ``refusals`` back to 0)."""
    sandbox_server.reset()
    sandbox_server.rate_limit = None
    sandbox_server.unfreeze()
    yield sandbox_server
    assert sandbox_server.refusals == 0, "a request was refused by the published contract"


@pytest.fixture
def new_event() -> Any:
    def build(event_type: str = "journey_started", **overrides: Any) -> JourneyEvent:
        return make_event(event_type, **{"client": CLIENT, "wedding": WEDDING, **overrides})

    return build


@pytest.fixture
def new_task(new_task: Any) -> Any:
    """``new_task(event, task_id=None)``."""
    return lambda event, task_id=None: new_task(event, task_id=task_id)


@pytest.fixture
def new_connection(new_connection: Any) -> Any:
    """``new_connection(sandbox, **config)``: a connection to the sandbox."""
    return lambda sandbox, **config: new_connection({"api_base": sandbox.api_base, **config})


@pytest.fixture
def connection(sandbox: TaveSandbox, new_connection: Any) -> Connection:
    return new_connection(sandbox)


@pytest.fixture
def credentials(sandbox: TaveSandbox) -> dict[str, str]:
    return {"api_key": sandbox.api_key, "webhook_token": WEBHOOK_TOKEN}


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


@pytest.fixture
def push(
    call: Any,
    new_task: Any,
    connection: Connection,
    credentials: dict[str, str],
    hub: HubMemory,
) -> Any:
    """``await push(event_or_task, connection=…, credentials=…, known=…)`` through the kernel
    registry. ``known`` defaults to what ``hub`` learnt from the earlier pushes of the test, with
    the task's attempt counted as the kernel counts it (a task pushed again is attempt 2); the
    records the push returns or attaches to its failure are learnt either way."""

    async def pushed(
        item: JourneyEvent | DeliveryTask,
        connection: Connection = connection,
        credentials: dict[str, str] = credentials,
        known: Known | None = None,
    ) -> Any:
        task = item if isinstance(item, DeliveryTask) else new_task(item)
        assert task.event is not None
        try:
            result = await call(
                "journeyhub_push",
                task=task,
                connection=connection,
                credentials=credentials,
                idempotency_key=task.id,
                suppressed=frozenset(),
                known=hub.known(task) if known is None else known,
            )
        except ConnectorError as exc:
            hub.learn(task.event.client.id, exc.records)
            raise
        hub.learn(task.event.client.id, result.records)
        return result

    return pushed


@pytest.fixture
def hook(call: Any, connection: Connection, credentials: dict[str, str]) -> Any:
    """``await hook("journeyhub_pull", cursor=…)``: any vendor hook, defaults filled in."""

    async def hooked(name: str, **kwargs: Any) -> Any:
        return await call(name, **{"connection": connection, "credentials": credentials, **kwargs})

    return hooked
