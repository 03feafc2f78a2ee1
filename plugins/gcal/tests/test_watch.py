"""Watch channels: notification verification, start/stop/renewal, real delivery; and the
connection check."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from journeyhub.errors import PermanentError, WebhookRejected
from journeyhub.model import StoredWebhook
from journeyhub.testing.sandbox import SandboxServer
from journeyhub_gcal import GcalConfig
from journeyhub_gcal.sync import needs_renewal, renew_watch, start_watch, stop_watch
from litestar import Litestar, Request, post

TOKEN = "chan-token-0123456789abcdef"  # the credentials fixture's channel_token


def headers(**overrides: str) -> dict[str, str]:
    base = {
        "x-goog-channel-id": "jh-abc123",
        "x-goog-channel-token": TOKEN,
        "x-goog-channel-expiration": "Tue, 19 Nov 2030 01:13:52 GMT",
        "x-goog-resource-id": "ret08u3rv24htgh004g",
        "x-goog-resource-state": "exists",
        "x-goog-message-number": "7",
    }
    return {k: v for k, v in {**base, **overrides}.items() if v}


async def verify(registry, connection, credentials, hdrs: dict[str, str]) -> Any:
    return await registry.call(
        "gcal",
        "journeyhub_verify_webhook",
        connection=connection,
        credentials=credentials,
        headers=hdrs,
        body=b"",
        now=datetime.now(UTC),
        query={},
    )


async def test_a_notification_with_the_channel_token_is_accepted(registry, connection, credentials):
    receipt = await verify(registry, connection, credentials, headers())
    assert receipt.event_id == "jh-abc123:7"
    assert receipt.event_type == "exists"
    sync = headers(**{"x-goog-resource-state": "sync", "x-goog-message-number": "1"})
    assert (await verify(registry, connection, credentials, sync)).event_id == "jh-abc123:1"


@pytest.mark.parametrize(
    ("hdrs", "creds", "reason"),
    [
        ({"x-goog-channel-token": "wrong-token-0123456789"}, {}, "bad_token"),
        ({"x-goog-channel-token": ""}, {}, "missing_signature"),
        ({}, {"channel_token": None}, "bad_token"),
        ({"x-goog-channel-token": "\udcff" * 20}, {}, "bad_token"),
        ({"x-goog-resource-state": "add"}, {}, "bad_body"),
        ({"x-goog-message-number": "seven"}, {}, "bad_body"),
        ({"x-goog-channel-id": ""}, {}, "bad_body"),
        ({"x-goog-channel-id": "has spaces!"}, {}, "bad_body"),
    ],
)
async def test_bad_notifications_are_rejected(
    registry, connection, credentials, hdrs, creds, reason
):
    with pytest.raises(WebhookRejected) as caught:
        await verify(registry, connection, {**credentials, **creds}, headers(**hdrs))
    assert caught.value.reason == reason
    assert TOKEN not in str(caught.value)


async def test_a_notification_makes_no_trigger_by_itself(registry, http, connection, credentials):
    for state, expected in (("sync", []), ("exists", []), ("not_exists", []), ("other", None)):
        stored = StoredWebhook(
            vendor="gcal",
            connection_id="con_test",
            tenant_id="ten_test",
            event_id="jh-abc123:7",
            event_type=state,
            received_at=datetime.now(UTC),
            headers={},
            body=b"",
        )
        drafts = await registry.call(
            "gcal",
            "journeyhub_handle_webhook",
            connection=connection,
            credentials=credentials,
            webhook=stored,
            http=http,
        )
        assert drafts == expected


def test_needs_renewal():
    now = datetime(2026, 3, 1, tzinfo=UTC)
    expires = int((now + timedelta(hours=30)).timestamp() * 1000)
    assert not needs_renewal(expires, now, timedelta(hours=24))
    assert needs_renewal(expires, now + timedelta(hours=6), timedelta(hours=24))
    assert needs_renewal(expires, now.timestamp() + 7 * 3600, 86400)  # epoch seconds work too
    assert needs_renewal(None, now, 0)  # unknown expiry: renew


class Receiver:
    """A local HTTP endpoint standing in for the journeyhub gateway."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []

        @post("/webhooks/gcal/con_test", status_code=200)
        async def hook(request: Request[Any, Any, Any]) -> None:
            self.received.append((dict(request.headers), await request.body()))

        self.server = SandboxServer(Litestar(route_handlers=[hook], openapi_config=None))

    @property
    def address(self) -> str:
        return self.server.url + "/webhooks/gcal/con_test"


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    with found.server:
        yield found


def config_of(sandbox) -> GcalConfig:
    return GcalConfig(api_base=sandbox.api_base, token_url=sandbox.token_url)


