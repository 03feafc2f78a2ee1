"""A short-lived in-process cache of connections and their decrypted credentials.

The gateway resolves a connection on every webhook and the workers on every message; reading
and decrypting it each time would dominate. Entries live a few seconds (so a change made by
another process is seen quickly) and are dropped at once when this process changes them.
"""

from __future__ import annotations

import time
from typing import Any

from journeyhub.model import Connection
from journeyhub.store.store import Store

Entry = tuple[Connection, dict[str, Any]]


class ConnectionCache:
    def __init__(self, store: Store, ttl: float = 5.0) -> None:
        self.store = store
        self.ttl = ttl
        self._by_id: dict[str, tuple[float, Entry | None]] = {}
        self._by_tenant: dict[str, tuple[float, list[Connection]]] = {}

    async def get(self, connection_id: str) -> Entry | None:
        now = time.monotonic()
        hit = self._by_id.get(connection_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        entry = await self.store.connections.get_with_credentials(connection_id)
        self._by_id[connection_id] = (now + self.ttl, entry)
        if len(self._by_id) > 50_000:  # bound memory under a flood of unknown ids
            self._by_id.clear()
        return entry

    async def for_tenant(self, tenant_id: str) -> list[Connection]:
        now = time.monotonic()
        hit = self._by_tenant.get(tenant_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        connections = await self.store.connections.list(tenant_id)
        self._by_tenant[tenant_id] = (now + self.ttl, connections)
        return connections

    def invalidate(self, connection_id: str | None = None, tenant_id: str | None = None) -> None:
        if connection_id is not None:
            self._by_id.pop(connection_id, None)
        if tenant_id is not None:
            self._by_tenant.pop(tenant_id, None)
        if connection_id is None and tenant_id is None:
            self._by_id.clear()
            self._by_tenant.clear()
