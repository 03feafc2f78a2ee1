"""A task the bus redelivers while another worker process still pushes it is not pushed twice.

JetStream redelivers a message when its ack wait passes without a heartbeat (the worker's event
loop late, a NATS node gone and the consumer's leader moved). The in-process guard cannot see a
push in another process; the task's hold in the store can.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

import msgspec
import pytest
from journeyhub.delivery.outcomes import Outcome, Recorder
from journeyhub.hub import Hub
from journeyhub.model import Connection, DeliveryTask, JourneyEvent, utcnow
from journeyhub.testing.fixtures import TenantKeys, eventually
from journeyhub.testing.sandbox import Fault
from journeyhub.workers.push import PushWorker
from nats.aio.msg import Msg
from nats.errors import MsgAlreadyAckdError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig

from ..conftest import event

if TYPE_CHECKING:
    from journeyhub_tave.sandbox import TaveSandbox

pytestmark = pytest.mark.plugins  # pushes to the Tave and Resend sandboxes


async def tave_connection(hub: Hub, tenant: TenantKeys, tave: TaveSandbox) -> Connection:
    return await hub.store.connections.create(
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


def task_for(
    tenant: TenantKeys, connection_id: str, client_id: str, vendor: str = "tave"
) -> DeliveryTask:
    """A journey start for ``client_id``, first in its client's order, as the router makes it."""
    journey_event = msgspec.convert(event(f"ev-{client_id}", client_id=client_id), JourneyEvent)
    return DeliveryTask(
        id=f"dlv_{uuid.uuid4().hex[:12]}",
        tenant_id=tenant.id,
        connection_id=connection_id,
        vendor=vendor,
        kind="event",
        order_key=client_id,
        sequence=1,
        event=journey_event,
        enqueued_at=utcnow(),
    )


async def pending(hub: Hub, *tasks: DeliveryTask) -> None:
    """Put the tasks in their clients' order, as the router does before publishing them."""
    await hub.store.run(lambda conn: hub.store.tasks.add(conn, list(tasks)))


async def claimed_by_another(hub: Hub, task_id: str) -> bool:
    """Whether a second worker ("another") can take the task now."""
    until = utcnow() + timedelta(seconds=30)
    claimed = await hub.store.run(
        lambda conn: hub.store.tasks.claim(conn, [task_id], "another", until)
    )
    return task_id in claimed


@dataclass
class OwnStream:
    """A stream of the test's own, with one pull consumer (explicit acks) and no heartbeat."""

    hub: Hub
    name: str
    subject: str
    sub: JetStreamContext.PullSubscription

    async def publish(self, *tasks: DeliveryTask) -> None:
        for task in tasks:
            await self.hub.bus.js.publish(
                self.subject, msgspec.json.encode(task), headers={"Nats-Msg-Id": task.id}
            )

    async def fetch(self, count: int = 1) -> list[Msg]:
        return await self.sub.fetch(count, timeout=5)

    async def settled(self) -> bool:
        """Nothing left to deliver or acknowledge (an ack travels on its own: ask until in)."""
        info = await self.hub.bus.js.consumer_info(self.name, "pusher")
        return info.num_ack_pending == 0 and info.num_pending == 0


@contextlib.asynccontextmanager
async def own_stream(hub: Hub, ack_wait: float = 30) -> AsyncIterator[OwnStream]:
    suffix = uuid.uuid4().hex[:8]
    name, subject = f"JHTEST_HOLDS_{suffix}", f"jhtest.holds.{suffix}"
    await hub.bus.js.add_stream(StreamConfig(name=name, subjects=[subject]))
    try:
        await hub.bus.js.add_consumer(
            name,
            ConsumerConfig(durable_name="pusher", ack_policy=AckPolicy.EXPLICIT, ack_wait=ack_wait),
        )
        sub = await hub.bus.js.pull_subscribe_bind("pusher", name)
        try:
            yield OwnStream(hub, name, subject, sub)
        finally:
            await sub.unsubscribe()
    finally:
        await hub.bus.js.delete_stream(name)


