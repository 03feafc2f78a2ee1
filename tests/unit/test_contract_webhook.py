"""The built-in ``webhook`` connector passes the connector contract. Its "vendor" is a journey
engine's webhook endpoint: a small receiver that checks Standard Webhooks signatures with the
``standardwebhooks`` library and, as the spec asks of receivers, acts once per ``webhook-id``.
Below the contract: the payload's shape, token mode, 410 Gone and the timeout."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest
from journeyhub.connectors import webhook, zapier
from journeyhub.connectors.webhook import VENDOR
from journeyhub.errors import EndpointGone, PermanentError, WebhookRejected
from journeyhub.model import Connection, DeliveryTask, PushResult, Trigger
from journeyhub.signing import new_secret, new_token
from journeyhub.testing.contract import ConnectorContract, WebhookRequest
from journeyhub.testing.sandbox import Fault, Faults, SandboxServer
from journeyhub.vendor_http import VendorHttp
from litestar import Litestar, Request, Response, post
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

SECRET = new_secret()
TRIGGER = json.dumps(
    {
        "id": "trg_contract_1",
        "type": "payment_received",
        "client_email": "ada@example.com",
        "data": {"amount": 150000},
    }
).encode()


def sign(secret: str, msg_id: str, body: bytes) -> dict[str, str]:
    """Standard Webhooks headers for any bytes, computed here (the library signs text only)."""
    timestamp = str(int(time.time()))
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": timestamp,
        "webhook-signature": "v1," + base64.b64encode(mac).decode(),
    }


class JourneyEngine:
    """The receiving end of the connector's pushes, served over HTTP."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.faults = Faults()
        self.messages: dict[str, Any] = {}  # webhook-id -> payload, the first delivery of each
        self.rejected = 0
        self._lock = threading.Lock()

        @post("/hooks/journeyhub", status_code=200)
        async def receive(request: Request[Any, Any, Any]) -> Response[Any]:
            if (fault := await self.faults.apply()) is not None:
                return fault
            body = await request.body()
            try:
                Webhook(self.secret).verify(body, dict(request.headers))
            except WebhookVerificationError:
                with self._lock:
                    self.rejected += 1
                return Response({"error": "bad signature"}, status_code=401)
            with self._lock:
                self.messages.setdefault(request.headers["webhook-id"], json.loads(body))
            return Response({"received": True})

        self.server = SandboxServer(Litestar([receive], openapi_config=None))

    @property
    def url(self) -> str:
        return f"{self.server.url}/hooks/journeyhub"

    def reset(self) -> None:
        with self._lock:
            self.messages.clear()
            self.rejected = 0
        self.faults.clear()


@pytest.fixture(scope="module")
def engine() -> Iterator[JourneyEngine]:
    running = JourneyEngine(SECRET)
    with running.server:
        yield running


def inbound(secret: str, body: bytes = TRIGGER) -> WebhookRequest:
    """A trigger posted to journeyhub, signed per Standard Webhooks with ``secret``."""
    headers = sign(secret, "msg_contract_1", body)
    return WebhookRequest(body, {"content-type": "application/json", **headers})


class TestWebhookContract(ConnectorContract):
    vendor = "webhook"
    bad_config = {"url": "ftp://engine.example/hooks", "timeout_seconds": 0}
    bad_credentials = {"secret": "whsec_%%%not-base64%%%"}

    @pytest.fixture
    def sandbox(self, engine: JourneyEngine) -> JourneyEngine:
        engine.reset()
        return engine

    def make_connection(self, sandbox: Any) -> Connection:
        return self.connection({"url": sandbox.url, "timeout_seconds": 5})

    def make_credentials(self, sandbox: Any) -> dict[str, Any]:
        return {"secret": SECRET}

    def refused_credentials(self, sandbox: Any) -> dict[str, Any]:
        return {"secret": new_secret()}  # the engine refuses its signatures

    def count_effects(self, sandbox: Any) -> int:
        return len(sandbox.messages)

    def signed_webhook(self, sandbox: Any, credentials: dict[str, Any]) -> WebhookRequest:
        return inbound(credentials["secret"])

    def unsigned_webhook(self, sandbox: Any, credentials: dict[str, Any]) -> WebhookRequest:
        return inbound(new_secret())

    def sign_webhook(
        self, sandbox: Any, credentials: dict[str, Any], body: bytes
    ) -> WebhookRequest:
        return inbound(credentials["secret"], body)


