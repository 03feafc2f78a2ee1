"""Pushing journey events into the Light Blue sandbox's Inbox over real HTTP."""

from __future__ import annotations

from datetime import date

import pytest
from journeyhub.errors import PermanentError
from journeyhub.model import EVENT_TYPES, FIELD_SETTING_EVENTS, FieldMapping


async def test_journey_started_makes_one_enquiry_with_the_mapped_fields(sandbox, push, new_event):
    result = await push(new_event())

    [enquiry] = sandbox.enquiries
    assert enquiry.fields == {
        "ContactNameFirst": "Ada",
        "ContactNameLast": "King Lovelace",
        "ContactEmail": "ada@example.com",
        "ContactPhone": "+44 20 7946 0100",
        "ShootDate": "20/06/2026",
        "ShootLocation": "Rose Barn, 1 Lane, Bath",
        "ShootTitle": "Ada King Lovelace wedding",
        "ShootType": "Wedding",
        "Message": "New enquiry from journeyhub (Wedding onboarding). Guests: 120\n"
        "Golden hour portraits, please.",
    }
    assert enquiry.dates == {"ShootDate": date(2026, 6, 20)}  # read as dd/mm/yyyy
    assert enquiry.ignored == {}
    assert enquiry.source == "journeyhub"
    assert enquiry.id and enquiry.id.startswith("jh-enquiry_")
    assert result.status == "delivered"
    assert result.vendor_status == 200
    assert result.external_ids == {"id": enquiry.id, "source": "journeyhub"}
    assert sandbox.api_key not in repr(result)


async def test_the_same_task_twice_makes_one_enquiry_and_the_second_is_already_delivered(
    sandbox, push, new_event, new_task, connection
):
    task = new_task(new_event(), connection)
    first = await push(task)
    second = await push(task)

    assert first.status == "delivered"
    assert second.status == "already_delivered"
    assert "-4" in (second.detail or "")
    assert second.external_ids == first.external_ids
    assert len(sandbox.enquiries) == 1
    assert sandbox.submissions(first.external_ids["id"]) == 2  # both reached Light Blue


async def test_journey_started_sent_twice_under_new_event_ids_is_still_one_enquiry(
    sandbox, push, new_event
):
    await push(new_event(id="evt_a"))
    again = await push(new_event(id="evt_b"))  # same client, same journey instance

    assert again.status == "already_delivered"
    assert len(sandbox.enquiries) == 1


async def test_another_journey_for_the_same_client_is_a_new_enquiry(sandbox, push, new_event):
    await push(new_event())
    await push(new_event(id="evt_2", journey_instance_id="ji_002"))

    assert len({e.id for e in sandbox.enquiries}) == 2


async def test_each_client_update_is_its_own_inbox_item_but_a_repeat_is_not(
    sandbox, push, new_event
):
    first = await push(new_event("client_updated", id="evt_u1"))
    repeat = await push(new_event("client_updated", id="evt_u1"))
    later = await push(
        new_event(
            "client_updated",
            id="evt_u2",
            client={"id": "cl_001", "name": "Ada Byron", "email": "ada@new.example"},
        )
    )

    assert (first.status, repeat.status, later.status) == (
        "delivered",
        "already_delivered",
        "delivered",
    )
    first_item, later_item = sandbox.enquiries
    assert first_item.fields["Message"].startswith("Updated contact details")
    assert "ShootType" not in first_item.fields  # an update is not a new shoot enquiry
    assert later_item.fields["ContactEmail"] == "ada@new.example"
    assert later_item.fields["ContactNameLast"] == "Byron"


@pytest.mark.parametrize("kind", sorted(set(EVENT_TYPES) - FIELD_SETTING_EVENTS))
async def test_other_events_are_skipped_without_a_call(sandbox, push, new_event, kind):
    """Their snapshot of the wedding may be older than a change the studio made since."""
    moved = {"date": "2027-01-01", "venue": {"name": "Elsewhere"}}
    step = {"name": "Sign", "type": "task"} if kind == "step_completed" else None
    result = await push(new_event(kind, wedding=moved, step=step))

    assert result.status == "skipped"
    assert sandbox.requests == []


async def test_a_connection_mapping_overrides_a_default(
    sandbox, push, new_event, new_connection, credentials
):
    connection = new_connection(
        sandbox,
        field_mappings=[
            FieldMapping(source="client.phone", target="ContactPhoneMobile", transform="strip"),
            FieldMapping(source="journey_name", target="ShootType"),
        ],
    )
    await push(new_event(), connection=connection)

    [enquiry] = sandbox.enquiries
    assert enquiry.fields["ContactPhoneMobile"] == "+44 20 7946 0100"
    assert enquiry.fields["ShootType"] == "Wedding onboarding"  # the mapping beats the config


async def test_no_shoot_type_when_the_config_turns_it_off(sandbox, push, new_event, new_connection):
    await push(new_event(), connection=new_connection(sandbox, shoot_type=None))

    assert "ShootType" not in sandbox.enquiries[0].fields


async def test_a_mapping_may_not_replace_the_dedupe_id(sandbox, push, new_event, new_connection):
    connection = new_connection(
        sandbox, field_mappings=[FieldMapping(source="client.id", target="ID")]
    )
    with pytest.raises(PermanentError, match="'ID' is set by the connector"):
        await push(new_event(), connection=connection)
    assert sandbox.requests == []


async def test_the_fields_pushed_are_the_tasks_mapped_which_the_kernel_computes(
    sandbox, push, new_event, new_task, connection
):
    # The push worker always fills ``task.mapped`` from the defaults and the connection's own
    # mappings (``new_task`` does as it does); the connector sends it as it is.
    task = new_task(new_event(), connection)
    assert task.mapped["ContactNameFirst"] == "Ada"
    task.mapped = {**task.mapped, "ContactNameFirst": "Augusta"}
    await push(task)

    assert sandbox.enquiries[0].fields["ContactNameFirst"] == "Augusta"