async def holder_of(hub: Hub, task_id: str) -> str | None:
    state = await hub.store.tasks.get(task_id)
    return state.held_by if state is not None else None


async def push_with_a_redelivery(
    hub: Hub, tenant: TenantKeys, *, hold_seconds: float | None = None, second_after: float = 0
) -> TaveSandbox:
    """Push one task whose vendor call answers 3 s late, on a stream of the test's own with a
    1 s ack wait and no heartbeat: the bus redelivers it while the first worker is still in
    the call, and a second worker gets the redelivery ``second_after`` seconds later."""

    from journeyhub_tave.sandbox import TaveSandbox

    with TaveSandbox() as tave:
        connection = await tave_connection(hub, tenant, tave)
        task = task_for(tenant, connection.id, f"cl_hold_{uuid.uuid4().hex[:6]}")
        await pending(hub, task)
        async with own_stream(hub, ack_wait=1) as stream:
            await stream.publish(task)
            tave.faults.plan(Fault(delay=3.0))  # the first call answers 3 s late
            first, second = PushWorker(hub), PushWorker(hub)  # two worker processes
            if hold_seconds is not None:
                first.gate.hold_seconds = second.gate.hold_seconds = hold_seconds
            holds = asyncio.create_task(first.gate.keep_holds())  # as the worker's loop runs it
            (msg,) = await stream.fetch()
            pushing = asyncio.create_task(first.handle_batch([msg]))
            (again,) = await stream.fetch()  # the redelivery, 1 s later
            assert again.metadata.num_delivered == 2
            await asyncio.sleep(second_after)
            await second.handle_batch([again])  # held by the first: put back, not pushed
            await pushing
            holds.cancel()
            await eventually(
                lambda: hub.store.deliveries.list(tenant.id, status="delivered"),
                timeout=10,
            )
            # The first worker's ack settled the message, for both of its deliveries.
            await eventually(stream.settled, timeout=10)
        rows = await hub.store.deliveries.list(tenant.id, status="delivered")
        assert [r.task_id for r in rows] == [task.id]
        return tave


async def test_a_redelivery_during_a_slow_push_is_not_pushed_again(
    hub: Hub, tenant: TenantKeys
) -> None:
    tave = await push_with_a_redelivery(hub, tenant)
    assert tave.creates("address-book") == 1
    assert len(tave.jobs) == 1


async def test_a_push_that_outlasts_its_hold_keeps_it(hub: Hub, tenant: TenantKeys) -> None:
    """A hold of 0.6 s and a vendor call of 3 s: the first worker extends its hold while the
    call lasts, so the redelivery the second worker gets 1.5 s later is still not pushed."""
    tave = await push_with_a_redelivery(hub, tenant, hold_seconds=0.6, second_after=0.5)
    assert tave.creates("address-book") == 1
    assert len(tave.jobs) == 1


async def test_a_dead_lettered_task_redelivered_by_the_bus_is_dropped(
    hub: Hub, tenant: TenantKeys
) -> None:
    """Its "terminate" lost (a NATS leader change), the bus offers a dead task again: the dead
    letter owns it, and pushing it as well could race the dead letter's replay. Another task
    of the same batch is pushed as usual."""

    from journeyhub_tave.sandbox import TaveSandbox

    with TaveSandbox() as tave:
        connection = await tave_connection(hub, tenant, tave)
        dead_task = task_for(tenant, connection.id, "cl_dead_again")
        other_task = task_for(tenant, connection.id, "cl_other")
        await pending(hub, dead_task, other_task)
        await Recorder(hub.store, "a dead worker").record(
            Outcome(task=dead_task, status="dead", attempt=5, error="5 failed attempts")
        )
        async with own_stream(hub) as stream:
            await stream.publish(dead_task, other_task)
            messages = await stream.fetch(2)
            await PushWorker(hub).handle_batch(messages)
            await eventually(stream.settled, timeout=10)  # both acked
        rows = await hub.store.deliveries.list(tenant.id, connection_id=connection.id)
        assert sorted((r.task_id, r.status) for r in rows) == sorted(
            [(dead_task.id, "dead"), (other_task.id, "delivered")]
        )
        assert len(tave.contacts) == 1  # the other task's client only


