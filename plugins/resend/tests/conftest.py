"""Fixtures: one Resend sandbox over real HTTP for the session (reset before each test), a
gateway stand-in that verifies webhooks with the plugin's hook through the kernel's registry and
a plain client posting to it as Resend's sender (``webhook_sender``), and event/task builders.
``registry``, ``http`` and ``new_task`` (``task.mapped`` built with the kernel's own mapping
engine, as the push worker does) come from ``journeyhub.testing.connector``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import pytest_asyncio
from journeyhub.errors import WebhookRejected
from journeyhub.model import (
    Client,
    Connection,
    DeliveryTask,
    JourneyEvent,
    Step,
    StoredWebhook,
    Venue,
    Wedding,
)
from journeyhub.plugins import PluginRegistry
from journeyhub.signing import new_secret
from journeyhub.testing.connector import registry_for
from journeyhub.testing.sandbox import SandboxServer
from journeyhub_resend.sandbox import ResendSandbox, signed_event
from litestar import Litestar, Request, Response, post
from svix.webhooks import Webhook

WELCOME_HTML = (
    '<div style="border-top: 4px solid {{ vendor.accent_color }}">'
    '<img src="{{ vendor.logo_url }}" alt="{{ vendor.vendor_name }}">'
    "<p>Dear {{ client.first_name }},</p>"
    "<p>{{ couple }}: we cannot wait for {{ wedding.date_long }} at {{ wedding.venue.name }}"
    " ({{ wedding.venue.address }}), {{ wedding.guest_count }} guests.</p>"
    "<p>{{ vendor.signature }}</p></div>"
)


def config(url: str, **overrides: Any) -> dict[str, Any]:
    return {
        "api_base": url,
        "from_address": "Lumiere Photography <hello@example.com>",
        "reply_to": "studio@example.com",
        "branding": {
            "vendor_name": "Lumiere Photography",
            "logo_url": "https://cdn.example.com/lumiere.png",
            "accent_color": "#b08d57",
            "signature": "Claire, Lumiere Photography",
        },
        "templates": {
            "welcome": {
                "subject": "Welcome, {{ couple }}!",
                "html": WELCOME_HTML,
                "text": "Dear {{ client.first_name }}, see you on "
                "{{ wedding.date | date('%d/%m/%Y') }}.",
            },
            "reminder": {
                "subject": "{{ step.name }} for {{ client.first_name }}",
                "html": "<p>{{ data.note }}</p>",
            },
            "typo": {"subject": "Hi", "html": "<p>{{ client.frist_name }}</p>"},
        },
        **overrides,
    }


@pytest.fixture(scope="session")
def connector_vendor() -> str:
    return "resend"


@pytest.fixture
def make(new_task: Callable[..., DeliveryTask]) -> SimpleNamespace:
    """The factories, for tests that need another config or connection:
    ``task(event, connection, task_id)``."""
    return SimpleNamespace(config=config, event=make_event, task=new_task)


def svix_signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """``svix-signature`` as the official ``svix`` package computes it (it signs text)."""
    moment = datetime.fromtimestamp(timestamp, tz=UTC)
    return Webhook(secret).sign(msg_id, moment, body.decode())


def signed(event: dict[str, Any], secret: str, **options: Any) -> tuple[bytes, dict[str, str]]:
    """The body and headers Resend sends for ``event``, signed with ``svix``."""
    return signed_event(event, secret, svix_signature, **options)


@pytest.fixture(scope="session")
def _sandbox() -> Iterator[ResendSandbox]:
    with ResendSandbox(rate_limit=1000) as sandbox:
        sandbox.signer = svix_signature  # webhooks signed by the official package
        yield sandbox


@pytest.fixture
def sandbox(_sandbox: ResendSandbox) -> ResendSandbox:
    _sandbox.reset()
    _sandbox.rate_limit, _sandbox.per_seconds = 1000, 1.0
    return _sandbox


@pytest_asyncio.fixture
async def webhook_sender() -> AsyncIterator[httpx.AsyncClient]:
    """Resend's (Svix's) side of a webhook: a plain client, as the gateway's callers use."""
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


