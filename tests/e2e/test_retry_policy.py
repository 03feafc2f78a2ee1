"""Retries that outlast an outage: a connection's retry policy (``config.retry``), kept in the
bus, against the Tave sandbox over real HTTP and a real nats-server.

The outage is "20 minutes" on the default policy compressed 120 times: 10 s of a vendor
answering 503 to everything, under waits of 0.04 s, 0.25 s, 1 s, 5 s, 15 s, 30 s, … The
deployment's default in the test hub (4 attempts, 1-4 s apart) dead-letters in such an outage.
"""

from __future__ import annotations

import asyncio
import html
import re
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pytest
from journeyhub.hub import Hub
from journeyhub.model import utcnow
from journeyhub.testing.fixtures import Gateway, TenantKeys, eventually
from journeyhub.testing.sandbox import Fault

from ..conftest import create_connection, event
from .test_dashboard import signed_in

if TYPE_CHECKING:
    from journeyhub_tave.sandbox import TaveSandbox

# The default policy (5 s, 30 s, 2 min, 10 min, 30 min, 1 h, 3 h, 6 h), 120 times faster.
COMPRESSED = {
    "schedule": ["0.04s", "0.25s", "1s", "5s", "15s", "30s", "90s", "180s"],
    "jitter": 0.2,
}
OUTAGE = 10.0  # 20 minutes at that speed


async def tave_connection(
    gateway: Gateway, tenant: TenantKeys, tave: TaveSandbox, retry: dict[str, Any]
) -> dict[str, Any]:
    return await create_connection(
        gateway,
        tenant,
        vendor="tave",
        name="crm",
        direction="outbound",
        config={"api_base": tave.api_base, "retry": retry},
        credentials={"api_key": tave.api_key},
    )


async def send(gateway: Gateway, tenant: TenantKeys, body: Any) -> None:
    answer = await gateway.client.post("/v1/events", json=body, headers=tenant.headers("ingest"))
    assert answer.status_code == 202, answer.text


