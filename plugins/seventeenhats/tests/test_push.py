"""Client changes → one upsert_contact envelope through the fake Zapier, over HTTP."""

from __future__ import annotations

import pytest
from journeyhub.errors import PermanentError, RateLimited, RetryableError
from journeyhub.testing.sandbox import Fault


async def test_journey_started_upserts_the_contact(sandbox, hook, new_event, new_task):
    result = await hook("journeyhub_push", task=new_task(new_event()))
    assert result.status == "delivered" and result.vendor_status == 200
    assert result.external_ids["zapier_upsert_contact"]
    assert not sandbox.rejected
    [envelope] = sandbox.actions
    assert envelope["action"] == "upsert_contact" and envelope["version"] == 1
    assert envelope["data"] == {
        "journeyhub_client_id": "cl_001",
        "is_company": False,
        "first_name": "Ada",
        "last_name": "Lovelace",
        "type": "Client",
        "primary_email": "ada@example.com",
        "primary_phone": "+1 555 0100",
        "notes": "Wedding: 2026-09-12 at Rose Barn",
        "event": "journey_started",
    }
    assert sandbox.contacts["ada@example.com"]["first_name"] == "Ada"
    assert (sandbox.created, sandbox.updated) == (1, 0)


async def test_client_updated_updates_the_same_contact(sandbox, hook, new_event, new_task):
    await hook("journeyhub_push", task=new_task(new_event()))
    moved = new_event(
        "client_updated",
        id="evt_2",
        client={
            "id": "cl_001",
            "name": "Ada King",
            "email": "ADA@example.com",
            "phone": "+1 555 0199",
        },
    )
    await hook("journeyhub_push", task=new_task(moved, task_id="dlv_002"))
    assert (sandbox.created, sandbox.updated) == (1, 1)
    [contact] = sandbox.contacts.values()
    assert contact["last_name"] == "King" and contact["primary_phone"] == "+1 555 0199"


async def test_a_repeated_delivery_is_dropped_by_id(sandbox, hook, new_event, new_task):
    task = new_task(new_event())
    for _ in range(3):
        await hook("journeyhub_push", task=task)
    [envelope] = sandbox.actions
    assert sandbox.duplicates == {envelope["id"]: 2}
    assert (sandbox.created, sandbox.updated) == (1, 0)


async def test_errors_and_a_retry(sandbox, hook, new_event, new_task, new_connection):
    task = new_task(new_event())
    sandbox.faults.plan(Fault(status=429, retry_after=2), Fault(status=502))
    with pytest.raises(RateLimited) as limited:
        await hook("journeyhub_push", task=task)
    assert limited.value.retry_after == 2
    with pytest.raises(RetryableError) as failed:
        await hook("journeyhub_push", task=task)
    assert sandbox.secret not in str(failed.value)
    assert sandbox.hook_url.rstrip("/").rsplit("/", 1)[1] not in str(failed.value)
    await hook("journeyhub_push", task=task)
    assert len(sandbox.actions) == 1 and sandbox.created == 1


async def test_no_email_no_hook_and_other_events(
    sandbox, hook, new_event, new_task, new_connection
):
    with pytest.raises(PermanentError, match="by email"):
        await hook("journeyhub_push", task=new_task(new_event(client={"id": "c", "name": "X"})))
    with pytest.raises(PermanentError, match="upsert_contact"):
        await hook("journeyhub_push", task=new_task(new_event()), connection=new_connection({}))
    step = new_event("journey_completed")
    assert (await hook("journeyhub_push", task=new_task(step))).status == "skipped"
    assert not sandbox.received


async def test_an_email_only_client_gets_its_email_as_first_name(
    sandbox, hook, new_event, new_task
):
    await hook("journeyhub_push", task=new_task(new_event(client={"id": "c", "email": "z@x.io"})))
    assert sandbox.actions[0]["data"]["first_name"] == "z@x.io"


async def test_check_connection_pings_the_catch_hook(sandbox, hook, new_connection):
    assert await hook("journeyhub_check_connection") == "upsert_contact: Zapier answered 200"
    assert sandbox.actions[0]["action"] == "ping" and not sandbox.contacts
    assert "inbound only" in await hook(
        "journeyhub_check_connection", connection=new_connection({})
    )
