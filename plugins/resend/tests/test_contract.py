"""Resend passes the kernel's connector contract (emails out, Svix-signed webhooks in)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from types import SimpleNamespace
from typing import Any

import pytest
from journeyhub.model import Connection, DeliveryTask
from journeyhub.signing import new_secret
from journeyhub.testing.contract import ConnectorContract, WebhookRequest

WEBHOOK_SECRET = new_secret()
EVENT = {
    "type": "email.delivered",
    "created_at": "2026-03-01T12:00:05.000Z",
    "data": {
        "email_id": "4ef9a417-02e9-4d39-ad75-9611e0fcc33c",
        "to": ["anna@client.test"],
        "from": "hello@example.com",
        "subject": "Welcome",
        "tags": {"client_id": "cli_1"},
    },
}


def sign(sandbox: Any, secret: str, msg_id: str, body: bytes) -> dict[str, str]:
    """Svix headers for any bytes: the official ``svix`` package's signature where the body is
    text (it signs text only), else an HMAC by hand (junk that Resend never sends)."""
    timestamp = int(time.time())
    try:
        signature = sandbox.signer(secret, msg_id, timestamp, body)
    except UnicodeDecodeError:
        key = base64.b64decode(secret.removeprefix("whsec_"))
        mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
        signature = "v1," + base64.b64encode(mac).decode()
    return {"svix-id": msg_id, "svix-timestamp": str(timestamp), "svix-signature": signature}


class TestResendContract(ConnectorContract):
    vendor = "resend"
    bad_config = {
        "from_address": "not an address",
        "api_base": "api.resend.com",
        "timeout_seconds": -1,
        "templates": {"welcome": {"subject": "{{ oops", "html": "<p></p>"}},
    }
    bad_credentials = {"api_key": "sk_live_notAResendKey0", "webhook_secret": "whsec_!!!"}

    # ``sandbox`` (one Resend account, reset per test) and ``make`` (config, event and task
    # builders) come from conftest.py.

    @pytest.fixture(autouse=True)
    def _builders(self, make: SimpleNamespace) -> None:
        self.make = make

    def make_connection(self, sandbox: Any) -> Connection:
        return self.connection(self.make.config(sandbox.url))

    def make_credentials(self, sandbox: Any) -> dict[str, Any]:
        return {"api_key": sandbox.api_key, "webhook_secret": WEBHOOK_SECRET}

    def refused_credentials(self, sandbox: Any) -> dict[str, Any]:
        return {"api_key": "re_revoked_0123456789abcdef", "webhook_secret": WEBHOOK_SECRET}

    def sample_task(self, sandbox: Any, connection: Connection, n: int) -> DeliveryTask:
        event = self.make.event(
            event_id=f"evt_{n}", client_id=f"cli_{n}", email=f"c{n}@client.test"
        )
        return self.make.task(event, connection, f"dt_{n}")

    def count_effects(self, sandbox: Any) -> int:
        return len(sandbox.emails)  # emails Resend accepted

    def sign_webhook(
        self, sandbox: Any, credentials: dict[str, Any], body: bytes
    ) -> WebhookRequest:
        headers = sign(sandbox, credentials["webhook_secret"], "msg_1", body)
        return WebhookRequest(body, {"content-type": "application/json", **headers})

    def signed_webhook(self, sandbox: Any, credentials: dict[str, Any]) -> WebhookRequest:
        body, headers = sandbox.signed(EVENT, credentials["webhook_secret"], msg_id="msg_1")
        return WebhookRequest(body, headers)

    def unsigned_webhook(self, sandbox: Any, credentials: dict[str, Any]) -> WebhookRequest:
        body, headers = sandbox.signed(EVENT, new_secret(), msg_id="msg_1")
        return WebhookRequest(body, headers)
