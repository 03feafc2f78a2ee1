"""The sender of one connection whose connector has a batch endpoint (Resend's
``/emails/batch``): many tasks per vendor call, at the connection's rate."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from journeyhub.logs import get_logger

if TYPE_CHECKING:
    from journeyhub.workers.push import Job, PushWorker

log = get_logger(__name__)


class BatchSender:
    """One connection's queue and sender for a connector with a batch endpoint.

    The sender takes up to ``max_batch`` queued jobs per vendor call, after waiting for the
    rate budget: while it waits, the jobs of further fetches pile up, so a throttled vendor
    gets full batches (10,000 emails in 100 calls, not thousands of small ones). One task per
    client per call keeps per-client order."""

    def __init__(self, worker: PushWorker) -> None:
        self.worker = worker
        self.queue: list[tuple[Job, asyncio.Future[None]]] = []
        self.task: asyncio.Task[None] | None = None

    async def push(self, jobs: list[Job]) -> None:
        """Queue jobs and wait until they are settled."""
        loop = asyncio.get_running_loop()
        waiting = [(job, loop.create_future()) for job in jobs]
        self.queue.extend(waiting)
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self.run())
        await asyncio.gather(*(future for _, future in waiting))

    async def run(self) -> None:
        try:
            while self.queue:
                await self.send_next()
        except Exception as exc:  # nobody awaits a sender: say it here
            log.error("batch_sender_failed", error=repr(exc))
        finally:
            # Never leave a waiter behind (its batch would wait, in progress, for ever): what
            # is still queued when the sender ends on an error goes back to the bus.
            left, self.queue = [item for item in self.queue if not item[1].done()], []
            with contextlib.suppress(Exception):  # else its hold expires, its ack wait ends
                await self.worker.give_back([job for job, _ in left])
            for _, future in left:
                future.set_result(None)

    async def send_next(self) -> None:
        worker, first = self.worker, self.queue[0][0]
        try:
            allowed = await worker.breakers.allow(first.connection_id)
        except Exception as exc:  # the store away for a moment (a restart): try again
            log.warning("breaker_unknown_will_retry", error=repr(exc))
            await asyncio.sleep(1.0)
            return
        if not allowed.allowed:  # a 429's Retry-After or an open breaker: the queue waits
            await asyncio.sleep(min(max(allowed.wait, 0.2), 30.0))
            return
        await worker.take_slot(first, limited=True)  # meanwhile more jobs join the queue
        info = first.decision.info
        assert info is not None
        batch: list[tuple[Job, asyncio.Future[None]]] = []
        clients: set[str] = set()
        for item in list(self.queue):
            if len(batch) >= info.max_batch:
                break
            if item[0].task.order_key not in clients:  # the client's next one: a later call
                clients.add(item[0].task.order_key)
                batch.append(item)
                self.queue.remove(item)
        failed: set[str] = set()
        try:
            failed = await worker.push_batch([job for job, _ in batch])
        finally:
            for _, future in batch:
                if not future.done():
                    future.set_result(None)
        # A client whose task was not delivered: its later ones wait for that task's retry.
        stopped = {job.task.order_key for job, _ in batch if job.task.id in failed}
        behind = [item for item in self.queue if item[0].task.order_key in stopped]
        if behind:
            self.queue = [item for item in self.queue if item not in behind]
            try:
                await worker.give_back([job for job, _ in behind])
            finally:
                for _, future in behind:
                    future.set_result(None)
