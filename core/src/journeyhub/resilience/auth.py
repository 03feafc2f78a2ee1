"""Credentials ready for a vendor call: OAuth tokens refreshed before expiry and after a 401,
one refresh at a time per connection across every worker, stored encrypted.

In one process an asyncio lock per connection queues concurrent callers; across processes a
lease in the store does. Whoever waits re-reads the credentials the refresher stored instead
of refreshing again. A revoked refresh token marks the connection ``needs_reauth`` once.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections import defaultdict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from journeyhub.errors import ReauthRequired
from journeyhub.logs import get_logger
from journeyhub.model import Connection

if TYPE_CHECKING:  # the hub makes its Authenticator: only the annotation refers back to it
    from journeyhub.hub import Hub

log = get_logger(__name__)
LEASE_TTL = 30.0
# Credentials expiring later than this are not refreshed now: longer than any plugin's own
# refresh margin (Google's is 2 minutes), so the plugin is asked in time.
FRESH_MARGIN = 300.0


def fresh(credentials: Mapping[str, Any]) -> bool:
    """Whether the credentials say they stay valid for more than ``FRESH_MARGIN``."""
    expires_at = credentials.get("expires_at")
    return isinstance(expires_at, int | float) and expires_at - time.time() > FRESH_MARGIN


class Authenticator:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.holder = f"{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def credentials(
        self, connection: Connection, credentials: dict[str, Any], *, refused: bool = False
    ) -> dict[str, Any]:
        """Credentials to call the vendor with now (refreshed when the plugin says so).

        Credentials that say they are good for a while yet (``expires_at``, in epoch seconds,
        more than ``FRESH_MARGIN`` away) are used as they are: no lock, no lease, no store
        read. The plugin is asked, under the lock, only near the expiry or after a refusal."""
        if not self.hub.registry.implements(connection.vendor, "journeyhub_authenticate"):
            return credentials
        if not refused and fresh(credentials):
            return credentials
        async with self._locks[connection.id]:
            latest = await self.hub.store.connections.get(connection.id)
            if latest is not None and latest.status == "needs_reauth":
                # Another caller was just told the refresh token is dead: do not ask again.
                raise ReauthRequired("the connection needs to be re-authorised")
            current = await self._stored(connection.id) or credentials
            if refused and current != credentials:
                return current  # another caller refreshed while we waited
            lease = f"auth:{connection.id}"
            while not await self.hub.store.leases.claim(lease, self.holder, LEASE_TTL):
                await asyncio.sleep(0.2)  # another process is refreshing
                fresher = await self._stored(connection.id)
                if refused and fresher and fresher != credentials:
                    return fresher
            try:
                current = await self._stored(connection.id) or current
                try:
                    refreshed = await self.hub.registry.call(
                        connection.vendor,
                        "journeyhub_authenticate",
                        connection=connection,
                        credentials=current,
                        http=self.hub.http,
                        refused=refused,
                    )
                except ReauthRequired as exc:
                    await self.mark_needs_reauth(connection, exc.message)
                    raise
                if refreshed:
                    refreshed = dict(refreshed)
                    await self.hub.store.connections.set_credentials(connection.id, refreshed)
                    self.hub.connection_cache.invalidate(connection.id)
                    log.info("credentials_refreshed", connection_id=connection.id)
                    return refreshed
                return current
            finally:
                await self.hub.store.leases.release(lease, self.holder)

    async def _stored(self, connection_id: str) -> dict[str, Any] | None:
        found = await self.hub.store.connections.get_with_credentials(connection_id)
        return None if found is None else found[1]

    async def mark_needs_reauth(self, connection: Connection, reason: str) -> None:
        current = await self.hub.store.connections.get(connection.id)
        if current is None or current.status == "needs_reauth":
            return
        await self.hub.store.connections.set_status(connection.id, "needs_reauth")
        self.hub.connection_cache.invalidate(connection.id, connection.tenant_id)
        await self.hub.store.audit.record(
            tenant_id=connection.tenant_id,
            actor="system",
            action="connection.needs_reauth",
            connection_id=connection.id,
            after={"reason": reason},
        )
        log.error("connection_needs_reauth", connection_id=connection.id, reason=reason)
