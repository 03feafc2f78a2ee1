"""HoneyBook passes the kernel's connector contract: actions out to the user's Zaps, the Zaps'
POSTs in, all through the Zapier bridge and the fake Zapier sandbox."""

from __future__ import annotations

from typing import Any

import msgspec
from journeyhub.model import Connection
from journeyhub.testing.contract import ConnectorContract, WebhookRequest
from journeyhub_honeybook.sandbox import HoneyBookSandbox


def zap_post(token: str) -> WebhookRequest:
    """What a "New Payment Paid → Webhooks by Zapier POST" step sends, token in the header."""
    body = msgspec.json.encode(HoneyBookSandbox.payment_paid())
    headers = {
        "content-type": "application/json",
        "user-agent": "Zapier",
        "x-journeyhub-token": token,
    }
    return WebhookRequest(body, headers)


class TestHoneyBookContract(ConnectorContract):
    vendor = "honeybook"
    bad_config = {
        "catch_hook_urls": {"create_invoice": "https://hooks.zapier.com/hooks/catch/1/abc/"},
        "currency": "dollars",
        "timeout_seconds": 0,
    }
    bad_credentials = {"secret": "whsec_dG9vc2hvcnQ="}  # a valid secret, but too short

    # ``sandbox`` (the user's fake Zaps, reset per test) comes from conftest.py.

    def make_connection(self, sandbox: Any) -> Connection:
        return self.connection(sandbox.config())

    def make_credentials(self, sandbox: Any) -> dict[str, Any]:
        return {"secret": sandbox.secret, "token": sandbox.token}

    def count_effects(self, sandbox: Any) -> int:
        return len(sandbox.actions)  # envelopes the Zaps acted on

    def signed_webhook(self, sandbox: Any, credentials: dict[str, Any]) -> WebhookRequest:
        return zap_post(credentials["token"])

    def unsigned_webhook(self, sandbox: Any, credentials: dict[str, Any]) -> WebhookRequest:
        return zap_post("whsec_" + "Z3Vlc3NlZC1ieS1hLXN0cmFuZ2VyLTAx")
