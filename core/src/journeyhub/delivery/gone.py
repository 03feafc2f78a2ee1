"""A connection whose endpoint said it is gone for good (``EndpointGone``, a 410 Gone).

The Standard Webhooks spec asks a sender to disable such an endpoint and stop sending to it.
The connection is disabled (so the task gate lets nothing more through) with the status
``gone``, which its health shows; the change and its reason are audited. A person re-enables
it (``PATCH`` with ``enabled: true``, usually with a new URL), which makes it ``active`` again.
"""

from __future__ import annotations

from journeyhub.hub import Hub
from journeyhub.logs import get_logger
from journeyhub.model import Connection

GONE = "gone"
log = get_logger(__name__)


async def disable_gone_endpoint(hub: Hub, connection: Connection, reason: str) -> None:
    """Disable ``connection`` for good and audit why; nothing when it is already so."""
    current = await hub.store.connections.get(connection.id)
    if current is None or (current.status == GONE and not current.enabled):
        return
    await hub.store.connections.update(
        connection.id,
        connection.tenant_id,
        {"enabled": False, "status": GONE},
        actor="system",
    )
    hub.connection_cache.invalidate(connection.id, connection.tenant_id)
    await hub.store.audit.record(
        tenant_id=connection.tenant_id,
        actor="system",
        action="connection.endpoint_gone",
        connection_id=connection.id,
        after={"reason": reason, "enabled": False, "status": GONE},
    )
    log.error("connection_endpoint_gone_disabled", connection_id=connection.id, reason=reason)
