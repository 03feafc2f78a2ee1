"""Connection health (``/v1/connections/{id}/health``, ``/v1/connections/health``) against the
Tave sandbox: the numbers are exactly what the test made happen."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest
from journeyhub.health import connection_health, percentile
from journeyhub.hub import Hub
from journeyhub.resilience.breaker import Breakers
from journeyhub.testing.fixtures import Gateway, TenantKeys, eventually, make_tenant
from journeyhub.testing.sandbox import Fault
from journeyhub.workers.pull import SyncWorker

from ..conftest import create_connection, event

if TYPE_CHECKING:
    from journeyhub_tave.sandbox import TaveSandbox

pytestmark = pytest.mark.usefixtures("workers")

VALIDATION_422 = Fault(
    status=422,
    body={"type": "validation", "title": "Validation Error", "detail": "bad", "status": 422},
)
# Each fault ends exactly one attempt: 2 retried failures, 1 rate limited, 1 dead (permanent).
SCENARIO_FAULTS = (
    Fault(status=500),
    Fault(status=503),
    Fault(status=429, retry_after=0.5),
    VALIDATION_422,
)
SCENARIO_EVENTS = 6


@pytest.fixture
def tave(tave_sandbox: TaveSandbox) -> TaveSandbox:
    tave_sandbox.reset()
    return tave_sandbox


async def tave_connection(
    gateway: Gateway,
    tenant: TenantKeys,
    tave: TaveSandbox,
    direction: str = "outbound",
    api_key: str | None = None,
    **config: Any,
) -> dict[str, Any]:
    return await create_connection(
        gateway,
        tenant,
        vendor="tave",
        name="studio crm",
        direction=direction,
        config={"api_base": tave.api_base, **config},
        credentials={"api_key": api_key or tave.api_key},
    )


async def send(gateway: Gateway, tenant: TenantKeys, body: Any) -> None:
    answer = await gateway.client.post("/v1/events", json=body, headers=tenant.headers("ingest"))
    assert answer.status_code == 202, answer.text


async def statuses(hub: Hub, tenant: TenantKeys) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in await hub.store.deliveries.list(tenant.id, limit=1000):
        counts[row.status] = counts.get(row.status, 0) + 1
    return counts


async def settled(hub: Hub, tenant: TenantKeys, connection_id: str, **expected: int) -> None:
    """Wait until the tenant's delivery rows have these counts and nothing is pending."""

    async def check() -> bool:
        counts = await statuses(hub, tenant)
        done = all(counts.get(status, 0) == n for status, n in expected.items())
        return done and await hub.store.tasks.pending_count(connection_id) == 0

    await eventually(check, timeout=40)


async def run_scenario(
    gateway: Gateway, tenant: TenantKeys, hub: Hub, tave: TaveSandbox
) -> dict[str, Any]:
    """N events, K injected faults: 5 delivered, 2 failed, 1 rate limited, 1 dead."""
    connection = await tave_connection(gateway, tenant, tave)
    injected = sum(tave.faults.injected.values())
    tave.faults.plan(*SCENARIO_FAULTS)
    await send(
        gateway,
        tenant,
        [event(f"hs-{tenant.id}-{i}", client_id=f"cl_hs{i}") for i in range(SCENARIO_EVENTS)],
    )
    await settled(hub, tenant, connection["id"], delivered=5, failed=2, rate_limited=1, dead=1)
    assert sum(tave.faults.injected.values()) - injected == len(SCENARIO_FAULTS)
    return connection