@pytest.fixture
def secret() -> str:
    return new_secret()


@pytest.fixture
def connection(sandbox: ResendSandbox) -> Connection:
    return Connection(
        id="con_test", tenant_id="ten_test", vendor="resend", name="t", config=config(sandbox.url)
    )


@pytest.fixture
def credentials(sandbox: ResendSandbox, secret: str) -> dict[str, Any]:
    return {"api_key": sandbox.api_key, "webhook_secret": secret}


def make_event(
    *,
    event_id: str = "evt_1",
    type: str = "email_requested",
    client_id: str = "cli_1",
    email: str | None = "anna@client.test",
    name: str | None = "Anna Smith",
    data: dict[str, Any] | None = None,
    step: Step | None = None,
) -> JourneyEvent:
    return JourneyEvent(
        id=event_id,
        type=type,  # type: ignore[arg-type]
        occurred_at=datetime(2026, 1, 10, 9, 0, tzinfo=UTC),
        journey_instance_id="ji_1",
        journey_name="Wedding journey",
        client=Client(id=client_id, name=name, email=email),
        wedding=Wedding(
            date="2026-06-06",
            venue=Venue(name="Chateau de Vaux", address="77950 Maincy, France"),
            guest_count=120,
        ),
        step=step,
        data={"template": "welcome", "couple": "Anna & Ben"} if data is None else data,
    )


@pytest.fixture
def task_for(
    connection: Connection, new_task: Callable[..., DeliveryTask]
) -> Callable[..., DeliveryTask]:
    def build(task_id: str = "dt_1", **event_args: Any) -> DeliveryTask:
        return new_task(make_event(**event_args), connection, task_id)

    return build


class Receiver:
    """Stands in for the kernel's gateway: verifies with the plugin's hook, stores the rest."""

    def __init__(
        self, registry: PluginRegistry, connection: Connection, credentials: dict[str, Any]
    ) -> None:
        self.connection = connection
        self.credentials = credentials
        self.stored: list[StoredWebhook] = []

        @post("/webhooks/resend/con_test", status_code=200)
        async def receive(request: Request[Any, Any, Any]) -> Response[Any]:
            headers = {k.lower(): v for k, v in request.headers.items()}
            body = await request.body()
            try:
                receipt = await registry.call(
                    "resend",
                    "journeyhub_verify_webhook",
                    connection=self.connection,
                    credentials=self.credentials,
                    headers=headers,
                    body=body,
                    now=datetime.now(UTC),
                    query=dict(request.query_params),
                )
            except WebhookRejected as exc:
                return Response({"error": exc.reason}, status_code=401)
            self.stored.append(
                StoredWebhook(
                    vendor="resend",
                    connection_id="con_test",
                    tenant_id="ten_test",
                    event_id=receipt.event_id,
                    event_type=receipt.event_type,
                    received_at=datetime.now(UTC),
                    headers=headers,
                    body=body,
                )
            )
            return Response({"event_id": receipt.event_id}, status_code=200)

        self.server = SandboxServer(Litestar([receive], openapi_config=None))

    @property
    def url(self) -> str:
        return f"{self.server.url}/webhooks/resend/con_test"


@pytest.fixture(scope="session")
def _receiver() -> Iterator[Receiver]:
    placeholder = Connection(id="con_test", tenant_id="ten_test", vendor="resend", name="t")
    gw = Receiver(registry_for("resend"), placeholder, {})
    gw.server.start()
    yield gw
    gw.server.stop()


@pytest.fixture
def receiver(_receiver: Receiver, connection: Connection, credentials: dict[str, Any]) -> Receiver:
    _receiver.connection, _receiver.credentials = connection, credentials
    _receiver.stored.clear()
    return _receiver