# --- the payload, the token, 410 Gone and the timeout ---------------------------------------------

OCCURRED = datetime(2026, 3, 1, 14, 30, tzinfo=timezone(timedelta(hours=2)))  # 12:30 UTC


def trigger_task() -> DeliveryTask:
    trigger = Trigger(
        id="trg_shape_1",
        type="payment_received",
        tenant_id="ten_contract",
        connection_id="con_contract",
        vendor="stripe",
        occurred_at=OCCURRED,
        source_event_id="evt_shape_1",
        client_id="cl_shape",
        data={"amount": 150000, "currency": "gbp"},
    )
    return DeliveryTask(
        id="dlv_trg_shape_1",
        tenant_id="ten_contract",
        connection_id="con_contract",
        vendor=VENDOR,
        kind="trigger",
        order_key="cl_shape",
        sequence=1,
        trigger=trigger,
    )


async def push_to(url: str, task: DeliveryTask, credentials: dict[str, Any]) -> PushResult:
    connection = TestWebhookContract().connection({"url": url})
    async with VendorHttp(timeout=10) as http:
        return await webhook.journeyhub_push(
            task=task,
            connection=connection,
            credentials=credentials,
            idempotency_key=task.idempotency_key,
            http=http,
        )


@pytest.mark.asyncio
async def test_a_trigger_goes_out_as_a_standard_webhooks_payload(engine: JourneyEngine) -> None:
    """``{type, timestamp, data}`` (plus ``kind``), the trigger whole as ``data``; the engine
    verifies the signature with the official ``standardwebhooks`` package over HTTP."""
    engine.reset()
    task = trigger_task()
    result = await push_to(engine.url, task, {"secret": SECRET})
    assert result.vendor_status == 200 and engine.rejected == 0
    assert task.trigger is not None
    assert engine.messages[task.id] == {
        "type": "payment_received",
        "timestamp": "2026-03-01T12:30:00Z",  # RFC 3339, in UTC
        "kind": "trigger",
        "data": msgspec.to_builtins(task.trigger),
    }


@pytest.mark.asyncio
async def test_a_journey_event_goes_out_the_same_way(engine: JourneyEngine) -> None:
    engine.reset()
    contract = TestWebhookContract()
    connection = contract.make_connection(engine)
    journey_event = contract.journey_event(7, type="client_updated")
    task = contract.task_for(connection, journey_event)
    await push_to(engine.url, task, {"secret": SECRET})
    payload = engine.messages[task.id]
    assert payload["type"] == "client_updated" and payload["kind"] == "event"
    assert payload["timestamp"] == "2026-03-01T12:00:00Z"
    assert payload["data"] == msgspec.to_builtins(journey_event)


@pytest.mark.asyncio
async def test_410_gone_is_endpoint_gone_and_other_4xx_are_not(engine: JourneyEngine) -> None:
    """410 means the receiver wants no more: ``EndpointGone``, which the kernel acts on."""
    engine.reset()
    engine.faults.plan(Fault(status=410))
    with pytest.raises(EndpointGone) as gone:
        await push_to(engine.url, trigger_task(), {"secret": SECRET})
    assert gone.value.vendor_status == 410 and not gone.value.retryable
    engine.faults.plan(Fault(status=404))
    with pytest.raises(PermanentError) as missing:
        await push_to(engine.url, trigger_task(), {"secret": SECRET})
    assert not isinstance(missing.value, EndpointGone)


