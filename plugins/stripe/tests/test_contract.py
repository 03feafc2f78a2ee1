"""Stripe passes the kernel's connector contract (webhooks in, catch-up pull; no push)."""

from __future__ import annotations

import json
from typing import Any

import stripe
from journeyhub.model import Connection
from journeyhub.testing.contract import ConnectorContract, WebhookRequest
from journeyhub_stripe.sandbox import StripeSandbox, payment_intent

WEBHOOK_SECRET = "whsec_contractSecret0123456789abcdefABCDEF"
EVENT = json.dumps(
    {
        "id": "evt_contract1",
        "object": "event",
        "type": "payment_intent.succeeded",
        "data": {"object": payment_intent()},
    }
).encode()


class TestStripeContract(ConnectorContract):
    vendor = "stripe"
    bad_config = {"api_base": "ftp://api.stripe.com", "tolerance_seconds": 0}
    bad_credentials = {
        "webhook_secret": "not-a-signing-secret",
        "api_key": "pk_live_publishableKeyIsNotSecret",
        "previous_webhook_secrets": ["sk_live_notAWebhookSecret00"],
    }
    pull_seed_count = 150  # Stripe pages by 100

    # ``sandbox`` (a fresh Stripe account per test, with conftest's API key) comes from conftest.

    def make_connection(self, sandbox: Any) -> Connection:
        return self.connection({"api_base": sandbox.url})

    def make_credentials(self, sandbox: Any) -> dict[str, Any]:
        return {"webhook_secret": WEBHOOK_SECRET, "api_key": sandbox.api_key}

    def refused_credentials(self, sandbox: Any) -> dict[str, Any]:
        return {"webhook_secret": WEBHOOK_SECRET, "api_key": "rk_test_revokedRestrictedKey42"}

    def sign_webhook(
        self, sandbox: Any, credentials: dict[str, Any], body: bytes
    ) -> WebhookRequest:
        secret = credentials["webhook_secret"]
        try:
            header = stripe.WebhookSignature.generate_signature_header(body.decode(), secret)
        except UnicodeDecodeError:  # stripe-python signs text only: the sandbox signs bytes
            header = StripeSandbox.signature_header(body, [secret])
        return WebhookRequest(
            body, {"stripe-signature": header, "content-type": "application/json"}
        )

    def signed_webhook(self, sandbox: Any, credentials: dict[str, Any]) -> WebhookRequest:
        return self.sign_webhook(sandbox, credentials, EVENT)

    def unsigned_webhook(self, sandbox: Any, credentials: dict[str, Any]) -> WebhookRequest:
        return self.sign_webhook(sandbox, {"webhook_secret": "whsec_someoneElses0123456789"}, EVENT)

    def seed_for_pull(self, sandbox: Any, count: int) -> list[str]:
        return [
            sandbox.emit("payment_intent.succeeded", payment_intent())["id"] for _ in range(count)
        ]