async def test_a_batching_sender_that_fails_gives_its_tasks_back(
    hub: Hub, tenant: TenantKeys
) -> None:
    """A connection that sends in batches (Resend) queues its tasks for one sender; when the
    sender ends on an error of its own, the batch it leaves must not wait, in progress, for
    ever: its tasks go back to the bus and their holds are given back."""

    from journeyhub_resend.sandbox import ResendSandbox

    with ResendSandbox() as resend:
        connection = await hub.store.connections.create(
            tenant_id=tenant.id,
            vendor="resend",
            name="mail",
            direction="outbound",
            enabled=True,
            credentials={"api_key": resend.api_key},
            config={"api_base": resend.url, "from_address": "Studio <hello@example.com>"},
            event_types=[],
            field_mappings=[],
            actor="test",
        )
        task = task_for(tenant, connection.id, "cl_sender", vendor="resend")
        await pending(hub, task)
        async with own_stream(hub, ack_wait=60) as stream:
            await stream.publish(task)
            worker = PushWorker(hub)

            def broken(*_: object) -> None:
                raise RuntimeError("the sender's own failure")

            worker.limits.limiter = broken  # type: ignore[method-assign]
            (msg,) = await stream.fetch()
            await asyncio.wait_for(worker.handle_batch([msg]), timeout=10)
            # Given back at once (not after the 60 s ack wait), and free for any worker.
            (again,) = await stream.fetch()
            assert again.metadata.num_delivered == 2
            assert await claimed_by_another(hub, task.id)
            await again.ack()
        assert resend.emails == []


async def test_a_batch_that_fails_after_the_gate_gives_its_ready_tasks_back(
    hub: Hub, tenant: TenantKeys
) -> None:
    """Settling a batch's other messages fails (here: one settled already; in production the
    bus closed under the worker): the task the gate made ready in that batch is not pushed,
    and not left held either. Left held, this process would extend its hold for as long as it
    lives, and its client's later tasks would wait behind it for ever."""

    from journeyhub_tave.sandbox import TaveSandbox

    with TaveSandbox() as tave:
        connection = await tave_connection(hub, tenant, tave)
        ready = task_for(tenant, connection.id, "cl_stranded")
        earlier = task_for(tenant, connection.id, "cl_behind")
        later = msgspec.structs.replace(task_for(tenant, connection.id, "cl_behind"), sequence=2)
        await pending(hub, ready, earlier, later)
        async with own_stream(hub) as stream:
            await stream.publish(later, ready)
            waits, goes = await stream.fetch(2)  # ``later`` waits for ``earlier``
            await waits.ack()  # settled already: the worker's nak of it fails
            worker = PushWorker(hub)
            holds = asyncio.create_task(worker.gate.keep_holds())
            try:
                with pytest.raises(MsgAlreadyAckdError):
                    await worker.handle_batch([waits, goes])
                assert worker.gate.in_hand == set()
                assert await holder_of(hub, ready.id) is None
                assert await claimed_by_another(hub, ready.id)
                (again,) = await stream.fetch()  # back on the bus at once, for any worker
                assert msgspec.json.decode(again.data, type=DeliveryTask).id == ready.id
                assert again.metadata.num_delivered == 2
                await again.ack()
            finally:
                holds.cancel()
        assert len(tave.contacts) == 0


