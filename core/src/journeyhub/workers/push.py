"""The push worker: delivery tasks → the vendor plugin's ``push`` (or ``push_batch``).

Per fetched batch:
1. the task gate (``delivery/gate.py``) decides for every task at once, in one store
   transaction: finished or dead (acknowledged, not pushed), wait (offered again later by the
   bus), or ready (held by this process, with the vendor id map and suppressions it needs);
2. the ready tasks are pushed, one client's tasks one after the other, with the task id as
   the idempotency key, after the connection's shared rate budget allows the call; a
   connector with a batch endpoint gets its tasks through one sender per connection;
3. each outcome is recorded (``delivery/outcomes.py``, many per transaction) and only then is
   its message settled: success acks; a retryable failure goes back to the bus after the
   wait its connection's retry policy sets (``delivery/retry_policy.py``: kept in the bus, so
   the retry survives a restart); a permanent one, or the policy's last, go to the dead
   letters. A 429 or a connection waiting for re-authorisation is not a failed attempt; an
   endpoint gone for good (``EndpointGone``, a 410) goes to the dead letters and disables its
   connection (``delivery/gone.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable
from dataclasses import dataclass, replace
from typing import Any

import msgspec
from nats.aio.msg import Msg

from journeyhub import metrics, tracing
from journeyhub.delivery.gate import REAUTH_WAIT, Decision, Offer, TaskGate, Verdict, order_wait
from journeyhub.delivery.gone import disable_gone_endpoint
from journeyhub.delivery.outcomes import DeadLetterDraft, Outcome, Recorder
from journeyhub.delivery.retry_policy import RetryPolicy, policy_for
from journeyhub.errors import (
    AuthExpired,
    ConnectorError,
    EndpointGone,
    OutcomeUnknown,
    PermanentError,
    RateLimited,
    ReauthRequired,
)
from journeyhub.hub import Hub
from journeyhub.logs import correlation_scope, get_logger
from journeyhub.mapping import apply_mappings, merge_defaults
from journeyhub.model import DeliveryTask, PushResult, SyncedRecord, stable_id
from journeyhub.resilience.breaker import Breakers
from journeyhub.resilience.limits import RateLimits
from journeyhub.workers.batch_sender import BatchSender
from journeyhub.workers.consumer import backoff_delay, consume, settle_all
from journeyhub.workers.deadletter import announce, dead_letter, message_id

log = get_logger(__name__)
# A call that timed out after it was sent may still be carried out by the vendor, later. Its
# retry waits at least this long, so the retry's lookups see the late write instead of making
# a second one (a vendor that answers 0.5 s after the client gave up, and does the work).
OUTCOME_UNKNOWN_WAIT = 5.0
# The store away (a restart): the batch's messages come back after a wait that grows with how
# many gate transactions in a row have failed here, up to this. Not with how often the bus
# offered each message: that counts every wait behind a client's earlier task too, and a task
# offered ten times came back five minutes after a PostgreSQL restart of a second.
STORE_AWAY_WAIT_MAX = 10.0


def store_away_wait(failures_in_a_row: int) -> float:
    """Seconds before a batch the task gate could not decide is offered again."""
    return backoff_delay(failures_in_a_row, base=0.5, cap=STORE_AWAY_WAIT_MAX)


def outcome_unknown(exc: BaseException) -> bool:
    """True when the vendor may have carried the failed call out: the request was sent and
    no answer came. Only the explicit ``OutcomeUnknown`` says so (the kernel's HTTP client and
    ``journeyhub.kit.send`` raise it; a connector must let it through, not wrap it)."""
    return isinstance(exc, OutcomeUnknown)


@dataclass
class Job:
    """A ready task: its message, the gate's decision, and a mapping that failed, if one did."""

    msg: Msg
    task: DeliveryTask
    decision: Decision
    mapping_error: str | None = None
    # Pushed (its message settled, or left to its ack wait when the outcome could not be
    # recorded) or given back: no longer held by this process.
    released: bool = False

    @property
    def connection_id(self) -> str:
        return self.task.connection_id


