"""Resend email events → trigger drafts.

Payload (resend-python ``webhooks/_webhook_event.py``, resend.com/docs/webhooks):
``{"type": "email.bounced", "created_at": …, "data": {"email_id", "from", "to": [...],
"subject", "created_at", "tags": {name: value}, "bounce": {"type", "subType", "message"},
"click": {"link", "timestamp", …}, "failed": {"reason"}, "suppressed": {"type", "message"}}}``.

Source ids come from the event's content, not from the Svix message id, so the same Resend event
makes the same trigger however it reaches us (a Svix retry, a replay from the dashboard, a
second endpoint pointed at the same connection):
- lifecycle events happen once per email and recipient: ``<email_id>:<type>:<recipient>``;
- opens and clicks can repeat, so the event's own time tells them apart:
  ``<email_id>:<type>:<recipient>:<when>`` (a click's ``click.timestamp``, else ``created_at``).
Bounces, complaints and suppressions give one draft per impacted recipient, each with
``data["email"]`` so the kernel suppresses every address; other events give one draft for the
first recipient.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from journeyhub.model import StoredWebhook, TriggerDraft

from journeyhub_resend.tags import as_dict, client_id_from

TRIGGERS: dict[str, str] = {
    "email.delivered": "email_delivered",
    "email.opened": "email_opened",
    "email.clicked": "email_clicked",
    "email.bounced": "email_bounced",
    "email.complained": "email_complained",
    "email.failed": "email_failed",
    "email.suppressed": "email_suppressed",
}
IGNORED = frozenset({"email.sent", "email.delivery_delayed"})  # known, no trigger
WEBHOOK_EVENT_TYPES: tuple[str, ...] = (
    "email.sent",
    "email.delivered",
    "email.delivery_delayed",
    "email.opened",
    "email.clicked",
    "email.bounced",
    "email.complained",
    "email.failed",
    "email.suppressed",
)
PER_RECIPIENT = frozenset({"email.bounced", "email.complained", "email.suppressed"})
REPEATABLE = frozenset({"email.opened", "email.clicked"})


def _when(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _details(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    """The event-specific part, flattened for the journey engine."""
    out: dict[str, Any] = {}
    if kind == "email.bounced" and isinstance(bounce := data.get("bounce"), dict):
        out["bounce_type"] = bounce.get("type")
        out["bounce_subtype"] = bounce.get("subType")
        out["bounce_message"] = bounce.get("message")
    if kind == "email.clicked" and isinstance(click := data.get("click"), dict):
        out["link"] = click.get("link")
        out["clicked_at"] = click.get("timestamp")
    if kind == "email.failed" and isinstance(failed := data.get("failed"), dict):
        out["failed_reason"] = failed.get("reason")
    if kind == "email.suppressed" and isinstance(supp := data.get("suppressed"), dict):
        out["suppressed_type"] = supp.get("type")
        out["suppressed_message"] = supp.get("message")
    return {k: v for k, v in out.items() if v is not None}


def drafts(webhook: StoredWebhook) -> list[TriggerDraft] | None:
    try:
        event = msgspec.json.decode(webhook.body)
    except msgspec.DecodeError:
        return None  # verified at the gateway, so this cannot be a Resend event
    if not isinstance(event, dict):
        return None
    kind = event.get("type")
    if not isinstance(kind, str):
        return None
    if kind in IGNORED:
        return []
    if (trigger := TRIGGERS.get(kind)) is None:
        return None
    data = event.get("data") if isinstance(event.get("data"), dict) else {}
    email_id = str(data.get("email_id") or webhook.event_id)
    to = data.get("to")
    listed = to if isinstance(to, list) else [to]
    recipients = [r for r in listed if isinstance(r, str) and r]
    tags = as_dict(data.get("tags"))
    detail = _details(kind, data)
    when = detail.get("clicked_at") or event.get("created_at")
    occurred_at = _when(when)
    common = {
        "email_id": email_id,
        "subject": data.get("subject"),
        "from": data.get("from"),
        "event": kind,
        "tags": tags,
        **detail,
    }
    targets = recipients if kind in PER_RECIPIENT else recipients[:1]
    out = []
    for recipient in targets or [None]:
        source = f"{email_id}:{kind}:{(recipient or '').lower()}"
        if kind in REPEATABLE:
            source += f":{when or webhook.event_id}"
        out.append(
            TriggerDraft(
                type=trigger,  # type: ignore[arg-type]
                source_event_id=source,
                occurred_at=occurred_at,
                client_id=client_id_from(tags),
                client_email=recipient,
                data={**common, "email": recipient.lower() if recipient else None},
            )
        )
    return out
