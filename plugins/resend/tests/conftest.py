"""Fixtures: one Resend sandbox over real HTTP for the session (reset before each test), the
kernel's ``VendorHttp`` the hooks are given (``http``), a gateway stand-in that verifies
webhooks with the plugin's hook and a plain client posting to it as Resend's sender
(``webhook_sender``), and event/task factories that build ``task.mapped`` with the kernel's own
mapping engine, as the push worker does."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import pytest_asyncio
from journeyhub.errors import WebhookRejected
from journeyhub.mapping import apply_mappings, merge_defaults
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
from journeyhub.signing import new_secret
from journeyhub.testing.sandbox import SandboxServer
from journeyhub.vendor_http import VendorHttp
from journeyhub_resend import plugin
from journeyhub_resend.sandbox import ResendSandbox
from litestar import Litestar, Request, Response, post

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
                "text": "Dear {{ client.first_name }}, see you on {{ wedding.date | date('%d/%m/%Y') }}.",
            },
            "reminder": {
                "subject": "{{ step.name }} for {{ client.first_name }}",
                "html": "<p>{{ data.note }}</p>",
            },
            "typo": {"subject": "Hi", "html": "<p>{{ client.frist_name }}</p>"},
        },
        **overrides,
    }


@pytest.fixture
def make() -> SimpleNamespace:
    """The factories, for tests that need another config or connection."""
    return SimpleNamespace(config=config, event=make_event, task=make_task)


@pytest.fixture(scope="session")
def _sandbox() -> Iterator[ResendSandbox]:
    with ResendSandbox(rate_limit=1000) as sandbox:
        yield sandbox


@pytest.fixture
def sandbox(_sandbox: ResendSandbox) -> ResendSandbox:
    _sandbox.reset()
    _sandbox.rate_limit, _sandbox.per_seconds = 1000, 1.0
    return _sandbox


@pytest_asyncio.fixture
async def http() -> AsyncIterator[VendorHttp]:
    async with VendorHttp(timeout=10) as client:
        yield client


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


def make_task(event: JourneyEvent, connection: Connection, task_id: str = "dt_1") -> DeliveryTask:
    info = plugin.journeyhub_connector()
    mappings = merge_defaults(info.default_field_mappings, connection.field_mappings)
    return DeliveryTask(
        id=task_id,
        tenant_id=connection.tenant_id,
        connection_id=connection.id,
        vendor="resend",
        kind="event",
        order_key=event.client.id,
        sequence=1,
        event=event,
        mapped=apply_mappings(mappings, event),
    )


@pytest.fixture
def task_for(connection: Connection) -> Callable[..., DeliveryTask]:
    def build(task_id: str = "dt_1", **event_args: Any) -> DeliveryTask:
        return make_task(make_event(**event_args), connection, task_id)

    return build


class Receiver:
    """Stands in for the kernel's gateway: verifies with the plugin's hook, stores the rest."""

    def __init__(self, connection: Connection, credentials: dict[str, Any]) -> None:
        self.connection = connection
        self.credentials = credentials
        self.stored: list[StoredWebhook] = []

        @post("/webhooks/resend/con_test", status_code=200)
        async def receive(request: Request[Any, Any, Any]) -> Response[Any]:
            headers = {k.lower(): v for k, v in request.headers.items()}
            body = await request.body()
            try:
                receipt = plugin.journeyhub_verify_webhook(
                    connection=self.connection,
                    credentials=self.credentials,
                    headers=headers,
                    body=body,
                    now=datetime.now(UTC),
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
    gw = Receiver(placeholder, {})
    gw.server.start()
    yield gw
    gw.server.stop()


@pytest.fixture
def receiver(_receiver: Receiver, connection: Connection, credentials: dict[str, Any]) -> Receiver:
    _receiver.connection, _receiver.credentials = connection, credentials
    _receiver.stored.clear()
    return _receiver
