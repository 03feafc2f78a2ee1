"""``journey_started`` → two actions through the Zapier bridge: Create Client, then Create
Project, each to the catch hook of the Zap that performs it.

Each envelope's id is derived from the delivery's idempotency key and the action, so a retried
delivery (say, Create Project got a 429 after Create Client was accepted) sends Create Client
again with the same id: the Zap drops it, and Create Project goes through once.
"""

from __future__ import annotations

from typing import Any

import httpx
from journeyhub.connectors.zapier import action_id, send_action, zapier_request_id
from journeyhub.errors import PermanentError
from journeyhub.model import JourneyEvent, PushResult

from journeyhub_honeybook.config import ACTIONS, HoneyBookConfig

PUSH_EVENT_TYPES = ("journey_started",)


def action_payloads(event: JourneyEvent, mapped: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The ``data`` of each action, from the mapped fields (README: field by field). Every key
    is always present (null when unknown): Zapier offers a field for mapping only once a
    sample carried it."""
    client = mapped.get("client") or {}
    project = mapped.get("project") or {}
    full_name, email = client.get("full_name"), client.get("email")
    if not full_name or not email:
        # Both HoneyBook actions require them; a Zap run without them would only fail later.
        raise PermanentError(
            "HoneyBook needs the client's full name and email (client.name, client.email)"
        )
    ours = {"journeyhub_client_id": event.client.id}
    return {
        "create_client": {
            "full_name": full_name,
            "email": email,
            "phone_number": client.get("phone_number"),
            **ours,
        },
        "create_project": {
            "client_full_name": full_name,
            "client_email": email,
            "phone_number": client.get("phone_number"),
            "project_type": project.get("project_type"),
            "project_date": project.get("project_date"),
            "project_details": project.get("project_details"),
            "project_budget": project.get("project_budget"),
            "project_location": project.get("project_location"),
            "journey_instance_id": event.journey_instance_id,
            **ours,
        },
    }


async def push(
    http: httpx.AsyncClient,
    config: HoneyBookConfig,
    secret: str,
    event: JourneyEvent,
    mapped: dict[str, Any],
    idempotency_key: str,
) -> PushResult:
    targets = [(a, url) for a in ACTIONS if (url := config.catch_hook_url(a))]
    if not targets:
        raise PermanentError("no catch_hook_urls are configured for this honeybook connection")
    payloads = action_payloads(event, mapped)
    run_ids: dict[str, str] = {}
    status = None
    for action, url in targets:  # in order: the client before its project
        response = await send_action(
            http,
            url,
            secret,
            action_id(idempotency_key, action),
            action,
            payloads[action],
            config.timeout_seconds,
            occurred_at=event.occurred_at,
        )
        status = response.status_code
        run_ids[f"zapier_{action}"] = zapier_request_id(response) or ""
    skipped = [a for a in ACTIONS if not config.catch_hook_url(a)]
    return PushResult(
        vendor_status=status,
        external_ids=run_ids,
        detail=f"no catch hook for {', '.join(skipped)}: not sent" if skipped else None,
    )
