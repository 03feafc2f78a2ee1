"""17hats passes the kernel's connector contract: contacts out to the user's Zap, the Zaps'
contact POSTs in, all through the Zapier bridge and the fake Zapier sandbox."""

from __future__ import annotations

from typing import Any

import msgspec
from journeyhub.model import Connection
from journeyhub.testing.contract import ConnectorContract, WebhookRequest
from journeyhub_seventeenhats.sandbox import SeventeenHatsSandbox


def zap_post(token: str) -> WebhookRequest:
    """What a "New Contact → Webhooks by Zapier POST" step sends, token in the URL."""
    body = msgspec.json.encode(SeventeenHatsSandbox.new_contact())
    return WebhookRequest(body, {"content-type": "application/json"}, {"token": token})


class TestSeventeenHatsContract(ConnectorContract):
    vendor = "seventeenhats"
    bad_config = {
        "catch_hook_urls": {"upsert_contact": "hooks.zapier.com/hooks/catch/1/abc/"},
        "timeout_seconds": 120,
    }
    bad_credentials = {"secret": "not-a-standard-webhooks-secret"}

    # ``sandbox`` (the user's fake Zap, reset per test) comes from conftest.py.

    def make_connection(self, sandbox: Any) -> Connection:
        return self.connection(sandbox.config())

    def make_credentials(self, sandbox: Any) -> dict[str, Any]:
        return {"secret": sandbox.secret, "token": sandbox.token}

    def count_effects(self, sandbox: Any) -> int:
        return len(sandbox.actions)  # envelopes the Zap acted on

    def signed_webhook(self, sandbox: Any, credentials: dict[str, Any]) -> WebhookRequest:
        return zap_post(credentials["token"])

    def unsigned_webhook(self, sandbox: Any, credentials: dict[str, Any]) -> WebhookRequest:
        return zap_post("whsec_" + "Z3Vlc3NlZC1ieS1hLXN0cmFuZ2VyLTAx")
