"""Group commit: many callers' items written together, with no wait to fill a batch.

A caller submits its items and waits for their results. One writer runs at a time: what is
submitted while it writes goes into its next write, so under load one store transaction
serves many callers, and an item submitted alone is written at once. Writes follow each other
no closer than ``min_interval``: at a steady rate, where items come one at a time just after
each write, they gather for a few milliseconds instead of costing a transaction each.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T, R]):
    """Calls ``write(items)`` for the items of every caller that waited meanwhile (at most
    ``max_items`` per call); ``write`` returns one result per item, in order. If it raises,
    every caller of that write gets the exception."""

    def __init__(
        self,
        write: Callable[[list[T]], Awaitable[Sequence[R]]],
        max_items: int = 1000,
        min_interval: float = 0.0,
    ) -> None:
        self.write = write
        self.max_items = max_items
        self.min_interval = min_interval
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._last_write = float("-inf")

    async def submit(self, items: Sequence[T]) -> list[R]:
        if not items:
            return []
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in items]
        self._queue.extend(zip(items, futures, strict=True))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain())
        # shield: a caller cancelled (its batch given up) must not cancel the others' write
        results = await asyncio.shield(asyncio.gather(*futures, return_exceptions=True))
        done: list[R] = []
        for result in results:
            if isinstance(result, BaseException):
                raise result
            done.append(result)
        return done

    async def submit_one(self, item: T) -> R:
        return (await self.submit([item]))[0]

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queue:
            pause = self._last_write + self.min_interval - loop.time()
            if pause > 0:
                await asyncio.sleep(pause)
            self._last_write = loop.time()
            taken, self._queue = self._queue[: self.max_items], self._queue[self.max_items :]
            try:
                results = await self.write([item for item, _ in taken])
                if len(results) != len(taken):
                    raise RuntimeError(f"{len(results)} results for {len(taken)} items")
            except Exception as exc:
                for _, future in taken:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(taken, results, strict=True):
                if not future.done():
                    future.set_result(result)
