"""Tave (VSCO Workspace) passes the kernel's connector contract: push, pull and REST hooks."""

from __future__ import annotations

from typing import Any

import msgspec
from journeyhub.model import Connection
from journeyhub.testing.contract import ConnectorContract, WebhookRequest

WEBHOOK_TOKEN = "tok_contract_0123456789abcdef"
PING = msgspec.json.encode({"targetId": "01contact", "event": "contact.created"})


class TestTaveContract(ConnectorContract):
    vendor = "tave"
    bad_config = {
        "api_base": "workspace.vsco.co/api/v2",
        "external_service": "Not A Slug!",
        "page_size": 5,
        "timeout_seconds": 0,
    }
    bad_credentials = {"api_key": "   ", "webhook_token": "short-token"}
    pull_seed_count = 25

    # ``sandbox`` (one VSCO Workspace studio, reset per test) comes from conftest.py.

    def make_connection(self, sandbox: Any) -> Connection:
        return self.connection({"api_base": sandbox.api_base, "page_size": 10})

    def make_credentials(self, sandbox: Any) -> dict[str, Any]:
        return {"api_key": sandbox.api_key, "webhook_token": WEBHOOK_TOKEN}

    def refused_credentials(self, sandbox: Any) -> dict[str, Any]:
        return {"api_key": "tave-revoked-key-0123", "webhook_token": WEBHOOK_TOKEN}

    def count_effects(self, sandbox: Any) -> int:
        return sum(
            len(records)
            for records in (sandbox.contacts, sandbox.jobs, sandbox.notes, sandbox.job_contacts)
        )

    def signed_webhook(self, sandbox: Any, credentials: dict[str, Any]) -> WebhookRequest:
        # REST hooks are unsigned pings: the token in the hook URL is the proof.
        return WebhookRequest(
            PING, {"content-type": "application/json"}, {"token": credentials["webhook_token"]}
        )

    def unsigned_webhook(self, sandbox: Any, credentials: dict[str, Any]) -> WebhookRequest:
        return WebhookRequest(
            PING, {"content-type": "application/json"}, {"token": "tok_guessed_0123456789abcdef"}
        )

    def seed_for_pull(self, sandbox: Any, count: int) -> list[str]:
        sandbox.freeze(sandbox.now())  # then each record one second newer than the last
        made = []
        for n in range(count):
            sandbox.advance(1)
            made.append(
                sandbox.vendor_create(
                    "address-book",
                    kind="person",
                    firstName=f"C{n}",
                    lastName="Seed",
                    email=f"c{n}@example.com",
                )["id"]
            )
        return made
