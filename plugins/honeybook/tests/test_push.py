"""journey_started → Create Client then Create Project through the fake Zapier, over HTTP."""

from __future__ import annotations

import pytest
from journeyhub.errors import PermanentError, RateLimited, RetryableError
from journeyhub.model import FieldMapping
from journeyhub.testing.sandbox import Fault


async def test_journey_started_sends_create_client_then_create_project(
    sandbox, hook, new_event, new_task
):
    result = await hook("journeyhub_push", task=new_task(new_event()))
    assert result.status == "delivered" and result.vendor_status == 200
    assert set(result.external_ids) == {"zapier_create_client", "zapier_create_project"}
    assert all(result.external_ids.values())
    assert not sandbox.rejected, "every envelope must carry a valid Standard Webhooks signature"
    client, project = sandbox.actions
    assert [client["action"], project["action"]] == ["create_client", "create_project"]
    assert client["version"] == project["version"] == 1
    assert client["occurred_at"] == "2026-03-01T12:00:00Z"
    assert client["data"] == {
        "full_name": "Ada Lovelace",
        "email": "ada@example.com",
        "phone_number": "+1 555 0100",
        "journeyhub_client_id": "cl_001",
    }
    assert project["data"] == {
        "client_full_name": "Ada Lovelace",
        "client_email": "ada@example.com",
        "phone_number": "+1 555 0100",
        "project_type": "Wedding",
        "project_date": "2026-09-12",
        "project_details": "Wedding onboarding (ji_001), 120 guests",
        "project_budget": "8000",
        "project_location": "Rose Barn, 1 Lane",
        "journey_instance_id": "ji_001",
        "journeyhub_client_id": "cl_001",
    }
    # each went to its own catch hook, and the "Zaps" made the records
    assert [r.hook for r in sandbox.received] == ["create_client", "create_project"]
    assert sandbox.received[0].headers["webhook-id"] == client["id"]
    assert list(sandbox.clients) == ["ada@example.com"] and len(sandbox.projects) == 1


async def test_a_repeated_delivery_repeats_the_ids_and_the_zaps_drop_it(
    sandbox, hook, new_event, new_task
):
    task = new_task(new_event())
    await hook("journeyhub_push", task=task)
    await hook("journeyhub_push", task=task)
    first_ids = [a["id"] for a in sandbox.actions]
    assert len(sandbox.received) == 4 and len(sandbox.actions) == 2
    assert sandbox.duplicates == {first_ids[0]: 1, first_ids[1]: 1}
    assert len(sandbox.clients) == 1 and len(sandbox.projects) == 1
    # another delivery is another pair of ids
    await hook("journeyhub_push", task=new_task(new_event(), task_id="dlv_002"))
    assert len(sandbox.actions) == 4 and len(set(a["id"] for a in sandbox.actions)) == 4


async def test_a_429_on_the_project_then_a_retry_makes_one_of_each(
    sandbox, hook, new_event, new_task
):
    task = new_task(new_event())
    sandbox.faults.plan(Fault(), Fault(status=429, retry_after=30))  # client ok, project 429
    with pytest.raises(RateLimited) as caught:
        await hook("journeyhub_push", task=task)
    assert caught.value.retry_after == 30
    assert [a["action"] for a in sandbox.actions] == ["create_client"]
    await hook("journeyhub_push", task=task)  # the kernel's redelivery
    assert [a["action"] for a in sandbox.actions] == ["create_client", "create_project"]
    assert sum(sandbox.duplicates.values()) == 1
    assert len(sandbox.clients) == 1 and len(sandbox.projects) == 1


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (Fault(status=503), RetryableError),
        (Fault(status=404), PermanentError),
        (Fault(delay=0.6), RetryableError),
    ],
)
async def test_errors_are_classified_and_keep_secrets_out(
    sandbox, hook, new_event, new_task, new_connection, fault, error
):
    connection = new_connection(sandbox.config(timeout_seconds=0.3))
    sandbox.faults.plan(fault)
    with pytest.raises(error) as caught:
        await hook("journeyhub_push", task=new_task(new_event()), connection=connection)
    message = str(caught.value)
    assert sandbox.secret not in message
    assert all(url.rstrip("/").rsplit("/", 1)[1] not in message for url in sandbox.hooks.values())
    assert not sandbox.projects


async def test_other_events_are_skipped_and_nothing_is_sent(sandbox, hook, new_event, new_task):
    step = new_event("step_completed", step={"name": "Sign contract", "type": "task"})
    result = await hook("journeyhub_push", task=new_task(step))
    assert result.status == "skipped" and not sandbox.received


async def test_only_configured_actions_are_sent(sandbox, hook, new_event, new_task, new_connection):
    only_client = new_connection(
        {"catch_hook_urls": {"create_client": sandbox.hooks["create_client"]}}
    )
    result = await hook("journeyhub_push", task=new_task(new_event()), connection=only_client)
    assert [a["action"] for a in sandbox.actions] == ["create_client"]
    assert result.detail == "no catch hook for create_project: not sent"
    with pytest.raises(PermanentError, match="no catch_hook_urls"):
        await hook("journeyhub_push", task=new_task(new_event()), connection=new_connection({}))


async def test_a_client_without_email_is_a_permanent_error(sandbox, hook, new_event, new_task):
    event = new_event(client={"id": "cl_9", "name": "No Mail"})
    with pytest.raises(PermanentError, match="email"):
        await hook("journeyhub_push", task=new_task(event))
    assert not sandbox.received


async def test_connection_mappings_override_the_defaults(
    sandbox, hook, new_event, new_task, new_connection
):
    own = [FieldMapping(source="data.kind", target="project.project_type", default="Portrait")]
    mapped_by = new_connection(sandbox.config(), field_mappings=own)
    await hook("journeyhub_push", task=new_task(new_event(), mapped_by))
    assert sandbox.actions[1]["data"]["project_type"] == "Portrait"


async def test_check_connection_pings_each_catch_hook(sandbox, hook):
    answer = await hook("journeyhub_check_connection")
    assert answer == "create_client: Zapier answered 200; create_project: Zapier answered 200"
    assert [a["action"] for a in sandbox.actions] == ["ping", "ping"]
    assert not sandbox.clients and not sandbox.projects  # the Zaps' Filters stop a ping