def scope(task: DeliveryTask) -> Any:
    """Log lines about ``task`` carry its correlation id (the event's or webhook's)."""
    return correlation_scope(
        task.correlation_id or task.id,
        task_id=task.id,
        connection_id=task.connection_id,
        vendor=task.vendor,
    )


def task_attributes(job: Job) -> dict[str, str | int]:
    """What a push's span says of its task: ids only (no client data)."""
    task = job.task
    return {
        "journeyhub.task_id": task.id,
        "journeyhub.connection_id": task.connection_id,
        "journeyhub.vendor": task.vendor,
        "journeyhub.task_kind": task.kind,
        "journeyhub.attempt": job.decision.attempt,
    }


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
        # How long a task stays held by this process once taken, extended while it is pushed;
        # a task of a killed worker waits this long for its retry.
        hold_seconds = max(30.0, 2.0 * hub.settings.ack_wait_seconds)
        self.gate = TaskGate(hub, self.breakers, holder=self.holder, hold_seconds=hold_seconds)
        self.recorder = Recorder(hub.store, self.holder)
        schedule = hub.settings.retry_schedule
        self.default_policy = RetryPolicy(schedule, len(schedule) + 1, hub.settings.retry_jitter)
        self.limits = RateLimits(hub.bus)
        self.semaphore = asyncio.Semaphore(64)
        self.senders: dict[str, BatchSender] = {}
        self.gate_failures = 0  # gate transactions failed in a row (the store away)

    # --- per fetched batch ------------------------------------------------------------------------

    async def handle_batch(self, messages: list[Msg]) -> None:
        offered: list[tuple[Msg, DeliveryTask, str | None]] = []
        for msg in messages:
            task = await self.decode(msg)
            if task is not None:
                offered.append((msg, task, await self.map_fields(task)))
        try:
            decisions = await self.gate.admit(
                [Offer(task, msg.metadata.num_delivered or 1) for msg, task, _ in offered]
            )
        except Exception as exc:  # the store away for a moment: the bus offers them again
            self.gate_failures += 1
            delay = store_away_wait(self.gate_failures)
            log.warning(
                "gate_unavailable_will_retry",
                error=repr(exc),
                tasks=len(offered),
                retry_in=round(delay, 2),
            )
            for msg, _, _ in offered:
                await msg.nak(delay=delay)
            return
        self.gate_failures = 0
        ready = [
            Job(msg, task, decision, mapping_error)
            for (msg, task, mapping_error), decision in zip(offered, decisions, strict=True)
            if decision.verdict == Verdict.READY
        ]
        try:
            await self.settle_unready(offered, decisions)
            by_connection: dict[str, list[Job]] = defaultdict(list)
            for job in ready:
                by_connection[job.connection_id].append(job)
            await settle_all(*(self.push_connection(jobs) for jobs in by_connection.values()))
        except Exception:
            # A ready task neither pushed nor given back would stay held by this process for
            # as long as it lives (``keep_holds``), and its client's other tasks wait behind it.
            stranded = [job for job in ready if not job.released]
            if stranded:
                log.error("ready_tasks_given_back_after_error", tasks=len(stranded))
                await self.give_back(stranded)
            raise

    async def settle_unready(
        self, offered: list[tuple[Msg, DeliveryTask, str | None]], decisions: list[Decision]
    ) -> None:
        """The messages of the tasks not pushed now: back to the bus after their wait, or
        acknowledged (finished, or owned by a dead letter)."""
        for (msg, task, _), decision in zip(offered, decisions, strict=True):
            if decision.verdict == Verdict.READY:
                continue
            if decision.verdict == Verdict.WAIT:
                log.debug(
                    "task_waits", task_id=task.id, reason=decision.reason, delay=decision.delay
                )
                await msg.nak(delay=decision.delay)
                continue
            with scope(task):  # finished or dead: nothing to push
                if decision.verdict == Verdict.DEAD:
                    log.warning("dead_lettered_task_offered_again_dropped")
                elif decision.reason != "done":
                    log.info("task_not_pushed", reason=decision.reason)
            await msg.ack()

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

    async def map_fields(self, task: DeliveryTask) -> str | None:
        """Apply the connection's field mappings to an event (``task.mapped``); the error, if
        they fail (the task then goes to the dead letters once the gate lets it through)."""
        entry = await self.hub.connection_cache.get(task.connection_id)
        loaded = self.hub.registry.connectors.get(task.vendor)
        if task.event is None or entry is None or loaded is None:
            return None
        mappings = merge_defaults(loaded.info.default_field_mappings, entry[0].field_mappings)
        try:
            task.mapped = apply_mappings(mappings, task.event)
        except (ValueError, TypeError) as exc:
            return f"field mapping failed: {exc}"
        return None

    async def push_connection(self, jobs: list[Job]) -> None:
        """One connection's ready jobs: through its batch sender where the plugin has a batch
        endpoint, else each client's one after the other."""
        info = jobs[0].decision.info
        assert info is not None
        # A client's jobs in its order: the bus offers a retried task after later ones.
        jobs = sorted(jobs, key=lambda job: job.task.sequence)
        batching = info.max_batch > 1 and self.hub.registry.implements(
            info.vendor, "journeyhub_push_batch"
        )
        if batching and all(job.mapping_error is None for job in jobs):
            sender = self.senders.get(jobs[0].connection_id)
            if sender is None:
                sender = self.senders[jobs[0].connection_id] = BatchSender(self)
            await sender.push(jobs)
            return
        by_client: dict[str, list[Job]] = defaultdict(list)
        for job in jobs:
            by_client[job.task.order_key].append(job)
        await settle_all(*(self.push_in_order(client_jobs) for client_jobs in by_client.values()))

    async def push_in_order(self, jobs: list[Job]) -> None:
        """One client's jobs, one after the other: each knows what the ones before it wrote
        (the gate read the vendor id map before any of them was pushed)."""
        learned: list[SyncedRecord] = []
        for index, job in enumerate(jobs):
            if learned:
                job.decision = replace(job.decision, known=job.decision.known.learn(learned))
            result = await self.push_one(job)
            if result is None:  # the rest wait for this one's retry
                await self.give_back(jobs[index + 1 :])
                return
            learned += result.records

    async def give_back(self, jobs: list[Job]) -> None:
        """Held jobs that will not be pushed now go back to the bus, free for anyone. Their
        messages go back also when the store is away (their holds then run out): a message
        kept here would wait for ever behind a task that waits for it."""
        try:
            await self.gate.give_back([job.task.id for job in jobs])
        finally:
            for job in jobs:
                job.released = True
                # A nak that fails (the bus closed) leaves the message to its ack wait.
                with contextlib.suppress(Exception):
                    await job.msg.nak(delay=order_wait(job.msg.metadata.num_delivered or 1))

    def release(self, jobs: list[Job]) -> None:
        """The jobs were pushed (their messages settled, or left to their ack wait when the
        outcome could not be recorded): not held here any more."""
        for job in jobs:
            job.released = True
            self.gate.settled(job.task.id)

    # --- vendor calls -----------------------------------------------------------------------------

    async def push_one(self, job: Job, limited: bool = True) -> PushResult | None:
        """Push one task; its result once it is settled as delivered, else None."""
        try:
            with scope(job.task):
                if tracing.ENABLED:
                    return await self.push_one_traced(job, limited)
                return await self._push_one(job, limited)
        finally:
            self.release([job])

    async def push_one_traced(self, job: Job, limited: bool) -> PushResult | None:
        """``_push_one`` inside a span, child of the router's publish: the vendor call's
        client span is its child."""
        span = tracing.process_span(
            self.hub.bus.subjects.prefix, job.msg, "push-worker", task_attributes(job)
        )
        try:
            with tracing.active(span):
                result = await self._push_one(job, limited)
            if result is None:  # settled as a failure: retried later, or dead
                tracing.fail(span, "not_delivered")
            return result
        finally:
            tracing.end(span, sys.exc_info()[1])

    async def _push_one(self, job: Job, limited: bool) -> PushResult | None:
        if job.mapping_error is not None:
            await self.settle_failure(job, PermanentError(job.mapping_error), 0.0)
            return None
        started = time.perf_counter()
        try:
            await self.take_slot(job, limited)
            async with self.semaphore:
                started = time.perf_counter()
                result = await self.call(
                    job,
                    "journeyhub_push",
                    task=job.task,
                    idempotency_key=job.task.idempotency_key,
                    known=job.decision.known,
                )
        except Exception as exc:
            await self.settle_failure(job, exc, time.perf_counter() - started)
            return None
        settled = await self.settle_success(job, result, time.perf_counter() - started)
        return result if settled else None

    async def push_batch(self, jobs: list[Job]) -> set[str]:
        """Several tasks of one connection in one vendor call (at most one per client); the
        ids of those that were not delivered."""
        if len(jobs) == 1:
            return set() if await self.push_one(jobs[0], limited=False) else {jobs[0].task.id}
        try:
            ids = sorted({job.task.correlation_id or job.task.id for job in jobs})
            with correlation_scope(None, correlation_ids=ids, connection_id=jobs[0].connection_id):
                if tracing.ENABLED:
                    return await self.push_batch_traced(jobs)
                return await self._push_batch(jobs)
        finally:
            self.release(jobs)

    async def push_batch_traced(self, jobs: list[Job]) -> set[str]:
        """``_push_batch`` inside one span: child of the first task's publish, linked to every
        task's."""
        span = tracing.batch_span(
            self.hub.bus.subjects.prefix,
            [job.msg for job in jobs],
            "push-worker",
            {
                "journeyhub.connection_id": jobs[0].connection_id,
                "journeyhub.vendor": jobs[0].task.vendor,
            },
        )
        try:
            with tracing.active(span):
                failed = await self._push_batch(jobs)
            if failed:
                tracing.fail(span, "not_delivered")
            return failed
        finally:
            tracing.end(span, sys.exc_info()[1])

    async def _push_batch(self, jobs: list[Job]) -> set[str]:
        tasks = [job.task for job in jobs]
        key = stable_id("batch", *sorted(t.id for t in tasks))
        started = time.perf_counter()
        try:
            async with self.semaphore:
                started = time.perf_counter()
                results = await self.call(
                    jobs[0], "journeyhub_push_batch", tasks=tasks, idempotency_key=key, jobs=jobs
                )
            if len(results) != len(jobs):
                raise PermanentError(
                    f"push_batch returned {len(results)} results for {len(jobs)} tasks"
                )
        except Exception as exc:
            results = [exc] * len(jobs)
        elapsed = time.perf_counter() - started

        failed: set[str] = set()

        async def settle(job: Job, result: PushResult | BaseException) -> None:
            with scope(job.task):
                if isinstance(result, BaseException):
                    failed.add(job.task.id)
                    await self.settle_failure(job, result, elapsed)
                elif not await self.settle_success(job, result, elapsed):
                    failed.add(job.task.id)

        await settle_all(*(settle(job, result) for job, result in zip(jobs, results, strict=True)))
        return failed

    async def take_slot(self, job: Job, limited: bool) -> None:
        """Wait for the connection's rate budget, right before the call and outside the
        concurrency slots (a throttled connection never holds slots others could use)."""
        if not limited:
            return
        decision = job.decision
        assert decision.connection is not None and decision.info is not None
        limiter = self.limits.limiter(decision.connection, decision.info)
        if limiter is not None:
            await limiter.acquire()

    async def call(self, job: Job, hook: str, jobs: list[Job] | None = None, **kwargs: Any) -> Any:
        """Call the plugin with what the gate prepared; after a 401, refresh the credentials
        once and call again."""
        decision = job.decision
        connection = decision.connection
        assert connection is not None
        suppressed = frozenset().union(*(j.decision.suppressed for j in jobs or [job]))
        credentials = await self.hub.auth.credentials(connection, decision.credentials)
        arguments = dict(connection=connection, http=self.hub.http, suppressed=suppressed, **kwargs)
        try:
            return await self.hub.registry.call(
                connection.vendor, hook, credentials=credentials, **arguments
            )
        except AuthExpired:
            if not self.hub.registry.implements(connection.vendor, "journeyhub_authenticate"):
                raise
            credentials = await self.hub.auth.credentials(
                connection, decision.credentials, refused=True
            )
            return await self.hub.registry.call(
                connection.vendor, hook, credentials=credentials, **arguments
            )

    # --- outcomes ---------------------------------------------------------------------------------

    async def settle_success(self, job: Job, result: PushResult, elapsed: float) -> bool:
        """Record a success, then ack; True once both are done. (Called inside the task's
        log scope: its lines carry the task's correlation id.)"""
        task, decision = job.task, job.decision
        status = "skipped" if result.status == "skipped" else "delivered"
        outcome = Outcome(
            task=task,
            status=status,
            attempt=decision.attempt,
            vendor_status=result.vendor_status,
            latency_ms=elapsed * 1000,
            external_ids=result.external_ids or None,
            error=result.detail if status == "skipped" else None,
            records=list(result.records),
        )
        recorded, _ = await self.record(outcome)
        if not recorded:
            return False
        await job.msg.ack()
        await self.after_settled(self.breakers.success(task.connection_id), "breaker")
        metrics.child(metrics.pushes, task.vendor, status).inc()
        metrics.child(metrics.vendor_latency, task.vendor).observe(elapsed)
        if task.enqueued_at is not None:
            metrics.child(metrics.event_to_vendor_latency, task.vendor).observe(
                time.time() - task.enqueued_at.timestamp()
            )
        self.hub.registry.broadcast(
            "journeyhub_delivery_finished",
            task=task,
            result=result,
            error=None,
            attempt=decision.attempt,
        )
        log.info(
            "delivered",
            status=status,
            latency_ms=round(elapsed * 1000, 1),
            external_ids=result.external_ids,
        )
        return True

    async def settle_failure(self, job: Job, exc: BaseException, elapsed: float) -> None:
        """Record a failure, then hand the message back to the bus: later, or to the dead
        letters. (Called inside the task's log scope, as ``settle_success``.)"""
        task, decision = job.task, job.decision
        error = exc.message if isinstance(exc, ConnectorError) else f"{type(exc).__name__}: {exc}"
        common: dict[str, Any] = dict(
            task=task,
            attempt=decision.attempt,
            latency_ms=elapsed * 1000,
            error=error,
            vendor_status=exc.vendor_status if isinstance(exc, ConnectorError) else None,
            records=list(exc.records) if isinstance(exc, ConnectorError) else [],
        )
        self.hub.registry.broadcast(
            "journeyhub_delivery_finished",
            task=task,
            result=None,
            error=error,
            attempt=decision.attempt,
        )
        if isinstance(exc, RateLimited):
            wait = exc.retry_after if exc.retry_after is not None else backoff_delay(1)
            wait = max(0.1, wait)
            recorded, _ = await self.record(Outcome(status="rate_limited", retry_in=wait, **common))
            if recorded:
                await job.msg.nak(delay=wait)
                await self.after_settled(self.breakers.pause(task.connection_id, wait), "pause")
                metrics.child(metrics.pushes, task.vendor, "rate_limited").inc()
                log.info("rate_limited", retry_after=wait)
            return
        if isinstance(exc, ReauthRequired):
            # Not a failure of this task: the connection waits for a person to reconnect it.
            recorded, _ = await self.record(
                Outcome(status="needs_reauth", retry_in=REAUTH_WAIT, **common)
            )
            if recorded:
                await job.msg.nak(delay=REAUTH_WAIT)
                assert decision.connection is not None
                await self.after_settled(
                    self.hub.auth.mark_needs_reauth(decision.connection, error), "needs_reauth"
                )
            return
        permanent = isinstance(exc, ConnectorError) and not exc.retryable
        failures = decision.failures + 1
        policy = self.policy(decision)
        if permanent or policy.exhausted(failures):
            reason = "permanent error" if permanent else f"{failures} failed attempts"
            draft = DeadLetterDraft(
                subject=job.msg.subject,
                msg_id=message_id(job.msg),
                payload=job.msg.data,
                error=f"{reason}: {error}",
                attempts=failures,
            )
            recorded, dead_id = await self.record(
                Outcome(status="dead", dead_letter=draft, **common)
            )
            if recorded and dead_id is not None:
                await announce(
                    self.hub,
                    job.msg,
                    dead_id,
                    connection_id=task.connection_id,
                    vendor=task.vendor,
                    stage="push",
                    error=draft.error,
                    attempts=failures,
                )
                metrics.child(metrics.pushes, task.vendor, "dead").inc()
                if isinstance(exc, EndpointGone):
                    assert decision.connection is not None
                    await self.after_settled(
                        disable_gone_endpoint(self.hub, decision.connection, error), "gone"
                    )
                if not permanent:
                    await self.after_settled(self.breakers.failure(task.connection_id), "breaker")
            return
        delay = policy.wait(failures)
        if outcome_unknown(exc):
            delay = max(delay, OUTCOME_UNKNOWN_WAIT)
        recorded, _ = await self.record(Outcome(status="failed", retry_in=delay, **common))
        if not recorded:
            return
        await job.msg.nak(delay=delay)
        await self.after_settled(self.breakers.failure(task.connection_id), "breaker")
        metrics.child(metrics.pushes, task.vendor, "retry").inc()
        log.warning(
            "push_failed_will_retry", error=error, failures=failures, retry_in=round(delay, 2)
        )

    def policy(self, decision: Decision) -> RetryPolicy:
        """The retry policy of the task's connection (its ``retry`` option over the default)."""
        connection = decision.connection
        if connection is None:
            return self.default_policy
        return policy_for(
            connection.id, connection.updated_at, connection.options, self.default_policy
        )

    @staticmethod
    async def after_settled(step: Awaitable[object], what: str) -> None:
        """A step after the message is settled (the breaker's state, the re-auth mark): if it
        fails (the store away a moment), that is logged and the task's outcome stands."""
        try:
            await step
        except Exception as exc:
            log.warning("after_settle_step_failed", step=what, error=repr(exc))

    async def record(self, outcome: Outcome) -> tuple[bool, str | None]:
        """Record an outcome: (recorded, the dead letter's id for a dead one). When the store
        refuses it, the message is left unsettled: the bus offers it again after its ack
        wait, and its hold keeps every worker from pushing it until the hold runs out."""
        try:
            return True, await self.recorder.record(outcome)
        except Exception as exc:
            log.error("outcome_not_recorded", status=outcome.status, error=repr(exc))
            return False, None


async def run(hub: Hub, stop: asyncio.Event) -> None:
    worker = PushWorker(hub)
    holds = asyncio.create_task(worker.gate.keep_holds())
    try:
        await consume(
            hub,
            stop,
            durable="push-worker",
            stream_kind="push",
            handle_batch=worker.handle_batch,
            batch=500,
            wait=0.5,
            concurrent_batches=4,
        )
    finally:
        holds.cancel()
