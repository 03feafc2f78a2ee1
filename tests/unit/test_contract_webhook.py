"""The built-in ``webhook`` connector passes the connector contract. Its "vendor" is a journey
engine's webhook endpoint: a small receiver that checks Standard Webhooks signatures with the
``standardwebhooks`` library and, as the spec asks of receivers, acts once per ``webhook-id``."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from journeyhub.model import Connection
from journeyhub.signing import new_secret
from journeyhub.testing.contract import ConnectorContract, WebhookRequest
from journeyhub.testing.sandbox import Faults, SandboxServer
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
