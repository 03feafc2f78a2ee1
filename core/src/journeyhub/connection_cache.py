"""A short-lived in-process cache of connections and their decrypted credentials.

The gateway resolves a connection on every webhook and the workers on every message; reading
and decrypting it each time would dominate. Entries live a few seconds (so a change made by
another process is seen quickly) and are dropped at once when this process changes them.

Two things keep an expiry from costing a burst of reads: one read per key at a time (the
callers that miss together wait for the same one), and an expired entry still answers while
its refresh runs. Without them, every request in flight when an entry expired read the store
at once; the ingest benchmark spent most of its latency there (64 concurrent webhooks, one
SQLite read each, every 5 s).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from journeyhub.logs import get_logger
from journeyhub.model import Connection
from journeyhub.store.store import Store

Entry = tuple[Connection, dict[str, Any]]
V = TypeVar("V")
log = get_logger(__name__)
MAX_ENTRIES = 50_000  # bound memory under a flood of unknown ids


class _Expiring(Generic[V]):
    """Values by key, each for ``ttl`` seconds, loaded by ``load``."""

    def __init__(self, name: str, load: Callable[[str], Awaitable[V]], ttl: float) -> None:
        self.name, self.load, self.ttl = name, load, ttl
        self.values: dict[str, tuple[float, V]] = {}
        self.loading: dict[str, asyncio.Task[V]] = {}
        self.generation = 0  # bumped by drop(): a load begun before it must not store

    async def get(self, key: str) -> V:
        hit = self.values.get(key)
        if hit is not None:
            if hit[0] <= time.monotonic():
                self._start(key)  # refresh in the background; meanwhile the old value
            return hit[1]
        # shield: one caller cancelled (its client gone) must not cancel the others' read
        return await asyncio.shield(self._start(key))

    def _start(self, key: str) -> asyncio.Task[V]:
        task = self.loading.get(key)
        if task is None:
            task = asyncio.create_task(self._fetch(key, self.generation))
            self.loading[key] = task
            task.add_done_callback(lambda done: self._finished(key, done))
        return task

    async def _fetch(self, key: str, generation: int) -> V:
        value = await self.load(key)
        if generation == self.generation:
            if len(self.values) >= MAX_ENTRIES:
                self.values.clear()
            self.values[key] = (time.monotonic() + self.ttl, value)
        return value

    def _finished(self, key: str, task: asyncio.Task[V]) -> None:
        if self.loading.get(key) is task:
            del self.loading[key]
        if not task.cancelled() and task.exception() is not None:
            # A waiting caller gets the error; a background refresh only logs it and the old
            # value keeps answering until the next try.
            log.warning("cache_load_failed", cache=self.name, error=repr(task.exception()))

    def drop(self, key: str | None = None) -> None:
        self.generation += 1
        if key is None:
            self.values.clear()
            self.loading.clear()
        else:
            self.values.pop(key, None)
            self.loading.pop(key, None)


class ConnectionCache:
    def __init__(self, store: Store, ttl: float = 5.0) -> None:
        self.store = store
        self.ttl = ttl
        self._by_id: _Expiring[Entry | None] = _Expiring(
            "connection", store.connections.get_with_credentials, ttl
        )
        self._by_tenant: _Expiring[list[Connection]] = _Expiring(
            "tenant_connections", store.connections.list, ttl
        )

    async def get(self, connection_id: str) -> Entry | None:
        return await self._by_id.get(connection_id)

    async def for_tenant(self, tenant_id: str) -> list[Connection]:
        return await self._by_tenant.get(tenant_id)

    def invalidate(self, connection_id: str | None = None, tenant_id: str | None = None) -> None:
        if connection_id is not None:
            self._by_id.drop(connection_id)
        if tenant_id is not None:
            self._by_tenant.drop(tenant_id)
        if connection_id is None and tenant_id is None:
            self._by_id.drop()
            self._by_tenant.drop()