async def test_a_task_is_held_until_its_dead_letter_is_written(
    hub: Hub, tenant: TenantKeys
) -> None:
    """A task that fails for good keeps its hold until its dead letter is written (which takes
    it out of the order): given back first, another worker could take a redelivery of it in
    between and push it once more. A second worker claims the task all along; it must never
    get it."""

    from journeyhub_tave.sandbox import TaveSandbox

    with TaveSandbox() as tave:
        connection = await tave_connection(hub, tenant, tave)
        tasks = [task_for(tenant, connection.id, f"cl_die_{n}") for n in range(5)]
        await pending(hub, *tasks)
        async with own_stream(hub) as stream:
            await stream.publish(*tasks)
            worker = PushWorker(hub)
            taken: set[str] = set()
            for task in tasks:
                tave.faults.plan(Fault(status=422))  # refused for good: dead at once
                (msg,) = await stream.fetch()
                pushing = asyncio.create_task(worker.handle_batch([msg]))
                deadline = asyncio.get_running_loop().time() + 10
                while not pushing.done() and await holder_of(hub, task.id) != worker.holder:
                    if asyncio.get_running_loop().time() > deadline:
                        pushing.cancel()
                        pytest.fail(f"the worker did not take {task.id} within 10 s")
                    await asyncio.sleep(0)  # until the worker has the task
                while not pushing.done():
                    if await claimed_by_another(hub, task.id):
                        taken.add(task.id)
                    await asyncio.sleep(0)  # a claim may not wait for anything: let it push
                await pushing
        assert taken == set()
        dead = await hub.store.deliveries.list_dead(tenant.id)
        assert {d.msg_id for d in dead} >= {t.id for t in tasks}
        assert len(tave.contacts) == 0


async def test_a_task_another_worker_delivered_is_acked_not_pushed(
    hub: Hub, tenant: TenantKeys
) -> None:
    """A redelivery of a task another worker has delivered meanwhile (its success and the
    task's state are one write) is acknowledged without a vendor call."""

    from journeyhub_tave.sandbox import TaveSandbox

    with TaveSandbox() as tave:
        connection = await tave_connection(hub, tenant, tave)
        task = task_for(tenant, connection.id, "cl_meanwhile")
        await pending(hub, task)
        await Recorder(hub.store, "another worker").record(
            Outcome(task=task, status="delivered", attempt=1)
        )
        async with own_stream(hub) as stream:
            await stream.publish(task)
            (msg,) = await stream.fetch()
            await PushWorker(hub).handle_batch([msg])
            await eventually(stream.settled, timeout=10)  # acked
        assert sum(tave.requests.values()) == 0
        rows = await hub.store.deliveries.list(tenant.id, connection_id=connection.id)
        assert [r.status for r in rows] == ["delivered"]


async def test_two_messages_of_one_task_in_a_batch_make_one_push(
    hub: Hub, tenant: TenantKeys
) -> None:
    """One task can be on the bus twice (a replay beside its original, a routing repeated
    after the bus's duplicate window): in one fetched batch, only the first is pushed; the
    second comes back later, finds the task delivered and is acked."""

    from journeyhub_tave.sandbox import TaveSandbox

    with TaveSandbox() as tave:
        connection = await tave_connection(hub, tenant, tave)
        task = task_for(tenant, connection.id, "cl_twice")
        await pending(hub, task)
        async with own_stream(hub) as stream:
            for msg_id in (task.id, f"{task.id}:replay:1"):
                await hub.bus.js.publish(
                    stream.subject, msgspec.json.encode(task), headers={"Nats-Msg-Id": msg_id}
                )
            worker = PushWorker(hub)
            await worker.handle_batch(await stream.fetch(2))
            pushes = await hub.store.deliveries.list(tenant.id, connection_id=connection.id)
            assert len(pushes) == 1  # the second message was not pushed after the first
            (again,) = await stream.fetch()  # the second, given back
            await worker.handle_batch([again])
            await eventually(stream.settled, timeout=10)
        assert tave.requests["POST /api/v2/address-book"] == 1
        rows = await hub.store.deliveries.list(tenant.id, connection_id=connection.id)
        assert [r.status for r in rows] == ["delivered"]
