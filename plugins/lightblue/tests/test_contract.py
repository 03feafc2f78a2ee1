"""Light Blue passes the kernel's connector contract (push only: its API is inbound)."""

from __future__ import annotations

from typing import Any

from journeyhub.model import Connection
from journeyhub.testing.contract import ConnectorContract


class TestLightBlueContract(ConnectorContract):
    vendor = "lightblue"
    bad_config = {
        "api_url": "http://online.lightbluesoftware.com/api.php",  # plain HTTP to Light Blue
        "source": "two\nlines",
        "timeout_seconds": 0,
    }
    bad_credentials = {"api_key": "has spaces in it"}

    # ``sandbox`` (a Light Blue account, emptied per test) comes from conftest.py.

    def make_connection(self, sandbox: Any) -> Connection:
        return self.connection({"api_url": sandbox.api_url})

    def make_credentials(self, sandbox: Any) -> dict[str, Any]:
        return {"api_key": sandbox.api_key}

    def refused_credentials(self, sandbox: Any) -> dict[str, Any]:
        return {"api_key": "lb-revoked-key-fedcba9876543210"}

    def count_effects(self, sandbox: Any) -> int:
        return len(sandbox.enquiries)  # items in the studio's Inbox
