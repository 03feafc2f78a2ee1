"""Fixtures: one HoneyBook sandbox (fake Zapier) per session, reset per test; a stand-in for
the gateway that verifies the Zaps' POSTs over real HTTP the way the gateway calls the plugin.
``registry``, ``http``, ``new_connection``, ``new_task`` and ``call`` come from
``journeyhub.testing.connector``; ``new_event`` and ``hook`` are local: these tests use their
own sample event and call hooks with the sandbox's connection by default."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from journeyhub.errors import WebhookRejected
from journeyhub.model import Connection, JourneyEvent, Known, StoredWebhook
from journeyhub.plugins import PluginRegistry
from journeyhub.testing.sandbox import SandboxServer
from journeyhub_honeybook.sandbox import HoneyBookSandbox
from litestar import Litestar, Request, Response, post

VENDOR = "honeybook"


@pytest.fixture(scope="session")
def connector_vendor() -> str:
    return VENDOR


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[HoneyBookSandbox]:
    with HoneyBookSandbox() as server:
        yield server


@pytest.fixture
def sandbox(sandbox_server: HoneyBookSandbox) -> HoneyBookSandbox:
    sandbox_server.reset()
    return sandbox_server


@pytest.fixture
def connection(sandbox: HoneyBookSandbox, new_connection: Any) -> Connection:
    return new_connection(sandbox.config())


@pytest.fixture
def credentials(sandbox: HoneyBookSandbox) -> dict[str, str]:
    return {"secret": sandbox.secret, "token": sandbox.token}


def make_event(event_type: str = "journey_started", **overrides: Any) -> JourneyEvent:
    raw: dict[str, Any] = {
        "id": f"evt_{event_type}",
        "type": event_type,
        "occurred_at": "2026-03-01T12:00:00Z",
        "journey_instance_id": "ji_001",
        "journey_name": "Wedding onboarding",
        "client": {
            "id": "cl_001",
            "name": "Ada Lovelace",
            "email": "ada@example.com",
            "phone": "+1 555 0100",
        },
        "wedding": {
            "date": "2026-09-12",
            "venue": {"name": "Rose Barn", "address": "1 Lane"},
            "guest_count": 120,
        },
        "data": {"budget": 8000},
    }
    raw.update(overrides)
    return msgspec.convert(raw, JourneyEvent)


def stored(
    body: bytes, event_type: str | None, content_type: str = "application/json"
) -> StoredWebhook:
    return StoredWebhook(
        vendor=VENDOR,
        connection_id="con_test",
        tenant_id="ten_test",
        event_id="e",
        event_type=event_type,
        received_at=datetime.now(UTC),
        headers={"content-type": content_type},
        body=body,
    )


@pytest.fixture
def new_event() -> Any:
    return make_event


@pytest.fixture
def new_stored() -> Any:
    return stored


@pytest.fixture
def hook(call: Any, connection: Connection, credentials: dict[str, str]) -> Any:
    """``await hook("journeyhub_push", task=…)``: any vendor hook, defaults filled in."""

    async def run(name: str, **kwargs: Any) -> Any:
        defaults = {"connection": connection, "credentials": credentials}
        if name == "journeyhub_push":
            defaults.update(
                idempotency_key=kwargs["task"].id, suppressed=frozenset(), known=Known()
            )
        return await call(name, **{**defaults, **kwargs})

    return run


class GatewayStub:
    """Answers the Zaps' POSTs like the gateway: 200 with the receipt, or 401 with the reason;
    and keeps what it accepted, as the gateway stores it, for the inbound worker's hook."""

    def __init__(
        self, registry: PluginRegistry, connection: Connection, credentials: dict[str, str]
    ) -> None:
        self.accepted: list[StoredWebhook] = []

        @post(f"/webhooks/{VENDOR}/con_test", status_code=200)
        async def receive(request: Request[Any, Any, Any]) -> Response[Any]:
            body = await request.body()
            headers = {k.lower(): v for k, v in request.headers.items()}
            try:
                receipt = await registry.call(
                    VENDOR,
                    "journeyhub_verify_webhook",
                    connection=connection,
                    credentials=credentials,
                    headers=headers,
                    body=body,
                    now=datetime.now(UTC),
                    query=dict(request.query_params),
                )
            except WebhookRejected as exc:
                return Response({"reason": exc.reason}, status_code=401)
            self.accepted.append(
                StoredWebhook(
                    vendor=VENDOR,
                    connection_id="con_test",
                    tenant_id="ten_test",
                    event_id=receipt.event_id,
                    event_type=receipt.event_type,
                    received_at=datetime.now(UTC),
                    headers={k: v for k, v in headers.items() if k != "x-journeyhub-token"},
                    body=body,
                )
            )
            return Response({"event_id": receipt.event_id, "event_type": receipt.event_type})

        self.server = SandboxServer(Litestar([receive]))

    @property
    def url(self) -> str:
        return f"{self.server.url}/webhooks/{VENDOR}/con_test"


@pytest.fixture
def gateway(
    registry: PluginRegistry, connection: Connection, credentials: dict[str, str]
) -> Iterator[GatewayStub]:
    stub = GatewayStub(registry, connection, credentials)
    with stub.server:
        yield stub
