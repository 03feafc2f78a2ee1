"""Through the kernel: a connection made over the API, synced by the kernel's sync worker
against the sandbox. A moved shoot and a booked lead become triggers, each once."""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta

from journeyhub.hub import Hub
from journeyhub.model import Connection
from journeyhub.testing.fixtures import Gateway, TenantKeys
from journeyhub.workers.pull import SyncWorker

DAY = date(2026, 6, 20)


async def studioninja_connection(
    gateway: Gateway, tenant: TenantKeys, hub: Hub, sandbox
) -> Connection:
    answer = await gateway.client.post(
        "/v1/connections",
        headers=tenant.headers(),
        json={
            "vendor": "studioninja",
            "name": "studio",
            "direction": "bidirectional",
            # The scheduler in the background must not sync between the steps of this test.
            "config": {**sandbox.config(), "pull_interval_seconds": 3600},
            "credentials": sandbox.credentials(),
        },
    )
    assert answer.status_code == 201, answer.text
    connection_id = answer.json()["id"]
    # This interval's scheduled sync counts as done: the test syncs when it means to.
    await hub.store.leases.claim(f"sync:{connection_id}", "test", 3600)
    found = await hub.store.connections.get(connection_id)
    assert found is not None
    return found


async def test_moves_and_a_booked_lead_give_one_trigger_each(
    gateway: Gateway, tenant: TenantKeys, hub: Hub, sandbox
) -> None:
    shoot = sandbox.add_entry("SHOOT", "Ada & Ben Wedding", DAY, location="Rose Barn")
    lead = sandbox.add_entry("LEAD", "Cleo & Dan Wedding", DAY + timedelta(days=7))
    sandbox.google.user_add(
        summary="Dentist", start={"date": "2026-05-01"}, end={"date": "2026-05-02"}
    )
    connection = await studioninja_connection(gateway, tenant, hub, sandbox)
    worker = SyncWorker(hub)

    result = await worker.sync(connection)  # the first sighting of everything: a baseline
    assert result.startswith("ok"), result
    assert await hub.store.triggers.list(tenant.id) == []
    assert sandbox.google.refreshes == 1  # the kernel authenticated through our hook

    sandbox.book_lead(lead["id"])  # Studio Ninja: "LEAD: …" becomes "SHOOT: …"
    await worker.sync(connection)
    triggers = await hub.store.triggers.list(tenant.id)
    assert Counter(t.type for t in triggers) == {
        "project_status_changed": 1,  # the job: lead → confirmed
        "calendar_event_changed": 1,  # its calendar entry was relabelled
    }
    status = next(t for t in triggers if t.type == "project_status_changed")
    assert status.data["kind"] == "job"
    assert status.data["vendor_id"] == "job:name:cleo & dan wedding"
    assert status.data["changes"] == {"status": {"old": "lead", "new": "confirmed"}}

    sandbox.move(shoot["id"], DAY + timedelta(days=1))
    await worker.sync(connection)
    await worker.sync(connection)  # nothing new: nothing twice
    triggers = await hub.store.triggers.list(tenant.id)
    assert Counter(t.type for t in triggers) == {
        "project_status_changed": 1,
        "calendar_event_changed": 2,
    }
    moved = [t for t in triggers if t.data.get("vendor_id") == shoot["id"]]
    assert len(moved) == 1 and moved[0].type == "calendar_event_changed"
    assert moved[0].data["changes"]["start"] == {"old": "2026-06-20", "new": "2026-06-21"}
    cursor = await hub.store.sync.cursor(connection.id)
    assert cursor is not None and cursor.last_result.startswith("ok")
