"""The pull loop every worker shares: fetch a batch from a durable consumer and hand each
message (or the whole batch) to a handler, with bounded concurrency, until asked to stop."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable

from nats.aio.msg import Msg

from journeyhub.hub import Hub
from journeyhub.logs import get_logger, reset_log_context

log = get_logger(__name__)
# Batches of a consumer follow each other no closer than this (see ``consume``).
BATCH_INTERVAL = 0.01


def backoff_delay(attempt: int, base: float = 1.0, cap: float = 300.0) -> float:
    """Exponential backoff with full jitter: ~1 s, 2 s, 4 s … capped, never in lock-step."""
    ceiling = min(cap, base * (2 ** max(0, attempt - 1)))
    return max(0.2, random.uniform(ceiling / 2, ceiling))


async def consume(
    hub: Hub,
    stop: asyncio.Event,
    *,
    durable: str,
    stream_kind: str,
    handle_batch: Callable[[list[Msg]], Awaitable[None]],
    batch: int = 100,
    wait: float = 1.0,
    concurrent_batches: int = 1,
    min_interval: float = BATCH_INTERVAL,
) -> None:
    """Take up to ``batch`` messages at a time and hand them to ``handle_batch``; with
    ``concurrent_batches`` > 1, taking goes on while earlier batches are still handled
    (a batch waiting on a vendor's rate limit must not stop the others).

    Batches are taken no closer together than ``min_interval``: at a steady rate, where
    messages come one at a time, they gather for a few milliseconds into one batch (one store
    transaction) instead of a batch each; after a quiet spell the first is taken at once."""
    reset_log_context(worker=durable)
    stream = await hub.bus.pull(durable, stream_kind, batch=batch)
    slots = asyncio.Semaphore(concurrent_batches)
    running: set[asyncio.Task[None]] = set()

    async def handle(messages: list[Msg]) -> None:
        # Each batch starts from a clean log context: nothing bound while handling one
        # message can show up on the lines of the next.
        reset_log_context(worker=durable)
        keepalive = asyncio.create_task(
            keep_in_progress(messages, hub.settings.ack_wait_seconds / 4)
        )
        try:
            await handle_batch(messages)
        finally:
            keepalive.cancel()
            slots.release()

    loop = asyncio.get_running_loop()
    last_take = float("-inf")
    try:
        while not stop.is_set():
            await slots.acquire()
            pause = last_take + min_interval - loop.time()
            if pause > 0:
                await asyncio.sleep(pause)
            try:
                messages = await stream.take(batch, wait)
                last_take = loop.time()
            except Exception as exc:  # the bus is reconnecting: wait, do not spin
                slots.release()
                log.warning("fetch_failed", durable=durable, error=repr(exc))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)
                continue
            if not messages:
                slots.release()
                continue
            if concurrent_batches == 1:
                await handle(messages)
                continue
            task = asyncio.create_task(handle(messages))
            running.add(task)
            task.add_done_callback(lambda done: finished(durable, running, done))
        if running:  # let the batches in hand finish before unsubscribing
            await asyncio.gather(*running, return_exceptions=True)
    finally:
        await stream.close()


def finished(durable: str, running: set[asyncio.Task[None]], task: asyncio.Task[None]) -> None:
    """A concurrent batch is over; its error, if it ended on one, is logged (nobody awaits
    it). Its messages not settled go back to the bus after their ack wait."""
    running.discard(task)
    if not task.cancelled() and (error := task.exception()) is not None:
        log.error("batch_failed", durable=durable, error=repr(error))


async def keep_in_progress(messages: list[Msg], every: float) -> None:
    """Tell JetStream, every ``every`` seconds, that the messages of a batch still being handled
    are in progress, so it does not redeliver them while they wait their turn here (behind the
    concurrency limit, the rate limiter, a slow vendor). A message settled already (ack, nak,
    term) is skipped; a batch settled within ``every`` costs nothing. If this process dies,
    the beats stop and the messages are redelivered after the ack wait."""
    every = max(0.5, every)
    while True:
        await asyncio.sleep(every)
        for msg in messages:
            if not msg.is_acked:
                with contextlib.suppress(Exception):  # reconnecting: the next beat will do
                    await msg.in_progress()


async def settle_all(*aws: Awaitable[object]) -> None:
    """Await every one of ``aws``, then raise the first exception, if any.

    ``asyncio.gather`` raises at the first exception and leaves the others running unwatched:
    when the store went away in the middle of a batch (a PostgreSQL restart), the rest of the
    batch went on pushing in the background after the loop had stopped keeping its messages
    in progress, JetStream redelivered them, and a second push ran beside the first (the same
    contact and job created twice at the vendor). A batch now ends only when all its work has."""
    results = await asyncio.gather(*aws, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


async def each(messages: list[Msg], handle: Callable[[Msg], Awaitable[None]], limit: int) -> None:
    """Run ``handle`` on every message, at most ``limit`` at once."""
    semaphore = asyncio.Semaphore(limit)

    async def one(msg: Msg) -> None:
        async with semaphore:
            await handle(msg)

    await settle_all(*(one(m) for m in messages))
