"""The circuit breaker: shared by workers through the store; tasks wait while it is open."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest
from journeyhub.hub import Hub
from journeyhub.resilience.breaker import Breakers
from journeyhub.testing.fixtures import Gateway, TenantKeys, eventually
from journeyhub.testing.sandbox import Fault

from ..conftest import create_connection, event

if TYPE_CHECKING:
    from journeyhub_tave.sandbox import TaveSandbox


async def test_open_half_open_closed_with_one_probe_across_workers(hub: Hub) -> None:
    a = Breakers(hub.store, holder="worker-a", threshold=3, cooldown=0.5, cache_ttl=0)
    b = Breakers(hub.store, holder="worker-b", threshold=3, cooldown=0.5, cache_ttl=0)
    conn = "con_breaker_1"
    for _ in range(2):
        await a.failure(conn)
    assert (await b.allow(conn)).allowed  # 2 failures: still closed
    await b.failure(conn)  # the third, from another worker
    decision = await a.allow(conn)
    assert not decision.allowed and decision.reason == "circuit open" and decision.wait > 0
    assert (await b.snapshot(conn))["state"] == "open"

    await asyncio.sleep(0.6)
    probe = await a.allow(conn)
    assert probe.allowed and probe.probe
    other = await b.allow(conn)
    assert not other.allowed and "probe" in other.reason  # one probe at a time, across workers

    await a.failure(conn)  # the probe failed: open again
    assert not (await b.allow(conn)).allowed
    await asyncio.sleep(0.6)
    assert (await b.allow(conn)).probe
    await b.success(conn)
    assert (await a.allow(conn)).allowed and (await a.snapshot(conn))["state"] == "closed"


async def test_a_429_pause_holds_every_worker(hub: Hub) -> None:
    a = Breakers(hub.store, holder="a", cache_ttl=0)
    b = Breakers(hub.store, holder="b", cache_ttl=0)
    await a.pause("con_pause", 0.5)
    decision = await b.allow("con_pause")
    assert not decision.allowed and 0 < decision.wait <= 0.5
    await asyncio.sleep(0.6)
    assert (await b.allow("con_pause")).allowed


@pytest.mark.usefixtures("workers")
async def test_tasks_wait_while_the_breaker_is_open_and_none_is_lost(
    gateway: Gateway, tenant: TenantKeys, hub: Hub, tave_sandbox: TaveSandbox
) -> None:
    tave_sandbox.reset()
    connection = await create_connection(
        gateway,
        tenant,
        vendor="tave",
        name="crm",
        direction="outbound",
        config={"api_base": tave_sandbox.api_base},
        credentials={"api_key": tave_sandbox.api_key},
    )
    tave_sandbox.faults.plan(*[Fault(status=503) for _ in range(6)])
    answer = await gateway.client.post(
        "/v1/events",
        json=[event(f"brk-{i}", client_id=f"cl_brk{i}") for i in range(8)],
        headers=tenant.headers("ingest"),
    )
    assert answer.status_code == 202
    probe = Breakers(hub.store, holder="observer", cache_ttl=0)
    await eventually(lambda: _is_open(probe, connection["id"]), timeout=20, interval=0.02)

    async def all_delivered() -> bool:
        rows = await hub.store.deliveries.list(tenant.id, status="delivered")
        return len(rows) == 8

    await eventually(all_delivered, timeout=40)
    assert await hub.store.deliveries.list_dead(tenant.id) == []
    assert (await probe.snapshot(connection["id"]))["state"] == "closed"
    assert len(tave_sandbox.contacts) == 8 and tave_sandbox.creates("address-book") == 8


async def _is_open(breakers: Breakers, connection_id: str) -> bool:
    return (await breakers.snapshot(connection_id))["state"] == "open"
