"""The push worker: delivery tasks → the vendor plugin's ``push`` (or ``push_batch``).

For each task, in this order:
1. already delivered (a replay, a redelivery after a crash) → acknowledged, not pushed again;
2. an earlier task for the same client on this connection still pending → wait in the bus;
3. the connection's circuit breaker open or a 429 pause in force → wait in the bus;
4. the rate limiter, then the vendor call with the task id as idempotency key;
5. every attempt is recorded; success acks, a retryable failure is redelivered with backoff and
   jitter by the bus (so it survives a crash), a permanent one or too many failures go to the
   dead letters.
Waiting (order, breaker, 429) does not count as a failed attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import httpx
import msgspec
from nats.aio.msg import Msg

from journeyhub import metrics
from journeyhub.errors import (
    AuthExpired,
    ConnectorError,
    PermanentError,
    RateLimited,
    ReauthRequired,
)
from journeyhub.hub import Hub
from journeyhub.logs import correlation_scope, get_logger
from journeyhub.mapping import apply_mappings, merge_defaults
from journeyhub.model import Connection, ConnectorInfo, DeliveryTask, PushResult, stable_id, utcnow
from journeyhub.resilience.breaker import Breakers
from journeyhub.resilience.limits import RateLimits
from journeyhub.workers.consumer import backoff_delay, consume, settle_all
from journeyhub.workers.deadletter import dead_letter

log = get_logger(__name__)
ORDER_WAIT = 0.3  # seconds before a held-back task is offered again, the first time
ORDER_WAIT_MAX = 5.0  # ... about doubling each time it is held back again, up to this
REAUTH_WAIT = 300.0
# Which router's consumer makes the tasks of each kind: (stream kind, durable).
ROUTERS = {"event": ("events", "router"), "trigger": ("triggers", "trigger-router")}
# How many deliveries a task waits for the routers to catch up (about 20 s in all). The floor
# is global: one event the router cannot route yet (its store down, say) would otherwise hold
# every tenant's pushes back; after this the task goes on, as it did before the floor check.
ROUTED_PATIENCE = 7


# A call that timed out after it was sent may still be carried out by the vendor, later. Its
# retry waits at least this long, so the retry's lookups (Tave finds a contact by email, a job
# by our id) see the late write instead of making a second one. With the usual 0.5-1 s first
# backoff, the chaos run's "timeout" fault (the vendor answers 0.5 s after the client gave up,
# and does the work) can make a second Tave job: the likely cause of the one in 10,000 events.
OUTCOME_UNKNOWN_WAIT = 5.0


def outcome_unknown(exc: BaseException) -> bool:
    """True when the vendor may have carried the failed call out: the request was sent and
    no answer came in time. A connect or pool timeout never reached the vendor."""
    cause = exc.__cause__ if isinstance(exc, ConnectorError) else exc
    return isinstance(cause, httpx.ReadTimeout | httpx.WriteTimeout)


def order_wait(msg: Msg) -> float:
    """How long a task held back behind an earlier one of its client waits in the bus.

    It doubles with every delivery of the task (0.3 s, then 0.3-0.6 s, … up to 2.5-5 s, with
    jitter). A fixed 0.3 s made every held-back task come back every 0.3 s: with a backlog
    (thousands of later steps behind first events that a failing vendor keeps in backoff)
    those redeliveries took the whole worker and starved the very tasks they waited for."""
    held = max(0, (msg.metadata.num_delivered or 1) - 1)
    if held == 0:
        return ORDER_WAIT
    ceiling = min(ORDER_WAIT_MAX, ORDER_WAIT * 2 ** min(held, 10))
    return random.uniform(ceiling / 2, ceiling)


@dataclass
class Job:
    msg: Msg
    task: DeliveryTask
    connection: Connection
    credentials: dict[str, Any]
    info: ConnectorInfo


def recipients(task: DeliveryTask) -> list[str]:
    found: list[str] = []
    if task.event is not None and task.event.client.email:
        found.append(task.event.client.email)
    for key in ("to", "cc", "bcc"):
        value = task.mapped.get(key)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and "@" in item:
                found.append(item)
    return found


class PushWorker:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.holder = f"{os.uname().nodename}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.breakers = Breakers(
            hub.store,
            holder=self.holder,
            threshold=hub.settings.breaker_threshold,
            cooldown=hub.settings.breaker_cooldown_seconds,
        )
        self.limits = RateLimits()
        self.semaphore = asyncio.Semaphore(64)
        # Batching connections: jobs waiting for the next vendor call, and its sender.
        self.queues: dict[str, list[tuple[Job, asyncio.Future[None]]]] = {}
        # Tasks this process holds now: a redelivery of one (the bus gave up waiting for it)
        # must not be pushed beside the first, under another batch's idempotency key.
        self.in_hand: set[str] = set()
        # How long a task stays held by this process once taken (see ``deliveries.hold``):
        # longer than a push takes; a task of a killed worker waits this long for its retry.
        self.hold_seconds = max(30.0, 2.0 * hub.settings.ack_wait_seconds)
        self.routed: dict[str, int] = {}  # kind -> routed up to this bus sequence
        self.senders: dict[str, asyncio.Task[None]] = {}

    # --- per batch ------------------------------------------------------------------------------

    async def handle_batch(self, messages: list[Msg]) -> None:
        decoded: list[tuple[Msg, DeliveryTask]] = []
        held: set[str] = set()
        for msg in messages:
            task = await self.decode(msg)
            if task is None:
                continue
            if task.id in self.in_hand or task.id in held:
                # Already being pushed here, or twice in this batch (two messages of one task:
                # a replay beside its original, say): the first settles the task, and this one
                # comes back to find it delivered.
                await msg.nak(delay=max(1.0, self.hub.settings.ack_wait_seconds / 2))
                continue
            decoded.append((msg, task))
            held.add(task.id)
        self.in_hand |= held
        try:
            await self._handle_decoded(decoded)
        finally:
            self.in_hand -= held

    async def _handle_decoded(self, decoded: list[tuple[Msg, DeliveryTask]]) -> None:
        # Two queries for the whole batch, not two per task: what is already delivered, and
        # the earliest pending task of every client in it.
        deliveries = self.hub.store.deliveries
        done = await deliveries.delivered_among([t.id for _, t in decoded])
        earliest = await deliveries.earliest_pending(
            [(t.connection_id, t.order_key) for _, t in decoded]
        )
        self.routed = await self.routed_floors()
        jobs: list[Job] = []
        for msg, task in decoded:
            with self.scope(task):
                job = await self.check(msg, task, task.id in done, earliest)
            if job is not None:
                jobs.append(job)
        # Across processes: the bus may redeliver a task while another worker still pushes
        # it (its heartbeat late, a NATS node gone); the task's hold in the store says so.
        held, finished = await deliveries.hold(
            [j.task.id for j in jobs], self.holder, self.hold_seconds
        )
        # No pending row: maybe delivered by another worker since the check above (its success
        # and the row's removal are one write). Pushed again, it would run beside nothing but
        # still be a second call at the vendor.
        out_of_order = [j for j in jobs if j.task.id in finished]
        done_meanwhile = await deliveries.delivered_among([j.task.id for j in out_of_order])
        dead = await self.dead_and_offered_again(
            [j for j in out_of_order if j.task.id not in done_meanwhile]
        )
        by_connection: dict[str, list[Job]] = defaultdict(list)
        for job in jobs:
            if job.task.id in done_meanwhile:
                await job.msg.ack()
            elif job.task.id in dead:
                # This very message is a dead letter not replayed yet: the bus offers it again
                # (its "terminate" lost to a NATS leader change). The dead letter owns it;
                # pushing it too could race the dead letter's replay.
                with self.scope(job.task):
                    log.warning("dead_lettered_task_offered_again_dropped")
                await job.msg.ack()
            elif job.task.id in held or job.task.id in finished:
                # (out of the order and not a dead letter: pushed unguarded, as before holds)
                by_connection[job.connection.id].append(job)
            else:
                with self.scope(job.task):
                    log.info("task_held_by_another_worker")
                await job.msg.nak(delay=max(1.0, self.hub.settings.ack_wait_seconds / 2))
        pushing = [j for js in by_connection.values() for j in js]
        keep_held = asyncio.create_task(self.keep_held(pushing))
        try:
            await settle_all(*(self.run_connection(jobs) for jobs in by_connection.values()))
        finally:
            keep_held.cancel()

    async def keep_held(self, jobs: list[Job]) -> None:
        """Extend the holds of the batch's tasks not settled yet, every third of a hold, so a
        push that outlasts its hold (queued behind the rate limiter in a loaded worker) is not
        taken by a second worker when the bus redelivers it. The chaos runs duplicated a
        vendor call that way. If this process dies the beats stop and the holds expire."""
        deliveries = self.hub.store.deliveries
        while True:
            await asyncio.sleep(self.hold_seconds / 3)
            unsettled = [j.task.id for j in jobs if not j.msg.is_acked]
            with contextlib.suppress(Exception):  # the store away: the next beat will do
                await deliveries.extend_holds(unsettled, self.holder, self.hold_seconds)

    async def dead_and_offered_again(self, jobs: list[Job]) -> set[str]:
        """The task ids among ``jobs`` whose message is stored as a dead letter, unreplayed."""
        by_connection: dict[str, dict[str, str]] = defaultdict(dict)
        for job in jobs:
            msg_id = (job.msg.headers or {}).get("Nats-Msg-Id", "")
            by_connection[job.connection.id][msg_id] = job.task.id
        dead: set[str] = set()
        for connection_id, tasks in by_connection.items():
            found = await self.hub.store.deliveries.dead_unreplayed(connection_id, list(tasks))
            dead |= {tasks[msg_id] for msg_id in found}
        return dead

    async def routed_floors(self) -> dict[str, int]:
        """For events and triggers: the bus sequence up to which every message is routed (the
        router's ack floor). The order gate holds a task back while an earlier task of its
        client is pending, which needs that earlier task to be routed already; with several
        workers, two routers take different batches of one stream, and a client's step could
        be routed, and pushed, before its start was routed at all: both then created the
        client's contact and job at the vendor. So a task waits until every message before
        its own is routed. Unknown (the bus not answering): no wait, as before."""
        floors: dict[str, int] = {}
        for kind, (stream_kind, durable) in ROUTERS.items():
            try:
                stream = self.hub.bus.subjects.stream(stream_kind)
                info = await asyncio.wait_for(
                    self.hub.bus.js.consumer_info(stream, durable), timeout=2.0
                )
            except Exception as exc:
                log.warning("routed_floor_unknown", durable=durable, error=repr(exc))
                continue
            floors[kind] = info.ack_floor.stream_seq if info.ack_floor else 0
        return floors

    async def decode(self, msg: Msg) -> DeliveryTask | None:
        """The task in ``msg``; an undecodable one goes to the dead letters."""
        try:
            return msgspec.json.decode(msg.data, type=DeliveryTask)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            with correlation_scope((msg.headers or {}).get("Journeyhub-Correlation-Id")):
                await dead_letter(
                    self.hub,
                    msg,
                    tenant_id="-",
                    connection_id=msg.subject.rsplit(".", 1)[-1],
                    vendor="-",
                    stage="push",
                    error=f"undecodable task: {exc}",
                    attempts=1,
                )
            return None

    @staticmethod
    def scope(task: DeliveryTask) -> Any:
        """Log lines about ``task`` carry its correlation id (the event's or webhook's)."""
        return correlation_scope(
            task.correlation_id or task.id,
            task_id=task.id,
            connection_id=task.connection_id,
            vendor=task.vendor,
        )

    async def check(
        self,
        msg: Msg,
        task: DeliveryTask,
        delivered: bool,
        earliest: dict[tuple[str, str], int],
    ) -> Job | None:
        """Decide what to do with a task now; None when it was settled here (acked, held
        back, dead-lettered)."""
        entry = await self.hub.connections.get(task.connection_id)
        if entry is None or not entry[0].enabled:
            log.info("task_for_missing_or_disabled_connection", task_id=task.id)
            await self.hub.store.deliveries.finish_pending(task.id)
            await msg.ack()
            return None
        connection, credentials = entry
        if delivered:  # a replay, or a redelivery after a crash: never twice at the vendor
            await self.hub.store.deliveries.finish_pending(task.id)
            await msg.ack()
            return None
        first = earliest.get((task.connection_id, task.order_key))
        if first is not None and first < task.sequence:
            await msg.nak(delay=order_wait(msg))  # an earlier task for this client is unfinished
            return None
        floor = self.routed.get(task.kind)
        if (
            floor is not None
            and task.sequence > floor + 1
            and (msg.metadata.num_delivered or 1) <= ROUTED_PATIENCE
        ):
            # An earlier event (or trigger) is not routed yet: its task, maybe for this same
            # client, has no pending row to hold this one back (see ``routed_floors``).
            await msg.nak(delay=order_wait(msg))
            return None
        if connection.status == "needs_reauth":
            await msg.nak(delay=REAUTH_WAIT)
            return None
        decision = await self.breakers.allow(connection.id)
        if not decision.allowed:
            await msg.nak(delay=max(0.2, decision.wait))
            return None
        loaded = self.hub.registry.connectors.get(connection.vendor)
        if loaded is None:
            await msg.nak(delay=30)  # the plugin is not installed here: another worker may have it
            return None
        if task.event is not None:
            mappings = merge_defaults(loaded.info.default_field_mappings, connection.field_mappings)
            try:
                task.mapped = apply_mappings(mappings, task.event)
            except (ValueError, TypeError) as exc:
                await self.fail(
                    msg, task, connection, PermanentError(f"field mapping failed: {exc}"), 0.0
                )
                return None
        return Job(msg, task, connection, credentials, loaded.info)

    async def run_connection(self, jobs: list[Job]) -> None:
        """Push one connection's jobs: in batches where the plugin can, one client at a time."""
        first = jobs[0]
        batched = first.info.max_batch > 1 and self.hub.registry.implements(
            first.connection.vendor, "journeyhub_push_batch"
        )
        if batched:
            await self.coalesce(jobs)
            return
        by_client: dict[str, list[Job]] = defaultdict(list)
        for job in jobs:
            by_client[job.task.order_key].append(job)

        async def client_in_order(client_jobs: list[Job]) -> None:
            for index, job in enumerate(client_jobs):
                if not await self.push_one(job):
                    for later in client_jobs[index + 1 :]:
                        await self.hub.store.deliveries.release(later.task.id, self.holder)
                        await later.msg.nak(delay=order_wait(later.msg))
                    return

        await settle_all(*(client_in_order(js) for js in by_client.values()))

    async def coalesce(self, jobs: list[Job]) -> None:
        """Queue jobs for a connection that pushes in batches, and wait until they are settled.

        One sender per connection takes up to ``max_batch`` queued jobs per vendor call, after
        waiting for the rate limiter: while it waits, the jobs of further fetches pile up, so a
        throttled vendor gets full batches (10,000 emails in 100 calls, not thousands of
        small ones). One task per client per call keeps per-client order."""
        connection_id = jobs[0].connection.id
        loop = asyncio.get_running_loop()
        waiting = [(job, loop.create_future()) for job in jobs]
        self.queues.setdefault(connection_id, []).extend(waiting)
        sender = self.senders.get(connection_id)
        if sender is None or sender.done():
            self.senders[connection_id] = asyncio.create_task(self.send_queued(connection_id))
        await asyncio.gather(*(future for _, future in waiting))

    async def send_queued(self, connection_id: str) -> None:
        queue = self.queues[connection_id]
        try:
            await self._send_queued(queue, connection_id)
        except Exception as exc:  # nobody awaits a sender: say it here
            log.error("batch_sender_failed", connection_id=connection_id, error=repr(exc))
        finally:
            # Never leave a waiter behind (its batch would wait, in progress, forever): what
            # is still queued when the sender ends on an error is given back to the bus.
            for job, future in list(queue):
                if future.done():
                    continue
                queue.remove((job, future))
                with contextlib.suppress(Exception):  # else its hold expires, its ack wait ends
                    await self.hub.store.deliveries.release(job.task.id, self.holder)
                    await job.msg.nak(delay=order_wait(job.msg))
                future.set_result(None)

    async def _send_queued(
        self, queue: list[tuple[Job, asyncio.Future[None]]], connection_id: str
    ) -> None:
        while queue:
            first = queue[0][0]
            try:
                decision = await self.breakers.allow(connection_id)
            except Exception as exc:  # the store away for a moment (a restart): try again
                log.warning("breaker_unknown_will_retry", error=repr(exc))
                await asyncio.sleep(1.0)
                continue
            if not decision.allowed:  # a 429's Retry-After or an open breaker: the queue waits
                await asyncio.sleep(min(max(decision.wait, 0.2), 30.0))
                continue
            limiter = self.limits.limiter(first.connection, first.info)
            if limiter is not None:
                await limiter.acquire()  # meanwhile more jobs join the queue
            batch: list[tuple[Job, asyncio.Future[None]]] = []
            clients: set[str] = set()
            for item in list(queue):
                if len(batch) >= first.info.max_batch:
                    break
                if item[0].task.order_key in clients:
                    continue  # the client's later task goes in a later call
                clients.add(item[0].task.order_key)
                batch.append(item)
                queue.remove(item)
            try:
                await self.push_batch([job for job, _ in batch], limited=False)
            except Exception as exc:  # settled as failures by push_batch; never leave waiters
                log.error("batch_send_failed", error=repr(exc))
            finally:
                for _, future in batch:
                    if not future.done():
                        future.set_result(None)

    # --- vendor calls ------------------------------------------------------------------------------

    async def credentials_for(self, job: Job, refused: bool = False) -> dict[str, Any]:
        return await self.hub.auth.credentials(job.connection, job.credentials, refused=refused)

    async def call_push(self, job: Job, hook: str, **kwargs: Any) -> Any:
        """Call the plugin; after a 401, refresh the credentials once and call again."""
        credentials = await self.credentials_for(job)
        try:
            return await self.hub.registry.call(
                job.connection.vendor, hook, connection=job.connection, credentials=credentials,
                http=self.hub.http, **kwargs,
            )  # fmt: skip
        except AuthExpired:
            if not self.hub.registry.implements(job.connection.vendor, "journeyhub_authenticate"):
                raise
            credentials = await self.credentials_for(job, refused=True)
            return await self.hub.registry.call(
                job.connection.vendor, hook, connection=job.connection, credentials=credentials,
                http=self.hub.http, **kwargs,
            )  # fmt: skip

    async def suppressed(self, tenant_id: str, tasks: list[DeliveryTask]) -> frozenset[str]:
        emails = [e for t in tasks for e in recipients(t)]
        if not emails:
            return frozenset()
        return frozenset(await self.hub.store.triggers.suppressed(tenant_id, emails))

    async def push_one(self, job: Job, limited: bool = True) -> bool:
        """Push one task; True when it is settled as delivered."""
        with self.scope(job.task):
            return await self._push_one(job, limited)

    async def _push_one(self, job: Job, limited: bool = True) -> bool:
        task, connection = job.task, job.connection
        started = time.perf_counter()
        try:
            suppressed = await self.suppressed(task.tenant_id, [task])
            # The vendor's rate is waited for outside the concurrency slots, so a throttled
            # connection never holds slots that other connections could use; and right
            # before the call, so calls are spaced as the limiter meant them to be.
            limiter = self.limits.limiter(connection, job.info) if limited else None
            if limiter is not None:
                await limiter.acquire()
            async with self.semaphore:
                started = time.perf_counter()
                result = await self.call_push(
                    job, "journeyhub_push", task=task, idempotency_key=task.idempotency_key,
                    suppressed=suppressed,
                )  # fmt: skip
        except Exception as exc:
            await self.fail(job.msg, task, connection, exc, time.perf_counter() - started)
            return False
        await self.succeed(job, result, time.perf_counter() - started)
        return True

    async def push_batch(self, jobs: list[Job], limited: bool = True) -> None:
        if len(jobs) == 1:
            await self.push_one(jobs[0], limited=limited)
            return
        # One call for several tasks: its lines carry every task's correlation id.
        ids = sorted({j.task.correlation_id or j.task.id for j in jobs})
        with correlation_scope(None, correlation_ids=ids, connection_id=jobs[0].connection.id):
            await self._push_batch(jobs, limited)

    async def _push_batch(self, jobs: list[Job], limited: bool = True) -> None:
        first = jobs[0]
        connection = first.connection
        tasks = [j.task for j in jobs]
        key = stable_id("batch", *sorted(t.id for t in tasks))
        started = time.perf_counter()
        try:
            suppressed = await self.suppressed(first.task.tenant_id, tasks)
            limiter = self.limits.limiter(connection, first.info) if limited else None
            if limiter is not None:  # outside the slots and right before the call, as above
                await limiter.acquire()
            async with self.semaphore:
                started = time.perf_counter()
                results = await self.call_push(
                    first, "journeyhub_push_batch", tasks=tasks, idempotency_key=key,
                    suppressed=suppressed,
                )  # fmt: skip
            if len(results) != len(jobs):
                raise PermanentError(
                    f"push_batch returned {len(results)} results for {len(jobs)} tasks"
                )
        except Exception as exc:
            elapsed = time.perf_counter() - started
            await settle_all(*(self.fail(j.msg, j.task, connection, exc, elapsed) for j in jobs))
            return
        elapsed = time.perf_counter() - started
        for job, result in zip(jobs, results, strict=True):
            if isinstance(result, Exception):
                await self.fail(job.msg, job.task, connection, result, elapsed)
            else:
                await self.succeed(job, result, elapsed)

    # --- outcomes ---------------------------------------------------------------------------------

    async def succeed(self, job: Job, result: PushResult, elapsed: float) -> None:
        with self.scope(job.task):
            await self._succeed(job, result, elapsed)

    async def _succeed(self, job: Job, result: PushResult, elapsed: float) -> None:
        task, connection = job.task, job.connection
        status = "skipped" if result.status == "skipped" else "delivered"
        for record in result.records:  # what we wrote, so the sync knows its own echo
            await self.hub.store.sync.link(
                connection.id, record.kind, record.vendor_id, our_id=record.our_id,
                email=record.email, pushed_fields=record.fields, pushed_at=utcnow(),
            )  # fmt: skip
        # The attempt and the release of the client's next task, in one transaction.
        await self.hub.store.deliveries.record_success(
            task.id, tenant_id=task.tenant_id, connection_id=connection.id,
            vendor=connection.vendor, source_id=self.source_id(task),
            attempt=job.msg.metadata.num_delivered or 1, status=status,
            vendor_status=result.vendor_status, latency_ms=elapsed * 1000,
            external_ids=result.external_ids or None, error=result.detail if status == "skipped" else None,
            correlation_id=task.correlation_id,
        )  # fmt: skip
        await self.breakers.success(connection.id)
        await job.msg.ack()
        metrics.pushes.labels(connection.vendor, status).inc()
        metrics.vendor_latency.labels(connection.vendor).observe(elapsed)
        if task.enqueued_at is not None:
            metrics.event_to_vendor_latency.labels(connection.vendor).observe(
                (utcnow() - task.enqueued_at).total_seconds()
            )
        self.hub.registry.broadcast("journeyhub_delivery_finished", task=task, result=result,
                                    error=None, attempt=job.msg.metadata.num_delivered or 1)  # fmt: skip
        log.info("delivered", status=status, latency_ms=round(elapsed * 1000, 1),
                 external_ids=result.external_ids)  # fmt: skip

    @staticmethod
    def source_id(task: DeliveryTask) -> str:
        if task.event is not None:
            return task.event.id
        return task.trigger.id if task.trigger is not None else task.id

    async def fail(
        self,
        msg: Msg,
        task: DeliveryTask,
        connection: Connection,
        exc: BaseException,
        elapsed: float,
    ) -> None:
        with self.scope(task):
            await self._fail(msg, task, connection, exc, elapsed)

    async def _fail(
        self,
        msg: Msg,
        task: DeliveryTask,
        connection: Connection,
        exc: BaseException,
        elapsed: float,
    ) -> None:
        vendor_status = exc.vendor_status if isinstance(exc, ConnectorError) else None
        error = exc.message if isinstance(exc, ConnectorError) else f"{type(exc).__name__}: {exc}"
        deliveries = self.hub.store.deliveries
        common = dict(task_id=task.id, tenant_id=task.tenant_id, connection_id=connection.id,
                      vendor=connection.vendor, source_id=self.source_id(task),
                      attempt=msg.metadata.num_delivered or 1, vendor_status=vendor_status,
                      latency_ms=elapsed * 1000, error=error, correlation_id=task.correlation_id)  # fmt: skip
        self.hub.registry.broadcast("journeyhub_delivery_finished", task=task, result=None,
                                    error=error, attempt=msg.metadata.num_delivered or 1)  # fmt: skip
        if isinstance(exc, RateLimited):
            wait = exc.retry_after if exc.retry_after is not None else backoff_delay(1)
            await deliveries.record_attempt(status="rate_limited", **common)
            await self.breakers.pause(connection.id, wait)
            metrics.pushes.labels(connection.vendor, "rate_limited").inc()
            log.info("rate_limited", retry_after=wait)
            await self.retry_later(msg, task, max(0.1, wait))
            return
        if isinstance(exc, ReauthRequired):
            # Not a failure of this task: the connection waits for a person to reconnect it.
            await deliveries.record_attempt(status="needs_reauth", **common)
            await self.hub.auth.mark_needs_reauth(connection, error)
            await self.retry_later(msg, task, REAUTH_WAIT)
            return
        permanent = isinstance(exc, ConnectorError) and not exc.retryable
        failures = await deliveries.failed_attempts(task.id) + 1
        if permanent or failures >= self.hub.settings.max_deliver:
            await deliveries.record_attempt(status="dead", **common)
            if not permanent:
                await self.breakers.failure(connection.id)
            metrics.pushes.labels(connection.vendor, "dead").inc()
            reason = "permanent error" if permanent else f"{failures} failed attempts"
            await dead_letter(self.hub, msg, tenant_id=task.tenant_id, connection_id=connection.id,
                              vendor=connection.vendor, stage="push", error=f"{reason}: {error}",
                              attempts=failures, finished_task=task.id)  # fmt: skip
            return
        await deliveries.record_attempt(status="failed", **common)
        await self.breakers.failure(connection.id)
        delay = backoff_delay(failures)
        if outcome_unknown(exc):
            delay = max(delay, OUTCOME_UNKNOWN_WAIT)
        metrics.pushes.labels(connection.vendor, "retry").inc()
        log.warning(
            "push_failed_will_retry", error=error, failures=failures, retry_in=round(delay, 2)
        )
        await self.retry_later(msg, task, delay)

    async def retry_later(self, msg: Msg, task: DeliveryTask, delay: float) -> None:
        """Give the task's hold back (its retry may go to any worker) and the message to the
        bus. Only now, with the attempt recorded: released earlier, the hold let a redelivery
        be pushed by another worker while this one was still writing the task's dead letter
        (seen in the 10,000-event chaos run: a sixth attempt after the fifth had killed it)."""
        await self.hub.store.deliveries.release(task.id, self.holder)
        await msg.nak(delay=delay)


async def run(hub: Hub, stop: asyncio.Event) -> None:
    worker = PushWorker(hub)
    await consume(hub, stop, durable="push-worker", stream_kind="push",
                  handle_batch=worker.handle_batch, batch=500, wait=0.5,
                  concurrent_batches=4)  # fmt: skip
