"""Inbound: Svix verification at the receiver, then email.* events → trigger drafts."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from journeyhub.configs import config_as
from journeyhub.errors import WebhookRejected
from journeyhub.model import Connection, Known, StoredWebhook
from journeyhub.plugins import get_plugin_manager
from journeyhub.signing import new_secret
from journeyhub_resend import plugin
from journeyhub_resend.config import ResendConfig
from journeyhub_resend.sandbox import ResendSandbox

REGISTRY = get_plugin_manager(only=("resend",))  # hooks called as the workers call them


async def _sent_email(sandbox: ResendSandbox, connection, credentials, http, task) -> str:
    result = await REGISTRY.call(
        "resend",
        "journeyhub_push",
        task=task,
        connection=connection,
        credentials=credentials,
        idempotency_key=task.id,
        http=http,
        suppressed=frozenset(),
        known=Known(),
    )
    return result.external_ids["email_id"]


def _verify(connection: Connection, credentials: dict[str, Any], headers, body, now=None):
    return plugin.journeyhub_verify_webhook(
        config=config_as(connection, ResendConfig),  # decoded as the kernel decodes it
        credentials=credentials,
        headers=headers,
        body=body,
        now=now or datetime.now(UTC),
    )


def _stored(body: bytes, event_id: str = "msg_1", event_type: str | None = None) -> StoredWebhook:
    return StoredWebhook(
        vendor="resend",
        connection_id="con_test",
        tenant_id="ten_test",
        event_id=event_id,
        event_type=event_type,
        received_at=datetime.now(UTC),
        headers={},
        body=body,
    )


# --- verification ------------------------------------------------------------------------------


async def test_a_signed_event_is_accepted_over_http(
    sandbox, connection, credentials, http, task_for, receiver, secret, webhook_sender
):
    email_id = await _sent_email(sandbox, connection, credentials, http, task_for())
    event = sandbox.emit("email.delivered", email_id)
    response = await sandbox.deliver(event, receiver.url, secret, webhook_sender, msg_id="msg_abc")
    assert response.status_code == 200
    assert response.json() == {"event_id": "msg_abc"}
    assert receiver.stored[0].event_type == "email.delivered"


async def test_a_wrong_secret_is_refused_over_http(
    sandbox, connection, credentials, http, task_for, receiver, webhook_sender
):
    email_id = await _sent_email(sandbox, connection, credentials, http, task_for())
    event = sandbox.emit("email.delivered", email_id)
    response = await sandbox.deliver(event, receiver.url, new_secret(), webhook_sender)
    assert response.status_code == 401
    assert response.json() == {"error": "bad_signature"}
    assert receiver.stored == []


def test_a_tampered_body_is_refused(connection, credentials, secret, sandbox):
    body, headers = sandbox.signed({"type": "email.opened", "data": {}}, secret)
    with pytest.raises(WebhookRejected) as caught:
        _verify(connection, credentials, headers, body.replace(b"opened", b"clicked"))
    assert caught.value.reason == "bad_signature"


def test_a_stale_timestamp_is_refused(connection, credentials, secret, sandbox):
    old = int(time.time()) - 301
    body, headers = sandbox.signed({"type": "email.opened"}, secret, timestamp=old)
    with pytest.raises(WebhookRejected) as caught:
        _verify(connection, credentials, headers, body)
    assert caught.value.reason == "stale"
    # the connection's tolerance is what counts
    lenient = Connection(
        **{**_fields(connection), "config": {**connection.config, "tolerance_seconds": 600}}
    )
    assert _verify(lenient, credentials, headers, body).event_type == "email.opened"


def _fields(connection: Connection) -> dict[str, Any]:
    return {f: getattr(connection, f) for f in connection.__struct_fields__}


def test_a_previous_secret_still_verifies_during_rotation(connection, secret, sandbox):
    rotated = {
        "api_key": "re_x_12345678",
        "webhook_secret": new_secret(),
        "previous_webhook_secrets": [secret],
    }
    body, headers = sandbox.signed({"type": "email.sent"}, secret, msg_id="msg_rot")
    receipt = _verify(connection, rotated, headers, body)
    assert (receipt.event_id, receipt.event_type) == ("msg_rot", "email.sent")
    gone = {"api_key": "re_x_12345678", "webhook_secret": rotated["webhook_secret"]}
    with pytest.raises(WebhookRejected):
        _verify(connection, gone, headers, body)


@pytest.mark.parametrize("missing", ["svix-id", "svix-timestamp", "svix-signature"])
def test_missing_headers_are_refused(connection, credentials, secret, sandbox, missing):
    body, headers = sandbox.signed({"type": "email.sent"}, secret)
    del headers[missing]
    with pytest.raises(WebhookRejected) as caught:
        _verify(connection, credentials, headers, body)
    assert caught.value.reason == "missing_signature"


@pytest.mark.parametrize(
    "headers",
    [
        {"svix-id": "m", "svix-timestamp": "yesterday", "svix-signature": "v1,AAAA"},
        {"svix-id": "m", "svix-timestamp": str(int(time.time())), "svix-signature": "v1,@@@"},
        {"svix-id": "m", "svix-timestamp": str(int(time.time())), "svix-signature": "garbage"},
        {"svix-id": "m", "svix-timestamp": "9" * 40, "svix-signature": "v1,"},
    ],
)
def test_garbage_is_a_clean_rejection(connection, credentials, headers):
    for body in (b"", b"\xff\xfe\x00", b"{not json"):
        with pytest.raises(WebhookRejected):
            _verify(connection, credentials, headers, body)


def test_a_signed_body_that_is_not_json_is_bad_body(connection, credentials, secret, sandbox):
    stamp = int(time.time())
    headers = {
        "svix-id": "msg_x",
        "svix-timestamp": str(stamp),
        "svix-signature": sandbox.signer(secret, "msg_x", stamp, b"<html>"),
    }
    with pytest.raises(WebhookRejected) as caught:
        _verify(connection, credentials, headers, b"<html>")
    assert caught.value.reason == "bad_body"


def test_no_webhook_secret_configured_refuses(connection, secret, sandbox):
    body, headers = sandbox.signed({"type": "email.sent"}, secret)
    with pytest.raises(WebhookRejected) as caught:
        _verify(connection, {"api_key": "re_x_12345678"}, headers, body)
    assert caught.value.reason == "bad_signature"


# --- mapping -----------------------------------------------------------------------------------

EXPECTED = {
    "email.delivered": "email_delivered",
    "email.opened": "email_opened",
    "email.clicked": "email_clicked",
    "email.bounced": "email_bounced",
    "email.complained": "email_complained",
    "email.failed": "email_failed",
    "email.suppressed": "email_suppressed",
}


@pytest.mark.parametrize("kind", sorted(EXPECTED))
async def test_every_email_event_maps_to_its_trigger(
    sandbox, connection, credentials, http, task_for, receiver, secret, kind, webhook_sender
):
    email_id = await _sent_email(sandbox, connection, credentials, http, task_for())
    event = sandbox.emit(kind, email_id, link="https://lumiere.example.com/gallery")
    assert (await sandbox.deliver(event, receiver.url, secret, webhook_sender)).status_code == 200
    drafts = plugin.journeyhub_handle_webhook(webhook=receiver.stored[0])
    assert drafts is not None and len(drafts) == 1
    draft = drafts[0]
    assert draft.type == EXPECTED[kind]
    assert draft.client_id == "cli_1"  # from the tag we set when sending
    assert draft.client_email == "anna@client.test"
    assert draft.data["email_id"] == email_id
    assert draft.data["subject"] == "Welcome, Anna & Ben!"
    assert draft.data["email"] == "anna@client.test"
    assert draft.occurred_at is not None
    assert draft.source_event_id.startswith(f"{email_id}:{kind}:anna@client.test")
    if kind == "email.clicked":
        assert draft.data["link"] == "https://lumiere.example.com/gallery"
    if kind == "email.bounced":
        assert draft.data["bounce_type"] == "Permanent"
        assert "does not exist" in draft.data["bounce_message"]
    if kind == "email.failed":
        assert draft.data["failed_reason"] == "reached_daily_quota"


@pytest.mark.parametrize("kind", ["email.sent", "email.delivery_delayed"])
def test_known_events_without_a_trigger_give_nothing(kind):
    body = json.dumps(
        {
            "type": kind,
            "created_at": "2026-01-01T00:00:00.000Z",
            "data": {"email_id": "e1", "to": ["a@b.test"]},
        }
    ).encode()
    assert plugin.journeyhub_handle_webhook(webhook=_stored(body)) == []


@pytest.mark.parametrize("kind", ["contact.created", "domain.updated", "email.received", "x"])
def test_unknown_events_give_none(kind):
    body = json.dumps({"type": kind, "data": {}}).encode()
    assert plugin.journeyhub_handle_webhook(webhook=_stored(body)) is None


def test_a_redelivery_gives_the_same_source_id_and_two_opens_do_not():
    def opened(at: str) -> bytes:
        return json.dumps(
            {
                "type": "email.opened",
                "created_at": at,
                "data": {"email_id": "e1", "to": ["a@b.test"]},
            }
        ).encode()

    first = plugin.journeyhub_handle_webhook(webhook=_stored(opened("2026-01-01T10:00:00.000Z")))
    again = plugin.journeyhub_handle_webhook(
        webhook=_stored(opened("2026-01-01T10:00:00.000Z"), event_id="msg_other_endpoint")
    )
    later = plugin.journeyhub_handle_webhook(webhook=_stored(opened("2026-01-02T08:00:00.000Z")))
    assert first[0].source_event_id == again[0].source_event_id
    assert first[0].source_event_id != later[0].source_event_id


@pytest.mark.parametrize(("bounce_type", "suppress"), [("Transient", False), ("Permanent", None)])
async def test_only_a_permanent_bounce_suppresses(
    sandbox, connection, credentials, http, task_for, bounce_type, suppress
):
    email_id = await _sent_email(sandbox, connection, credentials, http, task_for())
    bounce = {"type": bounce_type, "subType": "MailboxFull", "message": "mailbox full"}
    event = sandbox.emit("email.bounced", email_id, bounce=bounce)
    (draft,) = plugin.journeyhub_handle_webhook(webhook=_stored(json.dumps(event).encode()))
    assert draft.type == "email_bounced" and draft.data["bounce_type"] == bounce_type
    assert draft.data.get("suppress") is suppress


def test_a_bounce_to_two_recipients_suppresses_both():
    body = json.dumps(
        {
            "type": "email.bounced",
            "created_at": "2026-01-01T10:00:00.000Z",
            "data": {
                "email_id": "e1",
                "to": ["A@b.test", "c@d.test"],
                "bounce": {"type": "Permanent", "subType": "General", "message": "gone"},
            },
        }
    ).encode()
    drafts = plugin.journeyhub_handle_webhook(webhook=_stored(body))
    assert [d.data["email"] for d in drafts] == ["a@b.test", "c@d.test"]
    assert len({d.source_event_id for d in drafts}) == 2


async def test_a_client_id_that_is_not_tag_safe_comes_back_intact(
    sandbox, connection, credentials, http, task_for, secret, receiver, webhook_sender
):
    odd = "client:42/été"
    email_id = await _sent_email(sandbox, connection, credentials, http, task_for(client_id=odd))
    assert all(
        set(t["value"]) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
        for t in sandbox.email(email_id)["tags"]
    )
    await sandbox.deliver(
        sandbox.emit("email.complained", email_id), receiver.url, secret, webhook_sender
    )
    (draft,) = plugin.journeyhub_handle_webhook(webhook=receiver.stored[0])
    assert draft.client_id == odd
    assert draft.data["email"] == "anna@client.test"


def test_tags_in_list_form_are_read_too():
    body = json.dumps(
        {
            "type": "email.delivered",
            "created_at": "2026-01-01T10:00:00.000Z",
            "data": {
                "email_id": "e1",
                "to": ["a@b.test"],
                "tags": [{"name": "client_id", "value": "cli_9"}],
            },
        }
    ).encode()
    (draft,) = plugin.journeyhub_handle_webhook(webhook=_stored(body))
    assert draft.client_id == "cli_9"
    assert draft.occurred_at == datetime(2026, 1, 1, 10, tzinfo=UTC)


async def test_the_receiver_stand_in_refuses_a_replayed_old_message(
    sandbox, connection, credentials, http, task_for, receiver, secret, webhook_sender
):
    email_id = await _sent_email(sandbox, connection, credentials, http, task_for())
    event = sandbox.emit("email.opened", email_id)
    stamp = int((datetime.now(UTC) - timedelta(hours=1)).timestamp())
    response = await sandbox.deliver(event, receiver.url, secret, webhook_sender, timestamp=stamp)
    assert response.status_code == 401
    assert response.json() == {"error": "stale"}
    assert isinstance(response, httpx.Response)  # the sender's own answer, as it gives it