async def health_of(gateway: Gateway, tenant: TenantKeys, connection_id: str) -> dict[str, Any]:
    answer = await gateway.client.get(
        f"/v1/connections/{connection_id}/health", headers=tenant.headers("read")
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


async def test_health_counts_rates_latency_and_dead_letters_match_what_happened(
    gateway: Gateway, tenant: TenantKeys, hub: Hub, tave: TaveSandbox
) -> None:
    started = datetime.now(UTC)
    connection = await run_scenario(gateway, tenant, hub, tave)
    health = await health_of(gateway, tenant, connection["id"])

    expected_window = {
        "attempts": 9,
        "succeeded": 5,
        "errors": 4,
        "success_rate": round(5 / 9, 4),
        "by_status": {"dead": 1, "delivered": 5, "failed": 2, "rate_limited": 1},
    }
    for name in ("last_hour", "last_24h"):
        window = health[name]
        assert {k: window[k] for k in expected_window} == expected_window, name
    assert health["last_hour"]["window_seconds"] == 3600
    assert health["last_24h"]["window_seconds"] == 86400
    assert health["dead_letters"] == 1 and health["pending_deliveries"] == 0
    assert health["needs_reauth"] is False and health["status"] == "active"
    assert health["connected"] is True and health["last_sync"] is None
    assert health["breaker"]["state"] == "closed" and health["breaker"]["failures"] == 0

    rows = await hub.store.deliveries.list(tenant.id, limit=1000)
    successes = sorted(r.latency_ms for r in rows if r.status == "delivered")
    assert health["latency"]["samples"] == 5
    assert health["latency"]["p50_ms"] == pytest.approx(successes[2])  # nearest rank: 3rd of 5
    assert health["latency"]["p95_ms"] == pytest.approx(successes[4])
    last_success = max(r.created_at for r in rows if r.status == "delivered")
    last_error = max(r.created_at for r in rows if r.status != "delivered")
    for field, moment in (("last_success_at", last_success), ("last_error_at", last_error)):
        got = datetime.fromisoformat(health[field])
        assert got.tzinfo is not None and started <= got <= datetime.now(UTC)
        assert got.replace(tzinfo=None) == moment.replace(tzinfo=None)

    # The dead letter is replayed and delivered: the marker row is not an attempt.
    dead = await hub.store.deliveries.list_dead(tenant.id)
    answer = await gateway.client.post(f"/v1/dlq/{dead[0].id}/replay", headers=tenant.headers())
    assert answer.status_code == 202
    await settled(hub, tenant, connection["id"], delivered=6, replayed=1)
    health = await health_of(gateway, tenant, connection["id"])
    assert health["dead_letters"] == 0
    day = health["last_24h"]
    assert (day["attempts"], day["succeeded"], day["errors"]) == (10, 6, 4)
    assert day["by_status"]["replayed"] == 1 and day["success_rate"] == 0.6
    assert health["latency"]["samples"] == 6


async def test_health_of_all_connections_and_of_another_tenants(
    gateway: Gateway, tenant: TenantKeys, hub: Hub, tave: TaveSandbox
) -> None:
    first = await tave_connection(gateway, tenant, tave)
    second = await tave_connection(gateway, tenant, tave, api_key="not-the-key")
    other = await make_tenant(hub, "someone else")
    theirs = await tave_connection(gateway, other, tave)

    listed = await gateway.client.get("/v1/connections/health", headers=tenant.headers("read"))
    assert listed.status_code == 200, listed.text
    assert [h["connection_id"] for h in listed.json()] == [first["id"], second["id"]]
    fresh = listed.json()[0]
    assert fresh["connected"] is False and fresh["last_success_at"] is None
    assert fresh["last_24h"]["attempts"] == 0 and fresh["last_24h"]["success_rate"] is None
    assert fresh["latency"] == {
        "window_seconds": 86400,
        "samples": 0,
        "p50_ms": None,
        "p95_ms": None,
    }

    client = gateway.client
    assert (
        await client.get(f"/v1/connections/{theirs['id']}/health", headers=tenant.headers("read"))
    ).status_code == 404
    assert (
        await client.get("/v1/connections/con_nope/health", headers=tenant.headers("read"))
    ).status_code == 404
    mine = await client.get("/v1/connections/health", headers=other.headers("read"))
    assert [h["connection_id"] for h in mine.json()] == [theirs["id"]]
    assert (await client.get("/v1/connections/health")).status_code == 401
    # The static path is not taken for a connection id, and the id routes still work.
    assert (
        await client.get(f"/v1/connections/{first['id']}", headers=tenant.headers("read"))
    ).json()["id"] == first["id"]
    assert (
        await client.delete("/v1/connections/health", headers=tenant.headers())
    ).status_code in (404, 405)
    assert len((await client.get("/v1/connections", headers=tenant.headers())).json()) == 2


async def test_a_refused_key_shows_needs_reauth_and_the_waiting_task(
    gateway: Gateway, tenant: TenantKeys, hub: Hub, tave: TaveSandbox
) -> None:
    connection = await tave_connection(gateway, tenant, tave, api_key="revoked-key-123")
    await send(gateway, tenant, event(f"ra-{tenant.id}", client_id="cl_reauth"))

    async def marked() -> dict[str, Any] | None:
        health = await health_of(gateway, tenant, connection["id"])
        return health if health["needs_reauth"] else None

    health = await eventually(marked, timeout=20)
    assert health["status"] == "needs_reauth" and health["connected"] is False
    assert health["last_24h"]["by_status"] == {"needs_reauth": 1}
    assert health["last_24h"]["errors"] == 1 and health["last_24h"]["success_rate"] == 0.0
    assert health["pending_deliveries"] == 1  # it waits for a person, it is not dead
    assert health["dead_letters"] == 0


async def test_the_breaker_and_the_last_sync_show_in_the_health(
    gateway: Gateway, tenant: TenantKeys, hub: Hub, tave: TaveSandbox
) -> None:
    created = await tave_connection(
        gateway, tenant, tave, direction="bidirectional", pull_interval_seconds=3600
    )
    await hub.store.leases.claim(f"sync:{created['id']}", "test", 3600)  # no background sync
    connection = await hub.store.connections.get(created["id"])
    assert connection is not None

    result = await SyncWorker(hub).sync(connection)
    health = await connection_health(hub, connection)
    assert health.last_sync is not None and health.last_sync.ok is True
    assert health.last_sync.last_result == result and result.startswith("ok")
    assert health.last_success_at == health.last_sync.last_sync_at  # no push yet
    assert health.connected is True

    tave.faults.plan(Fault(status=503))
    failed = await SyncWorker(hub).sync(connection)
    health = await connection_health(hub, connection)
    assert health.last_sync is not None and health.last_sync.ok is False
    assert health.last_sync.last_result == failed and "503" in failed

    breakers = Breakers(
        hub.store, holder="test", threshold=hub.settings.breaker_threshold, cooldown=60, cache_ttl=0
    )
    for _ in range(hub.settings.breaker_threshold):
        await breakers.failure(connection.id)
    health = await health_of(gateway, tenant, connection.id)
    assert health["breaker"]["state"] == "open" and health["connected"] is False
    assert health["breaker"]["failures"] == hub.settings.breaker_threshold
    opened = datetime.fromisoformat(health["breaker"]["opened_at"])
    reopens = datetime.fromisoformat(health["breaker"]["reopens_at"])
    assert (reopens - opened).total_seconds() == pytest.approx(
        hub.settings.breaker_cooldown_seconds
    )
    await breakers.pause(connection.id, 30)
    health = await health_of(gateway, tenant, connection.id)
    assert health["breaker"]["paused_until"] is not None
    await breakers.success(connection.id)
    health = await health_of(gateway, tenant, connection.id)
    assert health["breaker"]["state"] == "closed" and health["breaker"]["paused_until"] is None
    # The store keeps the last sync's result only: after a failed one, and with no push yet,
    # nothing shows a successful call.
    assert health["last_success_at"] is None and health["connected"] is False


async def test_connection_test_reports_the_vendors_answer(
    gateway: Gateway, tenant: TenantKeys, tave: TaveSandbox
) -> None:
    good = await tave_connection(gateway, tenant, tave)
    bad = await tave_connection(gateway, tenant, tave, api_key="wrong-key-0000")
    ok = await gateway.client.post(f"/v1/connections/{good['id']}/test", headers=tenant.headers())
    assert ok.status_code == 200, ok.text
    assert ok.json() == {
        "ok": True,
        "vendor_answer": f"VSCO Workspace answered 200: studio {tave.studio_name!r}",
    }
    refused = await gateway.client.post(
        f"/v1/connections/{bad['id']}/test", headers=tenant.headers()
    )
    assert refused.status_code == 200
    answer = refused.json()
    assert answer["ok"] is False and "answered 401" in answer["vendor_answer"]
    assert "API key" in answer["vendor_answer"] and "wrong-key-0000" not in refused.text
    assert tave.requests  # both went to the sandbox over HTTP
    read_only = await gateway.client.post(
        f"/v1/connections/{good['id']}/test", headers=tenant.headers("read")
    )
    assert read_only.status_code == 403


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 0.5) is None
    assert percentile([7.0], 0.95) == 7.0
    values = [float(v) for v in range(1, 21)]
    assert percentile(values, 0.5) == 10.0 and percentile(values, 0.95) == 19.0
    assert percentile(values, 1.0) == 20.0


async def test_health_is_fast_enough_for_a_dashboard(hub: Hub, tenant: TenantKeys) -> None:
    from journeyhub.health import tenant_health

    for i in range(5):
        await hub.store.connections.create(
            tenant_id=tenant.id,
            vendor="tave",
            name=f"c{i}",
            direction="outbound",
            enabled=True,
            config={},
            credentials={},
            event_types=[],
            field_mappings=[],
            actor="test",
        )
    loop = asyncio.get_running_loop()
    started = loop.time()
    found = await tenant_health(hub, tenant.id)
    assert len(found) == 5 and loop.time() - started < 5
