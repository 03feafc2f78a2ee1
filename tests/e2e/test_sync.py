"""Two-way sync against the sandboxes: changes made at the vendor come back as triggers once,
our own writes never do, conflicts follow the connection's policy, OAuth refreshes once."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from journeyhub.hub import Hub
from journeyhub.model import Connection
from journeyhub.testing.fixtures import Gateway, TenantKeys, eventually
from journeyhub.workers.pull import SyncWorker

from ..conftest import create_connection, event

if TYPE_CHECKING:
    from journeyhub_gcal.sandbox import GcalSandbox
    from journeyhub_stripe.sandbox import StripeSandbox
    from journeyhub_tave.sandbox import TaveSandbox

pytestmark = [pytest.mark.usefixtures("workers"), pytest.mark.plugins]  # Tave, Stripe, Gcal
SECRET = "whsec_" + "c3luYy10ZXN0LXNlY3JldA=="


@pytest.fixture(scope="module")
def gcal_sandbox() -> Any:
    from journeyhub_gcal.sandbox import GcalSandbox

    with GcalSandbox() as sandbox:
        yield sandbox


@pytest.fixture
def tave(tave_sandbox: TaveSandbox) -> TaveSandbox:
    tave_sandbox.reset()
    return tave_sandbox


async def send(gateway: Gateway, tenant: TenantKeys, body: Any) -> None:
    answer = await gateway.client.post("/v1/events", json=body, headers=tenant.headers("ingest"))
    assert answer.status_code == 202, answer.text


async def delivered(hub: Hub, tenant_id: str, count: int) -> None:
    async def check() -> bool:
        return len(await hub.store.deliveries.list(tenant_id, status="delivered")) >= count

    await eventually(check, timeout=30)


async def connection_of(hub: Hub, connection_id: str) -> Connection:
    # This interval's scheduled sync counts as done: the background scheduler must not sync
    # between the steps of a test (the tests sync when they mean to).
    await hub.store.leases.claim(f"sync:{connection_id}", "test", 3600)
    found = await hub.store.connections.get(connection_id)
    assert found is not None
    return found


async def tave_journey(
    gateway: Gateway, tenant: TenantKeys, hub: Hub, tave: TaveSandbox, policy: str | None = None
) -> tuple[Connection, dict]:
    # The scheduler in the background must not sync between the steps of these tests.
    config: dict[str, Any] = {"api_base": tave.api_base, "pull_interval_seconds": 3600}
    if policy:
        config["conflict_policy"] = policy
    created = await create_connection(
        gateway,
        tenant,
        vendor="tave",
        name="crm",
        direction="bidirectional",
        config=config,
        credentials={"api_key": tave.api_key},
    )
    connection = await connection_of(hub, created["id"])
    await send(gateway, tenant, event(f"start-{tenant.id}", client_id=f"cl_{tenant.id}"))
    await delivered(hub, tenant.id, 1)
    job = tave.jobs[0]
    return connection, job


async def test_a_date_moved_in_tave_gives_one_trigger_and_our_own_writes_none(
    gateway: Gateway, tenant: TenantKeys, hub: Hub, tave: TaveSandbox
) -> None:
    connection, job = await tave_journey(gateway, tenant, hub, tave)
    worker = SyncWorker(hub)
    await worker.sync(connection)  # our contact and job come back: echoes, no trigger
    assert await hub.store.triggers.list(tenant.id) == []

    tave.vendor_edit("job", job["id"], eventDate="2026-10-03")
    await worker.sync(connection)
    triggers = await hub.store.triggers.list(tenant.id)
    assert [t.type for t in triggers] == ["wedding_date_changed"]
    assert triggers[0].client_id == f"cl_{tenant.id}"
    assert triggers[0].data["changes"]["wedding_date"]["new"] == "2026-10-03"
    await worker.sync(connection)  # nothing new
    assert len(await hub.store.triggers.list(tenant.id)) == 1

    # We move the date ourselves: it reaches Tave, comes back, and triggers nothing.
    update = event(f"upd-{tenant.id}", "client_updated", client_id=f"cl_{tenant.id}")
    update["wedding"]["date"] = "2026-11-14"
    await send(gateway, tenant, update)
    await delivered(hub, tenant.id, 2)
    assert tave.record("job", job["id"])["eventDate"] == "2026-11-14"
    await worker.sync(connection)
    assert len(await hub.store.triggers.list(tenant.id)) == 1


@pytest.mark.parametrize(
    ("policy", "triggers"), [("vendor_wins", 1), ("hub_wins", 0), ("newest_wins", 1)]
)
async def test_conflict_policies(
    gateway: Gateway, tenant: TenantKeys, hub: Hub, tave: TaveSandbox, policy: str, triggers: int
) -> None:
    connection, job = await tave_journey(gateway, tenant, hub, tave, policy=policy)
    worker = SyncWorker(hub)
    await worker.sync(connection)  # baseline
    # Both sides change the date before the next sync: we push one value …
    update = event(f"conf-{tenant.id}", "client_updated", client_id=f"cl_{tenant.id}")
    update["wedding"]["date"] = "2026-12-05"
    await send(gateway, tenant, update)
    await delivered(hub, tenant.id, 2)
    await asyncio.sleep(1.1)  # Tave keeps whole seconds
    # … and a studio user types another one afterwards.
    tave.vendor_edit("job", job["id"], eventDate="2027-01-09")
    await worker.sync(connection)
    found = await hub.store.triggers.list(tenant.id)
    assert len(found) == triggers
    conflicts = await hub.store.audit.list(tenant.id, action="sync.conflict")
    assert len(conflicts) == 1
    assert conflicts[0].before == {"field": "wedding_date", "hub": "2026-12-05"}
    assert conflicts[0].after["vendor"] == "2027-01-09" and conflicts[0].after["policy"] == policy
    assert conflicts[0].after["winner"] == ("hub" if policy == "hub_wins" else "vendor")


async def test_stripe_events_missed_by_webhooks_are_recovered_once(
    gateway: Gateway, tenant: TenantKeys, hub: Hub, stripe_sandbox: StripeSandbox
) -> None:
    from journeyhub_stripe.sandbox import payment_intent

    created = await create_connection(
        gateway,
        tenant,
        vendor="stripe",
        name="pay",
        direction="inbound",
        config={"api_base": stripe_sandbox.url, "pull_interval_seconds": 3600},
        credentials={"webhook_secret": SECRET, "api_key": stripe_sandbox.api_key},
    )
    connection = await connection_of(hub, created["id"])
    worker = SyncWorker(hub)
    stripe_sandbox.emit("payment_intent.succeeded", payment_intent(amount=1))  # before us
    await worker.sync(connection)  # catch-up starts from here: no history replayed
    assert await hub.store.triggers.list(tenant.id) == []

    events = [
        stripe_sandbox.emit(
            "payment_intent.succeeded",
            payment_intent(amount=100 * i, metadata={"client_id": f"cl_s{i}"}),
        )
        for i in range(1, 4)
    ]
    async with httpx.AsyncClient() as http:  # only the first reaches us by webhook
        answer = await stripe_sandbox.deliver(events[0], created["webhook_url"], [SECRET], http)
        assert answer.status_code == 200
    await eventually(lambda: hub.store.triggers.list(tenant.id))
    await worker.sync(connection)
    await worker.sync(connection)
    triggers = await hub.store.triggers.list(tenant.id)
    assert sorted(t.source_event_id for t in triggers) == sorted(e["id"] for e in events)


async def test_a_crash_mid_page_repeats_the_page_without_duplicate_triggers(
    gateway: Gateway, tenant: TenantKeys, hub: Hub, stripe_sandbox: StripeSandbox
) -> None:
    created = await create_connection(
        gateway,
        tenant,
        vendor="stripe",
        name="pay",
        direction="inbound",
        config={"api_base": stripe_sandbox.url, "pull_interval_seconds": 3600},
        credentials={"webhook_secret": SECRET, "api_key": stripe_sandbox.api_key},
    )
    connection = await connection_of(hub, created["id"])
    worker = SyncWorker(hub)
    await worker.sync(connection)
    emitted = [
        stripe_sandbox.emit(
            "invoice.paid",
            {
                "id": f"in_{i}",
                "object": "invoice",
                "amount_paid": i,
                "amount_paid_off_stripe": i,  # paid outside Stripe: invoice_paid, one each
                "currency": "gbp",
                "metadata": {"client_id": "cl_c"},
            },
        )
        for i in range(130)
    ]
    # The worker stores the first page's effects, then dies before saving the cursor.
    saved = await hub.store.sync.cursor(connection.id)
    entry = await hub.connection_cache.get(connection.id)
    assert entry is not None
    page = await worker.pull(connection, entry[1], saved.cursor if saved else None)
    assert page.has_more and len(page.triggers) == 100
    await worker.apply(connection, page)
    assert len(await hub.store.triggers.list(tenant.id, limit=1000)) == 100
    # After the restart the page comes again: the same triggers, none twice.
    await worker.sync(connection)
    triggers = await hub.store.triggers.list(tenant.id, limit=1000)
    assert len(triggers) == 130
    assert {t.source_event_id for t in triggers} == {e["id"] for e in emitted}


async def test_two_workers_sync_a_connection_once_per_interval(
    gateway: Gateway, tenant: TenantKeys, hub: Hub, stripe_sandbox: StripeSandbox
) -> None:
    # Two more schedulers beside the one the session runs in the background: three workers.
    one, two = SyncWorker(hub), SyncWorker(hub)
    before = len(stripe_sandbox.requests)
    created = await create_connection(
        gateway,
        tenant,
        vendor="stripe",
        name="pay",
        direction="inbound",
        config={"api_base": stripe_sandbox.url, "pull_interval_seconds": 1.5},
        credentials={"webhook_secret": SECRET, "api_key": stripe_sandbox.api_key},
    )
    loop = asyncio.get_running_loop()
    start = loop.time()

    async def ticks(worker: SyncWorker) -> None:
        while loop.time() < start + 4.0:
            await worker.tick_once()
            await asyncio.sleep(0.05)

    await asyncio.gather(ticks(one), ticks(two))
    # Every sync of this connection is one call to Stripe's /v1/events (nothing else calls it).
    calls = len(stripe_sandbox.requests) - before
    # ~4 s at a 1.5 s interval: a run at about 0, 1.5 and 3 s — never one per worker.
    assert 2 <= calls <= 3, calls
    cursor = await hub.store.sync.cursor(created["id"])
    assert cursor is not None and cursor.last_result.startswith("ok")


async def gcal_connection(
    gateway: Gateway, tenant: TenantKeys, hub: Hub, sandbox: GcalSandbox, **credentials: Any
) -> Connection:
    created = await create_connection(
        gateway,
        tenant,
        vendor="gcal",
        name="calendar",
        direction="bidirectional",
        config={**sandbox.config(), "pull_interval_seconds": 3600},
        credentials=sandbox.credentials(**credentials),
    )
    return await connection_of(hub, created["id"])


async def test_five_concurrent_pushes_with_an_expired_token_make_one_refresh(
    gateway: Gateway, tenant: TenantKeys, hub: Hub, gcal_sandbox: GcalSandbox
) -> None:
    gcal_sandbox.reset()
    await gcal_connection(
        gateway, tenant, hub, gcal_sandbox, access_token="ya29.expired", expires_at=1.0
    )
    await send(gateway, tenant, [event(f"gc-{i}", client_id=f"cl_g{i}") for i in range(5)])
    await delivered(hub, tenant.id, 5)
    assert gcal_sandbox.refreshes == 1
    assert len(gcal_sandbox.events()) == 5


async def test_a_revoked_refresh_token_gives_needs_reauth_and_no_retry_storm(
    gateway: Gateway, tenant: TenantKeys, hub: Hub, gcal_sandbox: GcalSandbox
) -> None:
    gcal_sandbox.reset()
    gcal_sandbox.revoke_refresh_token()
    connection = await gcal_connection(gateway, tenant, hub, gcal_sandbox)
    await send(gateway, tenant, [event(f"rv-{i}", client_id=f"cl_r{i}") for i in range(5)])

    async def marked() -> bool:
        return (await connection_of(hub, connection.id)).status == "needs_reauth"

    await eventually(marked, timeout=20)
    await asyncio.sleep(2.0)
    assert gcal_sandbox.token_calls == 1  # one refusal, then nobody asks again
    health = await gateway.client.get(
        f"/v1/connections/{connection.id}", headers=tenant.headers("read")
    )
    assert health.json()["status"] == "needs_reauth"
    assert await hub.store.deliveries.list_dead(tenant.id) == []  # waiting, not failed
    audit = await hub.store.audit.list(tenant.id, action="connection.needs_reauth")
    assert len(audit) == 1
    assert await SyncWorker(hub).tick_once() >= 0  # the sync skips it without calling Google
    assert gcal_sandbox.token_calls == 1


async def test_a_calendar_410_leads_to_a_full_resync_without_duplicate_triggers(
    gateway: Gateway, tenant: TenantKeys, hub: Hub, gcal_sandbox: GcalSandbox
) -> None:
    gcal_sandbox.reset()
    connection = await gcal_connection(gateway, tenant, hub, gcal_sandbox)
    mine = gcal_sandbox.user_add(
        summary="Engagement shoot", start={"date": "2026-05-01"}, end={"date": "2026-05-02"}
    )
    for i in range(3):
        gcal_sandbox.user_add(
            summary=f"Other {i}",
            start={"date": f"2026-06-0{i + 1}"},
            end={"date": f"2026-06-0{i + 2}"},
        )
    worker = SyncWorker(hub)
    await worker.sync(connection)  # baseline
    assert await hub.store.triggers.list(tenant.id) == []
    gcal_sandbox.user_edit(mine["id"], location="Kew Gardens")
    await worker.sync(connection)
    assert [t.type for t in await hub.store.triggers.list(tenant.id)] == ["calendar_event_changed"]
    gcal_sandbox.invalidate_sync_tokens()
    await worker.sync(connection)  # 410 → full resync: every event again, nothing new
    assert len(await hub.store.triggers.list(tenant.id)) == 1
    cursor = await hub.store.sync.cursor(connection.id)
    assert cursor is not None and cursor.last_result.startswith("ok")


async def test_on_demand_sync_through_the_api(
    gateway: Gateway, tenant: TenantKeys, hub: Hub, stripe_sandbox: StripeSandbox
) -> None:
    from journeyhub_stripe.sandbox import payment_intent

    created = await create_connection(
        gateway,
        tenant,
        vendor="stripe",
        name="pay",
        direction="inbound",
        config={"api_base": stripe_sandbox.url, "pull_interval_seconds": 3600},
        credentials={"webhook_secret": SECRET, "api_key": stripe_sandbox.api_key},
    )
    connection = await connection_of(hub, created["id"])  # this interval is spent
    await SyncWorker(hub).sync(connection)  # the catch-up starts here
    stripe_sandbox.emit(
        "payment_intent.succeeded", payment_intent(amount=7, metadata={"client_id": "cl_od"})
    )
    answer = await gateway.client.post(
        f"/v1/connections/{connection.id}/sync", headers=tenant.headers()
    )
    assert answer.status_code == 202 and answer.json()["requested"] is True
    triggers = await eventually(lambda: hub.store.triggers.list(tenant.id), timeout=20)
    assert [t.client_id for t in triggers] == ["cl_od"]
    refused = await gateway.client.post(
        f"/v1/connections/{connection.id}/sync", headers=tenant.headers("read")
    )
    assert refused.status_code == 403


async def test_watch_channels_are_kept_open_and_notifications_start_a_sync(
    gateway: Gateway, tenant: TenantKeys, hub: Hub, gcal_sandbox: GcalSandbox
) -> None:
    gcal_sandbox.reset()
    gcal_sandbox.require_https = False  # the test gateway listens on plain loopback HTTP
    connection = await gcal_connection(
        gateway, tenant, hub, gcal_sandbox, channel_token="chan-tok-0123456789"
    )
    worker = SyncWorker(hub)
    await worker.sync(connection)  # baseline
    await worker.maintain(connection)  # or the scheduler in the background did it first
    await eventually(lambda: len(gcal_sandbox.channels) == 1, timeout=10)
    await asyncio.sleep(0.5)
    assert len(gcal_sandbox.channels) == 1
    channel_id, channel = next(iter(gcal_sandbox.channels.items()))
    assert channel["address"] == f"{gateway.url}/webhooks/gcal/{connection.id}"
    await worker.maintain(connection)  # not due yet: nothing changes
    assert list(gcal_sandbox.channels) == [channel_id]

    # A change in the calendar: Google notifies, the hub syncs at once (not at the schedule).
    event_ = gcal_sandbox.user_add(
        summary="Venue walkthrough", start={"date": "2026-07-01"}, end={"date": "2026-07-02"}
    )
    await worker.sync(connection)  # it is known before it moves
    gcal_sandbox.user_edit(event_["id"], location="The Orangery")
    assert await gcal_sandbox.notify(channel_id) == 200
    triggers = await eventually(lambda: hub.store.triggers.list(tenant.id), timeout=20)
    assert [t.type for t in triggers] == ["calendar_event_changed"]

    # Near its expiry the channel is replaced: the new one opened, then the old one stopped.
    key = f"maint-state:{connection.id}"
    state = await hub.store.leases.state(key)
    state["channel"]["expiration"] = int((__import__("time").time() + 60) * 1000)
    await hub.store.leases.set_state(key, state)
    await hub.store.leases.make_due(f"maint:{connection.id}")
    await worker.maintain(connection)
    assert channel_id not in gcal_sandbox.channels and len(gcal_sandbox.channels) == 1
    bad = await gateway.client.post(
        f"/webhooks/gcal/{connection.id}",
        headers={
            **gcal_sandbox.notification_headers(next(iter(gcal_sandbox.channels)), "exists"),
            "X-Goog-Channel-Token": "wrong",
        },
    )
    assert bad.status_code == 401
