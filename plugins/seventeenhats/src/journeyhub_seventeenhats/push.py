"""``journey_started`` / ``client_updated`` → one ``upsert_contact`` action through the Zapier
bridge. The Zap does the find-or-create: 17hats "Find Contact" by email with "create if not
found" ticked, then "Update Contact" on the contact found or made (README).

The envelope id comes from the delivery's idempotency key, so a retried delivery repeats it;
and an upsert by email is idempotent by nature, so even a Zap without a dedupe step makes one
contact.
"""

from __future__ import annotations

from typing import Any

import httpx
from journeyhub.connectors.zapier import action_id, send_action, zapier_request_id
from journeyhub.errors import PermanentError
from journeyhub.model import JourneyEvent, PushResult

from journeyhub_seventeenhats.config import ACTION, SeventeenHatsConfig

PUSH_EVENT_TYPES = ("journey_started", "client_updated")


def contact_payload(event: JourneyEvent, mapped: dict[str, Any]) -> dict[str, Any]:
    """The envelope's ``data``. Every key is always present (null when unknown): Zapier offers
    a field for mapping only once a sample carried it."""
    contact = mapped.get("contact") or {}
    email = contact.get("primary_email")
    if not email:
        raise PermanentError("17hats contacts are found by email: the client has none")
    return {
        "journeyhub_client_id": event.client.id,
        "is_company": False,
        # 17hats requires a first name; an email-only client gets its email there.
        "first_name": contact.get("first_name") or email,
        "last_name": contact.get("last_name"),
        "type": contact.get("type"),
        "primary_email": email,
        "primary_phone": contact.get("primary_phone"),
        "notes": contact.get("notes"),
        "event": event.type,
    }


async def push(
    http: httpx.AsyncClient,
    config: SeventeenHatsConfig,
    secret: str,
    event: JourneyEvent,
    mapped: dict[str, Any],
    idempotency_key: str,
) -> PushResult:
    url = config.catch_hook_url(ACTION)
    if url is None:
        raise PermanentError("no catch_hook_urls.upsert_contact is configured for this connection")
    response = await send_action(
        http,
        url,
        secret,
        action_id(idempotency_key, ACTION),
        ACTION,
        contact_payload(event, mapped),
        config.timeout_seconds,
        occurred_at=event.occurred_at,
    )
    return PushResult(
        vendor_status=response.status_code,
        external_ids={"zapier_upsert_contact": zapier_request_id(response) or ""},
    )