async def test_start_watch_delivers_verifiable_notifications_and_stop_ends_them(
    http, sandbox, fresh, receiver, registry, connection
):
    receiver.received.clear()
    sandbox.require_https = False  # the loopback receiver has no certificate
    sandbox.deliver_notifications = True
    channel = await start_watch(
        http, config_of(sandbox), fresh, receiver.address, "jh-chan-1", TOKEN, 3600
    )
    assert channel["id"] == "jh-chan-1" and channel["resourceId"]
    assert abs(channel["expiration"] - (time.time() + 3600) * 1000) < 5000
    assert sandbox.channels["jh-chan-1"]["token"] == TOKEN
    sandbox.user_add(
        summary="Consultation", start={"date": "2026-05-01"}, end={"date": "2026-05-02"}
    )
    for _ in range(100):
        if len(receiver.received) >= 2:
            break
        await asyncio.sleep(0.02)
    states = [h["x-goog-resource-state"] for h, _ in receiver.received]
    assert states == ["sync", "exists"]
    for hdrs, body in receiver.received:
        assert body == b""  # headers only
        receipt = await verify(registry, connection, fresh, {k.lower(): v for k, v in hdrs.items()})
        assert receipt.event_id.startswith("jh-chan-1:")
    assert await stop_watch(http, config_of(sandbox), fresh, "jh-chan-1", channel["resourceId"])
    assert "jh-chan-1" not in sandbox.channels
    # Stopping again: Google no longer knows the channel.
    assert not await stop_watch(http, config_of(sandbox), fresh, "jh-chan-1", channel["resourceId"])


async def test_renewal_opens_the_next_channel_then_stops_the_old_one(http, sandbox, fresh):
    config = config_of(sandbox)
    address = "https://hub.example/webhooks/gcal/con_test"
    old = await start_watch(http, config, fresh, address, "jh-old", TOKEN, 600)
    fresh_channel = await renew_watch(http, config, fresh, address, old, TOKEN, 7 * 24 * 3600)
    assert fresh_channel["id"] != "jh-old"
    assert set(sandbox.channels) == {fresh_channel["id"]}
    assert fresh_channel["expiration"] > old["expiration"]
    # A channel that is already gone does not stop the renewal.
    again = await renew_watch(http, config, fresh, address, old, TOKEN, 3600, channel_id="jh-3")
    assert set(sandbox.channels) == {fresh_channel["id"], "jh-3"}
    assert again["id"] == "jh-3"


async def test_google_refuses_plain_http_and_duplicate_channel_ids(http, sandbox, fresh):
    config = config_of(sandbox)
    with pytest.raises(PermanentError, match="HTTPS"):
        await start_watch(http, config, fresh, "http://hub.example/x", "jh-a", TOKEN, 600)
    await start_watch(http, config, fresh, "https://hub.example/x", "jh-a", TOKEN, 600)
    with pytest.raises(PermanentError, match="channelIdNotUnique"):
        await start_watch(http, config, fresh, "https://hub.example/x", "jh-a", TOKEN, 600)


async def test_check_connection_refreshes_and_names_the_calendar(
    registry, http, connection, credentials, sandbox
):
    said = await registry.call(
        "gcal",
        "journeyhub_check_connection",
        connection=connection,
        credentials=credentials,
        http=http,
    )
    assert said == "Google Calendar answered 200: calendar 'Sandbox Studio'"
    assert sandbox.token_calls == 1


def test_the_connector_describes_itself(registry):
    info = registry.connector("gcal")
    assert info.display_name == "Google Calendar"
    assert info.auth_kind == "oauth2"
    assert info.capabilities == {"push", "pull", "webhook"}
    assert set(info.push_event_types) == {
        "journey_started",
        "client_updated",
        "step_completed",
        "journey_completed",
        "journey_paused",
        "journey_failed",
    }
    assert {m.target for m in info.default_field_mappings} == {"summary", "location", "date"}
    assert (
        info.rate_limit is not None and info.rate_limit.requests / info.rate_limit.per_seconds <= 10
    )


async def test_maintain_uses_the_configured_lifetime_and_margin(
    call, new_connection, sandbox, fresh
):
    """The channel asks for ``watch_ttl_seconds``; it is renewed within
    ``watch_renew_margin_seconds`` of its end, and left alone before."""
    connection = new_connection(sandbox, watch_ttl_seconds=3600, watch_renew_margin_seconds=600)

    async def maintain(state: dict[str, Any]) -> Any:
        return await call(
            "journeyhub_maintain",
            connection=connection,
            credentials=fresh,
            webhook_url="https://hub.example.com/webhooks/gcal/con_test",
            state=state,
        )

    opened = await maintain({})
    channel = opened["channel"]
    assert abs(channel["expiration"] / 1000 - (time.time() + 3600)) < 60
    assert await maintain({"channel": {**channel, "expiration": channel["expiration"]}}) is None
    ending = int((time.time() + 500) * 1000)  # within the 600 s margin
    renewed = await maintain({"channel": {**channel, "expiration": ending}})
    assert renewed["channel"]["id"] != channel["id"]
    assert list(sandbox.channels) == [renewed["channel"]["id"]]
