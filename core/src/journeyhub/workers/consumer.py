"""The pull loop every worker shares: fetch a batch from a durable consumer and hand each
message (or the whole batch) to a handler, with bounded concurrency, until asked to stop."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable

from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError

from journeyhub.hub import Hub
from journeyhub.logs import get_logger

log = get_logger(__name__)


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
) -> None:
    """Fetch up to ``batch`` messages at a time and await ``handle_batch`` on them."""
    subscription = await hub.bus.pull(durable, stream_kind)
    try:
        while not stop.is_set():
            try:
                messages = await subscription.fetch(batch, timeout=wait)
            except (NatsTimeoutError, TimeoutError):
                continue
            except Exception as exc:  # the bus is reconnecting: wait, do not spin
                log.warning("fetch_failed", durable=durable, error=repr(exc))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)
                continue
            await handle_batch(messages)
    finally:
        with contextlib.suppress(Exception):
            await subscription.unsubscribe()


async def each(messages: list[Msg], handle: Callable[[Msg], Awaitable[None]], limit: int) -> None:
    """Run ``handle`` on every message, at most ``limit`` at once."""
    semaphore = asyncio.Semaphore(limit)

    async def one(msg: Msg) -> None:
        async with semaphore:
            await handle(msg)

    await asyncio.gather(*(one(m) for m in messages))
