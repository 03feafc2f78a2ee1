"""Bounces through the kernel's trigger service: only a permanent one suppresses the address."""

from __future__ import annotations

import json

from journeyhub.hub import Hub
from journeyhub.model import StoredWebhook, utcnow
from journeyhub.services.connections import create_connection
from journeyhub.services.triggers import emit_triggers
from journeyhub.signing import new_secret
from journeyhub.testing.fixtures import TenantKeys
from journeyhub_resend import plugin


def _bounce(email_id: str, to: str, bounce_type: str) -> StoredWebhook:
    event = {
        "type": "email.bounced",
        "created_at": "2026-01-01T10:00:00.000Z",
        "data": {
            "email_id": email_id,
            "to": [to],
            "bounce": {"type": bounce_type, "subType": "General", "message": "bounced"},
        },
    }
    return StoredWebhook(
        vendor="resend",
        connection_id="-",
        tenant_id="-",
        event_id=email_id,
        event_type="email.bounced",
        received_at=utcnow(),
        headers={},
        body=json.dumps(event).encode(),
    )


async def test_a_transient_bounce_leaves_the_address_usable(hub: Hub, tenant: TenantKeys):
    connection = await create_connection(
        hub.store,
        hub.registry,
        tenant_id=tenant.id,
        vendor="resend",
        name="inbound mail",
        direction="inbound",
        enabled=True,
        config={},
        credentials={"webhook_secret": new_secret()},
        event_types=[],
        field_mappings=[],
        actor="test",
    )
    for email_id, to, kind in (
        ("e1", "soft@x.test", "Transient"),
        ("e2", "hard@x.test", "Permanent"),
    ):
        drafts = plugin.journeyhub_handle_webhook(webhook=_bounce(email_id, to, kind))
        assert await emit_triggers(hub, connection, drafts) == 1
    suppressed = await hub.store.triggers.suppressed(tenant.id, ["soft@x.test", "hard@x.test"])
    assert suppressed == {"hard@x.test": "bounced"}