async def health(gateway: Gateway, tenant: TenantKeys, connection_id: str) -> dict[str, Any]:
    answer = await gateway.client.get(
        f"/v1/connections/{connection_id}/health", headers=tenant.headers("read")
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


class Workers:
    """The hub's workers in this process, stopped and started again at will."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        from journeyhub.workers.runner import run_workers

        self.stop = asyncio.Event()
        self.task = asyncio.create_task(run_workers(self.hub, self.stop))

    async def halt(self) -> None:
        self.stop.set()
        if self.task is not None:
            await asyncio.wait_for(self.task, 15)


async def test_a_vendor_down_for_20_minutes_loses_nothing_and_dead_letters_nothing(
    gateway: Gateway, tenant: TenantKeys, hub: Hub, tave_sandbox: TaveSandbox
) -> None:
    """Half-way through the outage the workers stop and start again: the waits are in the
    bus and the failures in the store, so the retries go on where they were."""
    workers = Workers(hub)
    workers.start()
    try:
        await _outage(gateway, tenant, hub, tave_sandbox, workers)
    finally:
        await workers.halt()


async def _outage(
    gateway: Gateway, tenant: TenantKeys, hub: Hub, tave: TaveSandbox, workers: Workers
) -> None:
    tave.reset()
    connection = await tave_connection(gateway, tenant, tave, COMPRESSED)
    tave.faults.chaos(1.0, Fault(status=503))  # down: every call answered 503
    down_at, down_at_wall = asyncio.get_running_loop().time(), utcnow()
    batch = []
    for client in ("cl_out_a", "cl_out_b"):
        batch.append(event(f"out-start-{client}", client_id=client))
        batch.append(
            event(
                f"out-step-{client}",
                "step_completed",
                client_id=client,
                step={"name": "contract signed", "type": "task"},
            )
        )
    await send(gateway, tenant, batch)

    async def waiting_for_a_later_retry() -> bool:
        found = (await health(gateway, tenant, connection["id"]))["next_retry_at"]
        return found is not None and datetime.fromisoformat(found) > utcnow()

    # The oldest waiting task's retry, still to come (or the breaker's reopening, if later).
    await eventually(waiting_for_a_later_retry, timeout=OUTAGE / 2)
    # The connection's page says when, to whoever looks (while a task waits for its retry,
    # not while every task is being tried again: at this speed, asked until seen).
    client = await signed_in(gateway, tenant.admin_key)

    async def next_retry_shown() -> re.Match[str] | None:
        page = (await client.get(f"/connections/{connection['id']}")).text
        return re.search(r'data-next-retry="([^"]+)">next retry <time', page)

    try:
        shown = await eventually(next_retry_shown, timeout=OUTAGE / 4, interval=0.05)
    finally:
        await client.aclose()
    assert datetime.fromisoformat(html.unescape(shown[1])) > down_at_wall
    await workers.halt()
    workers.start()
    await asyncio.sleep(max(0.0, down_at + OUTAGE - asyncio.get_running_loop().time()))
    failed_during = await hub.store.deliveries.list(tenant.id, status="failed", limit=1000)
    assert len(failed_during) >= 6  # tried again and again while it was down
    assert await hub.store.deliveries.list_dead(tenant.id) == []
    tave.faults.clear()  # back up

    async def all_delivered() -> list[Any] | None:
        rows = await hub.store.deliveries.list(tenant.id, status="delivered", limit=1000)
        return rows if len(rows) >= len(batch) else None

    rows = await eventually(all_delivered, timeout=60, interval=0.2)
    await asyncio.sleep(0.5)  # a second delivery of any task would show by now
    rows = await hub.store.deliveries.list(tenant.id, status="delivered", limit=1000)
    assert len(rows) == len({row.task_id for row in rows}) == len(batch)  # each once
    assert await hub.store.deliveries.list_dead(tenant.id) == []
    assert len(tave.contacts) == 2 and tave.creates("address-book") == 2
    assert len(tave.notes) == 2
    after = await health(gateway, tenant, connection["id"])
    assert after["next_retry_at"] is None and after["pending_deliveries"] == 0


@pytest.mark.usefixtures("workers")
async def test_a_policy_of_n_attempts_dead_letters_after_exactly_n(
    gateway: Gateway, tenant: TenantKeys, hub: Hub, tave_sandbox: TaveSandbox
) -> None:
    tave = tave_sandbox
    tave.reset()
    # Six: more than the test hub's default of four, and past the breaker's threshold of five.
    policy = {"schedule": ["0.1s"], "attempts": 6, "jitter": 0}
    connection = await tave_connection(gateway, tenant, tave, policy)
    tave.faults.chaos(1.0, Fault(status=503))
    try:
        await send(gateway, tenant, event("n-attempts", client_id="cl_n"))
        dead = await eventually(
            lambda: hub.store.deliveries.list_dead(tenant.id), timeout=30, interval=0.1
        )
    finally:
        tave.faults.clear()
    assert len(dead) == 1 and dead[0].attempts == 6 and "6 failed attempts" in dead[0].error
    rows = await hub.store.deliveries.list(tenant.id, connection_id=connection["id"], limit=100)
    assert sorted(row.status for row in rows) == ["dead"] + ["failed"] * 5
    assert sorted(row.attempt for row in rows) == [1, 2, 3, 4, 5, 6]
    assert (await health(gateway, tenant, connection["id"]))["next_retry_at"] is None


@pytest.mark.parametrize(
    ("retry", "field"),
    [
        ({"schedule": ["5s", "5 fortnights"]}, "$.config.retry.schedule[1]"),
        ({"attempts": 0}, "$.config.retry.attempts"),
        ({"jitter": 1.5}, "$.config.retry.jitter"),
        ({"retries": 3}, "$.config.retry.retries"),
        ({"schedule": ["1d"], "attempts": 10}, "$.config.retry"),
        ("5s,30s", "$.config.retry"),
    ],
)
async def test_a_bad_policy_is_refused_with_422_naming_the_field(
    gateway: Gateway, tenant: TenantKeys, tave_sandbox: TaveSandbox, retry: Any, field: str
) -> None:
    body = {
        "vendor": "tave",
        "name": "crm",
        "direction": "outbound",
        "config": {"api_base": tave_sandbox.api_base, "retry": retry},
        "credentials": {"api_key": tave_sandbox.api_key},
    }
    answer = await gateway.client.post("/v1/connections", json=body, headers=tenant.headers())
    assert answer.status_code == 422, answer.text
    assert [e["field"] for e in answer.json()["extra"]["errors"]] == [field]
    good = await tave_connection(gateway, tenant, tave_sandbox, {"attempts": 3})
    patched = await gateway.client.patch(
        f"/v1/connections/{good['id']}",
        json={"config": {"api_base": tave_sandbox.api_base, "retry": retry}},
        headers=tenant.headers(),
    )
    assert patched.status_code == 422, patched.text
    assert patched.json()["extra"]["errors"][0]["field"] == field
