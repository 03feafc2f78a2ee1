"""The audit log, walked through the API: every configuration change (with before and after,
secrets masked), keys created and revoked (by whom), replays, conflict resolutions and
re-authorisation, filtered by time, actor, connection and action."""

from __future__ import annotations

import asyncio
import getpass
import os
import subprocess
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest
from journeyhub.hub import Hub
from journeyhub.settings import Settings
from journeyhub.testing.fixtures import Gateway, TenantKeys, eventually, make_tenant
from journeyhub.testing.sandbox import Fault
from journeyhub.workers.pull import SyncWorker

from ..conftest import create_connection, event

if TYPE_CHECKING:
    from journeyhub_tave.sandbox import TaveSandbox

pytestmark = pytest.mark.usefixtures("workers")
WRONG_KEY = "wrong-tave-key-5150"


def cli(settings: Settings, *args: str) -> str:
    """Run ``journeyhub`` on the test hub's data dir and database, as an operator would."""
    env = {**os.environ, "JOURNEYHUB_DATA_DIR": str(settings.data_dir)}
    env.pop("JOURNEYHUB_DATABASE_URL", None)
    if settings.database_url:
        env["JOURNEYHUB_DATABASE_URL"] = settings.database_url
    done = subprocess.run(
        [sys.executable, "-m", "journeyhub", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def cli_actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


async def audit(gateway: Gateway, tenant: TenantKeys, **filters: Any) -> list[dict[str, Any]]:
    params = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in filters.items()}
    answer = await gateway.client.get("/v1/audit", params=params, headers=tenant.headers("read"))
    assert answer.status_code == 200, answer.text
    return answer.json()


async def delivered(hub: Hub, tenant: TenantKeys, count: int) -> None:
    async def check() -> bool:
        return len(await hub.store.deliveries.list(tenant.id, status="delivered")) >= count

    await eventually(check, timeout=30)


async def send(gateway: Gateway, tenant: TenantKeys, body: Any) -> None:
    answer = await gateway.client.post("/v1/events", json=body, headers=tenant.headers("ingest"))
    assert answer.status_code == 202, answer.text


async def test_every_change_is_audited_with_its_actor_and_filters(
    gateway: Gateway,
    tenant: TenantKeys,
    hub: Hub,
    hub_settings: Settings,
    tave_sandbox: TaveSandbox,
) -> None:
    tave = tave_sandbox
    tave.reset()
    admin = f"key:{tenant.admin_key.split('_')[1]}"
    started = datetime.now(UTC)
    client = gateway.client

    # 1. created, through the API, by the admin key
    created = await create_connection(
        gateway,
        tenant,
        vendor="tave",
        name="studio crm",
        direction="bidirectional",
        config={
            "api_base": tave.api_base,
            "pull_interval_seconds": 3600,
            "conflict_policy": "vendor_wins",
        },
        credentials={"api_key": tave.api_key},
    )
    cid = created["id"]
    await hub.store.leases.claim(f"sync:{cid}", "test", 3600)  # the test syncs when it means to

    # 2. updated: a rename
    renamed = await client.patch(
        f"/v1/connections/{cid}", json={"name": "renamed crm"}, headers=tenant.headers()
    )
    assert renamed.status_code == 200, renamed.text

    # 3. a key created and revoked from the command line
    key = await asyncio.to_thread(
        cli,
        hub_settings,
        "keys",
        "create",
        "--tenant",
        tenant.id,
        "--role",
        "read",
        "--label",
        "dashboard",
    )
    key_id = key.split("_")[1]
    await asyncio.to_thread(cli, hub_settings, "keys", "revoke", key_id)

    # 4. the vendor refuses a new key: needs_reauth, by the system; then a person fixes it
    wrong = await client.patch(
        f"/v1/connections/{cid}",
        json={"credentials": {"api_key": WRONG_KEY}},
        headers=tenant.headers(),
    )
    assert wrong.status_code == 200
    connection = await hub.store.connections.get(cid)
    assert connection is not None
    result = await SyncWorker(hub).sync(connection)
    assert result.startswith("needs reauth")
    fixed = await client.patch(
        f"/v1/connections/{cid}",
        json={"credentials": {"api_key": tave.api_key}},
        headers=tenant.headers(),
    )
    assert fixed.json()["status"] == "active"

    # 5. a conflict: both sides changed the wedding date before a sync
    connection = await hub.store.connections.get(cid)
    assert connection is not None
    await send(gateway, tenant, event(f"au-start-{tenant.id}", client_id="cl_audit"))
    await delivered(hub, tenant, 1)
    worker = SyncWorker(hub)
    await worker.sync(connection)
    update = event(f"au-upd-{tenant.id}", "client_updated", client_id="cl_audit")
    update["wedding"]["date"] = "2026-12-05"
    await send(gateway, tenant, update)
    await delivered(hub, tenant, 2)
    await asyncio.sleep(1.1)  # Tave keeps whole seconds
    tave.vendor_edit("job", tave.jobs[0]["id"], eventDate="2027-01-09")
    await worker.sync(connection)

    # 6. a dead letter replayed by the admin key
    tave.faults.plan(
        Fault(
            status=422,
            body={
                "type": "validation",
                "title": "Validation Error",
                "detail": "bad",
                "status": 422,
            },
        )
    )
    await send(gateway, tenant, event(f"au-dead-{tenant.id}", client_id="cl_audit_dead"))
    dead = await eventually(lambda: hub.store.deliveries.list_dead(tenant.id), timeout=20)
    replay = await client.post(f"/v1/dlq/{dead[0].id}/replay", headers=tenant.headers())
    assert replay.status_code == 202
    await delivered(hub, tenant, 3)

    # 7. deleted
    await asyncio.sleep(0.05)
    before_delete = datetime.now(UTC)
    await asyncio.sleep(0.05)
    assert (
        await client.delete(f"/v1/connections/{cid}", headers=tenant.headers())
    ).status_code == 204

    # --- what the log says -------------------------------------------------------------------
    entries = await audit(gateway, tenant, since=started)
    assert [(e["action"], e["actor"]) for e in reversed(entries)] == [
        ("connection.created", admin),
        ("connection.updated", admin),
        ("key.created", cli_actor()),
        ("key.revoked", cli_actor()),
        ("connection.updated", admin),
        ("connection.needs_reauth", "system"),
        ("connection.updated", admin),
        ("sync.conflict", "sync"),
        ("dead_letter.replayed", admin),
        ("connection.deleted", admin),
    ]
    by_action = {e["action"]: e for e in entries}  # newest of each action
    text = str(entries)
    assert tave.api_key not in text and WRONG_KEY not in text

    created_entry = by_action["connection.created"]
    assert created_entry["connection_id"] == cid and created_entry["before"] is None
    assert created_entry["after"]["credentials"] == {"api_key": "********"}
    assert created_entry["after"]["config"]["api_base"] == tave.api_base
    assert created_entry["after"]["name"] == "studio crm"

    updates = [e for e in reversed(entries) if e["action"] == "connection.updated"]
    rename, new_key, reconnect = updates
    assert (rename["before"]["name"], rename["after"]["name"]) == ("studio crm", "renamed crm")
    assert rename["after"]["credentials"] == {}  # not changed
    assert new_key["after"]["credentials"] == {"api_key": "********"}
    assert (reconnect["before"]["status"], reconnect["after"]["status"]) == (
        "needs_reauth",
        "active",
    )

    key_created = by_action["key.created"]
    assert key_created["after"] == {"key_id": key_id, "roles": ["read"], "label": "dashboard"}
    assert by_action["key.revoked"]["before"] == {
        "key_id": key_id,
        "roles": ["read"],
        "label": "dashboard",
    }
    assert "401" in by_action["connection.needs_reauth"]["after"]["reason"]
    conflict = by_action["sync.conflict"]
    assert conflict["connection_id"] == cid
    assert conflict["before"] == {"field": "wedding_date", "hub": "2026-12-05"}
    assert conflict["after"]["vendor"] == "2027-01-09" and conflict["after"]["winner"] == "vendor"
    assert by_action["dead_letter.replayed"]["after"]["dead_letter_id"] == dead[0].id
    deleted = by_action["connection.deleted"]
    assert deleted["before"]["name"] == "renamed crm" and deleted["after"] is None

    # --- filters -----------------------------------------------------------------------------
    mine = await audit(gateway, tenant, since=started, actor=admin)
    assert len(mine) == 6 and {e["actor"] for e in mine} == {admin}
    assert [e["action"] for e in await audit(gateway, tenant, actor="system")] == [
        "connection.needs_reauth"
    ]
    on_connection = await audit(gateway, tenant, connection_id=cid)
    assert len(on_connection) == 8 and not {"key.created", "key.revoked"} & {
        e["action"] for e in on_connection
    }
    assert len(await audit(gateway, tenant, action="connection.updated")) == 3
    keys = await audit(gateway, tenant, action="key.created")
    assert len(keys) == 4  # the fixture's three and the command line's
    assert [e["action"] for e in await audit(gateway, tenant, since=before_delete)] == [
        "connection.deleted"
    ]
    earlier = await audit(gateway, tenant, since=started, until=before_delete)
    assert len(earlier) == 9 and "connection.deleted" not in {e["action"] for e in earlier}
    assert len(await audit(gateway, tenant, since=started, limit=2)) == 2
    combined = await audit(
        gateway, tenant, connection_id=cid, actor=admin, action="connection.updated", since=started
    )
    assert len(combined) == 3

    # another tenant sees none of it; the ingest key only sends events; no key reads nothing
    other = await make_tenant(hub, "other studio")
    assert await audit(gateway, other, connection_id=cid) == []
    assert await audit(gateway, other, actor=admin) == []
    ingest = await client.get("/v1/audit", headers=tenant.headers("ingest"))
    assert ingest.status_code == 403
    assert (await client.get("/v1/audit")).status_code == 401
