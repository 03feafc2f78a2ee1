"""One router at a time per stream, across processes: a router that lost its lease cannot
commit, and the router that takes over first waits for its predecessor's messages, so every
client's tasks enter the order in the order of their events."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import msgspec
import pytest
import pytest_asyncio
from journeyhub.hub import Hub
from journeyhub.model import utcnow
from journeyhub.settings import Settings
from journeyhub.store.tables import Lease, TaskRow
from journeyhub.testing.fixtures import TenantKeys, eventually
from journeyhub.workers.router import EVENTS, LeaseLost, Router
from sqlalchemy import select, update

from ..conftest import event

ACK_WAIT = 2


@pytest_asyncio.fixture
async def own_hub(hub: Hub, hub_settings: Settings) -> AsyncIterator[Hub]:
    """A hub on the test store and bus with streams of its own (its own subject prefix) and
    a short ack wait, so its routers are the only ones on its events."""
    prefix = f"jhr{uuid.uuid4().hex[:6]}"
    settings = msgspec.structs.replace(
        hub_settings, subject_prefix=prefix, ack_wait_seconds=ACK_WAIT
    )
    started = await Hub.start(settings, run_migrations=False)
    yield started
    for kind in ("inbound", "events", "push", "triggers", "dlq"):
        await started.bus.js.delete_stream(started.bus.subjects.stream(kind))
    await started.close()


async def routed(hub: Hub, connection_id: str) -> list[tuple[str, int]]:
    """(client, sequence) of the tasks routed to the connection, in the order they entered."""
    async with hub.store.session() as s:
        rows = (
            await s.execute(
                select(TaskRow.order_key, TaskRow.sequence)
                .where(TaskRow.connection_id == connection_id)
                .order_by(TaskRow.created_at, TaskRow.sequence)
            )
        ).all()
    return [(key, int(seq)) for key, seq in rows]


@pytest.mark.plugins  # a Tave connection
async def test_a_stalled_router_cannot_commit_and_its_successor_keeps_the_order(
    own_hub: Hub, tenant: TenantKeys
) -> None:
    from journeyhub_tave.sandbox import TaveSandbox

    hub = own_hub
    with TaveSandbox() as tave:
        connection = await hub.store.connections.create(
            tenant_id=tenant.id,
            vendor="tave",
            name="crm",
            direction="outbound",
            enabled=True,
            config={"api_base": tave.api_base},
            credentials={"api_key": tave.api_key},
            event_types=[],
            field_mappings=[],
            actor="test",
        )
        bodies = [event("lease-1", client_id="cl_lease")] + [
            event(
                f"lease-{n}",
                "step_completed",
                client_id="cl_lease",
                step={"name": f"step {n}", "type": "task"},
            )
            for n in range(2, 5)
        ]
        for body in bodies:
            await hub.bus.publish(
                hub.bus.subjects.events(tenant.id),
                msgspec.json.encode(body),
                msg_id=f"{tenant.id}:{body['id']}",
            )

        # Router A takes the lease and a batch holding the client's first event, then stalls.
        a = Router(hub, EVENTS)
        assert await hub.store.leases.claim(a.lease, a.holder, 30)
        sub = await hub.bus.pull(EVENTS.durable, EVENTS.kind, batch=1)
        held = await sub.take(1, 5)
        async with hub.store.session() as s:  # its stall outlasts its lease
            await s.execute(
                update(Lease)
                .where(Lease.name == a.lease)
                .values(expires_at=utcnow() - timedelta(seconds=1))
            )

        # Router B takes over: it waits for A's message to be offered again, then routes all.
        b = Router(hub, EVENTS)
        stop = asyncio.Event()
        routing = asyncio.create_task(b.run(stop))
        await eventually(lambda: lease_holder(hub, a.lease, b.holder), timeout=10)
        with pytest.raises(LeaseLost):  # A wakes up: its transaction is refused
            await a.route_batch(held)
        await sub.close()
        got = await eventually(
            lambda: routed_all(hub, connection.id, len(bodies)), timeout=ACK_WAIT * 8
        )
        stop.set()
        await routing
    assert [seq for _, seq in got] == sorted(seq for _, seq in got)  # in event order
    assert len(got) == len(bodies)  # each once


async def lease_holder(hub: Hub, name: str, holder: str) -> bool:
    async with hub.store.session() as s:
        row = await s.get(Lease, name)
        return row is not None and row.holder == holder


async def routed_all(hub: Hub, connection_id: str, count: int) -> list[tuple[str, int]] | None:
    got = await routed(hub, connection_id)
    return got if len(got) >= count else None
