"""Google Calendar passes the kernel's connector contract: push, pull (sync tokens) and watch
notifications, with OAuth2 refreshed through ``journeyhub_authenticate`` as the workers do."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from journeyhub.model import Connection
from journeyhub.testing.contract import ConnectorContract, WebhookRequest

CHANNEL_TOKEN = "chan-token-contract-0123456789"


def notification(token: str) -> WebhookRequest:
    """A watch notification: headers only, authenticated by the channel's token."""
    return WebhookRequest(
        b"",
        {
            "x-goog-channel-id": "jh-contract-channel",
            "x-goog-channel-token": token,
            "x-goog-channel-expiration": "Tue, 19 Nov 2030 01:13:52 GMT",
            "x-goog-resource-id": "ret08u3rv24htgh004g",
            "x-goog-resource-state": "exists",
            "x-goog-message-number": "7",
        },
    )


class TestGcalContract(ConnectorContract):
    vendor = "gcal"
    bad_config = {
        "api_base": "www.googleapis.com/calendar/v3",
        "time_zone": "Mars/Olympus_Mons",
        "status_failed": "deleted",
        "page_size": 5000,
        "step_title_template": "{{ unclosed",
    }
    bad_credentials = {"refresh_token": "  ", "channel_token": "too-short"}
    pull_seed_count = 7

    # ``sandbox`` (Google's token endpoint and one calendar, reset per test) comes from conftest.

    def make_connection(self, sandbox: Any) -> Connection:
        return self.connection(sandbox.config(page_size=3))

    def make_credentials(self, sandbox: Any) -> dict[str, Any]:
        return sandbox.credentials(channel_token=CHANNEL_TOKEN)  # no access token yet

    def refused_credentials(self, sandbox: Any) -> dict[str, Any]:
        return sandbox.credentials(
            refresh_token="1//revoked-refresh-token-0123",
            access_token="ya29.revoked-access-token-0123",
            expires_at=4102444800.0,
            channel_token=CHANNEL_TOKEN,
        )

    def count_effects(self, sandbox: Any) -> int:
        return len(sandbox.events())  # events in the calendar

    def signed_webhook(self, sandbox: Any, credentials: dict[str, Any]) -> WebhookRequest:
        return notification(credentials["channel_token"])

    def unsigned_webhook(self, sandbox: Any, credentials: dict[str, Any]) -> WebhookRequest:
        return notification("chan-token-guessed-0123456789")

    def seed_for_pull(self, sandbox: Any, count: int) -> list[str]:
        day = date(2026, 5, 1) + timedelta(days=len(sandbox.events()))
        return [
            sandbox.user_add(
                summary=f"Shoot {n}",
                start={"date": str(day + timedelta(n))},
                end={"date": str(day + timedelta(n + 1))},
            )["id"]
            for n in range(count)
        ]
