"""Zaps POST 17hats' New/Updated Contact to journeyhub: verified over HTTP, then drafts."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest
from journeyhub_seventeenhats.sandbox import SeventeenHatsSandbox as HATS


async def test_new_and_updated_contacts_become_client_updated(sandbox, gateway, hook, http):
    sends = [
        HATS.new_contact(),
        HATS.updated_contact(primary_phone="555-0199", updated_at="2026-03-05T08:00:00Z"),
    ]
    for data in sends:
        answer = await sandbox.send(http, gateway.url, data)
        assert answer.status_code == 200, answer.text
    created, updated = gateway.accepted
    assert created.event_id == "new_contact:1001"
    assert updated.event_id == "updated_contact:1001@2026-03-05T08:00:00Z"
    [a] = await hook("journeyhub_handle_webhook", webhook=created)
    [b] = await hook("journeyhub_handle_webhook", webhook=updated)
    assert a.type == b.type == "client_updated"
    assert a.vendor_record_id == b.vendor_record_id == "1001"
    assert a.client_email == "ada@example.com"
    assert a.data["change"] == "created" and b.data["change"] == "updated"
    assert a.data["name"] == "Ada Lovelace" and b.data["phone"] == "555-0199"
    assert b.occurred_at == datetime(2026, 3, 5, 8, tzinfo=UTC)
    assert a.source_event_id != b.source_event_id


async def test_each_update_of_one_contact_is_its_own_event(sandbox, gateway, http):
    """Without updated_at the content tells versions apart, and a replay is still a repeat."""
    first = HATS.updated_contact(primary_phone="555-0101")
    second = HATS.updated_contact(primary_phone="555-0102")
    for data in (first, second, first):
        assert (await sandbox.send(http, gateway.url, data)).status_code == 200
    ids = [w.event_id for w in gateway.accepted]
    assert ids[0] != ids[1] and ids[0] == ids[2]
    assert all(i.startswith("updated_contact:1001@sha256:") for i in ids)


@pytest.mark.parametrize("auth_in", ["header", "query"])
async def test_tokens(sandbox, gateway, http, auth_in):
    ok = await sandbox.send(http, gateway.url, HATS.new_contact(), auth_in=auth_in)
    assert ok.status_code == 200
    for wrong in (sandbox.token[:-2] + "xx", sandbox.secret):  # the signing secret is no token
        bad = await sandbox.send(
            http, gateway.url, HATS.new_contact(), auth_in=auth_in, token=wrong
        )
        assert bad.status_code == 401 and bad.json() == {"reason": "bad_token"}


async def test_seventeenhats_labels_and_our_client_id(hook, new_stored):
    body = msgspec.json.encode(
        {
            "Trigger": "Updated Contact",
            "ID": "77",
            "First Name": "Grace",
            "Primary E-mail Address": "Grace@Example.com",
            "journeyhub_client_id": "cl_42",
        }
    )
    [draft] = await hook("journeyhub_handle_webhook", webhook=new_stored(body, None))
    assert draft.client_id == "cl_42" and draft.client_email == "grace@example.com"
    assert draft.data["email"] == "Grace@Example.com" and draft.data["name"] == "Grace"
    assert draft.source_event_id.startswith("updated_contact:77@sha256:")


async def test_unknown_triggers_are_ignored(hook, new_stored):
    body = msgspec.json.encode({"trigger": "new_invoice", "id": "1"})
    assert await hook("journeyhub_handle_webhook", webhook=new_stored(body, None)) is None