@pytest.mark.asyncio
async def test_a_zapier_catch_hook_that_is_gone_is_endpoint_gone_without_its_url_token(
    engine: JourneyEngine,
) -> None:
    engine.reset()
    engine.faults.plan(Fault(status=410))
    with pytest.raises(EndpointGone) as gone:
        async with VendorHttp(timeout=10) as http:
            await zapier.send_action(http, engine.url, SECRET, "msg_1", "create_client", {}, 5)
    assert "410" in gone.value.message and "journeyhub/" not in gone.value.message


def test_the_default_timeout_is_in_the_specs_15_to_30_seconds() -> None:
    assert webhook.WebhookConfig().timeout_seconds == 15.0
    assert webhook.WebhookConfig(timeout_seconds=60).timeout_seconds == 60
    with pytest.raises(ValueError):
        webhook.WebhookConfig(timeout_seconds=61)


TOKEN = new_token()


@pytest.mark.parametrize(
    "schema", [webhook.WebhookCredentials, zapier.ZapierCredentials], ids=["webhook", "zapier"]
)
def test_a_token_is_a_value_of_its_own_never_the_signing_secret(schema: type) -> None:
    assert msgspec.convert({"secret": SECRET, "token": TOKEN}, schema).token == TOKEN
    key = SECRET.removeprefix("whsec_")
    for bad in (SECRET, key, f"x{key}x", "short", TOKEN + "?"):
        with pytest.raises(msgspec.ValidationError) as refused:
            msgspec.convert({"secret": SECRET, "token": bad}, schema)
        assert SECRET not in str(refused.value) and key not in str(refused.value)


def verify_webhook(
    credentials: dict[str, Any], headers: dict[str, str], query: dict[str, str] | None = None
) -> Any:
    return webhook.journeyhub_verify_webhook(
        connection=TestWebhookContract().connection({}),
        credentials=credentials,
        headers=headers,
        body=TRIGGER,
        now=datetime.now(UTC),
        query=query or {},
    )


def test_token_mode_takes_the_token_and_refuses_the_signing_secret() -> None:
    creds = {"secret": SECRET, "token": TOKEN}
    assert verify_webhook(creds, {"x-journeyhub-token": TOKEN}).event_id == "trg_contract_1"
    assert verify_webhook(creds, {}, {"token": TOKEN}).event_type == "payment_received"
    assert verify_webhook(creds, sign(SECRET, "msg_1", TRIGGER)).event_id == "trg_contract_1"
    for presented in (SECRET, SECRET.removeprefix("whsec_")):
        with pytest.raises(WebhookRejected) as refused:
            verify_webhook(creds, {"x-journeyhub-token": presented})
        assert refused.value.reason == "bad_token" and SECRET not in str(refused.value)
    # A connection without a token takes signatures only: its secret is no token either.
    with pytest.raises(WebhookRejected) as refused:
        verify_webhook({"secret": SECRET}, {}, {"token": SECRET})
    assert refused.value.reason == "bad_token"
    assert verify_webhook({"secret": SECRET}, sign(SECRET, "msg_2", TRIGGER)).event_id


ZAP_BODY = json.dumps({"trigger": "payment_paid", "id": "pay_1"}).encode()
ZAP_JSON = {"content-type": "application/json"}


def test_a_zap_sends_the_token_and_the_secret_is_refused_once_there_is_one() -> None:
    creds = {"secret": SECRET, "token": TOKEN}
    by_header = zapier.verify_zapier(creds, {**ZAP_JSON, "x-journeyhub-token": TOKEN}, {}, ZAP_BODY)
    by_query = zapier.verify_zapier(creds, ZAP_JSON, {"token": TOKEN}, ZAP_BODY)
    assert by_header.event_id == by_query.event_id == "payment_paid:pay_1"
    with pytest.raises(WebhookRejected) as refused:
        zapier.verify_zapier(creds, {**ZAP_JSON, "x-journeyhub-token": SECRET}, {}, ZAP_BODY)
    assert refused.value.reason == "bad_token"
    # A connection made before tokens existed: its Zaps were set up with the secret.
    legacy = zapier.verify_zapier({"secret": SECRET}, ZAP_JSON, {"token": SECRET}, ZAP_BODY)
    assert legacy.event_id == "payment_paid:pay_1"
