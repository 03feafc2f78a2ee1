"""Fixtures for the Stripe connector tests: a fresh Stripe sandbox per test, connections
pointed at it, and a stand-in for the gateway that verifies webhooks over real HTTP the way
the gateway calls the plugin, with a plain client posting to it as Stripe's sender
(``webhook_sender``). ``http``, ``call`` and ``registry`` come from
``journeyhub.testing.connector``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import pytest_asyncio
from journeyhub.errors import WebhookRejected
from journeyhub.model import Connection, StoredWebhook
from journeyhub.testing.sandbox import SandboxServer
from journeyhub_stripe import plugin
from journeyhub_stripe.sandbox import StripeSandbox
from litestar import Litestar, Request, Response, post

API_KEY = "sk_test_51JhubTESTkey0000000000000000Zq9x"
SECRET = "whsec_currentSecret0123456789abcdefABCDEF"
OLD_SECRET = "whsec_previousSecret0123456789abcdefABCD"


@pytest.fixture(scope="session")
def connector_vendor() -> str:
    return "stripe"


@pytest.fixture
def sandbox() -> Iterator[StripeSandbox]:
    with StripeSandbox(api_key=API_KEY) as running:
        yield running


@pytest_asyncio.fixture
async def webhook_sender() -> AsyncIterator[httpx.AsyncClient]:
    """Stripe's side of a webhook: a plain client, as the gateway's callers use."""
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


def connection(api_base: str = "https://api.stripe.com", **config: Any) -> Connection:
    return Connection(
        id="con_test",
        tenant_id="ten_test",
        vendor="stripe",
        name="t",
        config={"api_base": api_base, **config},
    )


def credentials(**overrides: Any) -> dict[str, Any]:
    return {"webhook_secret": SECRET, "api_key": API_KEY, **overrides}


def stored(body: bytes, event_id: str = "evt_x", event_type: str | None = None) -> StoredWebhook:
    return StoredWebhook(
        vendor="stripe",
        connection_id="con_test",
        tenant_id="ten_test",
        event_id=event_id,
        event_type=event_type,
        received_at=datetime.now(UTC),
        headers={},
        body=body,
    )


class GatewayStub:
    """Answers webhooks like the gateway: 200 with the receipt, or 401 with the reason."""

    def __init__(self, creds: dict[str, Any]) -> None:
        self.credentials = creds
        self.received: list[tuple[dict[str, str], bytes]] = []

        @post("/webhooks/stripe/con_test", status_code=200)
        async def receive(request: Request[Any, Any, Any]) -> Response[Any]:
            body = await request.body()
            headers = {k.lower(): v for k, v in request.headers.items()}
            self.received.append((headers, body))
            try:
                receipt = plugin.journeyhub_verify_webhook(
                    connection=connection(),
                    credentials=self.credentials,
                    headers=headers,
                    body=body,
                    now=datetime.now(UTC),
                )
            except WebhookRejected as exc:
                return Response({"reason": exc.reason}, status_code=401)
            return Response({"event_id": receipt.event_id, "event_type": receipt.event_type})

        self.server = SandboxServer(Litestar([receive]))

    @property
    def url(self) -> str:
        return f"{self.server.url}/webhooks/stripe/con_test"


class Kit:
    """The test constants and builders, handed to tests as the ``kit`` fixture."""

    api_key = API_KEY
    secret = SECRET
    old_secret = OLD_SECRET
    connection = staticmethod(connection)
    credentials = staticmethod(credentials)
    stored = staticmethod(stored)


@pytest.fixture
def kit() -> type[Kit]:
    return Kit


@pytest.fixture
def gateway_stub() -> Iterator[GatewayStub]:
    stub = GatewayStub(credentials(previous_webhook_secrets=[OLD_SECRET]))
    with stub.server:
        yield stub
