"""Resend email events → trigger drafts.

Payload (resend-python ``webhooks/_webhook_event.py``): ``{"type": "email.bounced",
"created_at", "data": {"email_id", "from", "to": [...], "subject", "tags": {name: value},
"bounce"/"click"/"failed"/"suppressed": {details}}}``. Source ids come from the content, not
the Svix message id, so the same event makes the same trigger however it reaches us (a retry, a
dashboard replay, a second endpoint): ``<email_id>:<type>:<recipient>``, plus for opens and
clicks, which repeat, the event's own time. Bounces, complaints and suppressions give a draft
per recipient, each with ``data["email"]`` so the kernel suppresses every address; a bounce
whose ``bounce.type`` is not ``Permanent`` (``Transient``, ``Temporary``: a full mailbox, a
server down) carries ``data["suppress"] = False``, so the address is mailed again later.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any

import msgspec
from journeyhub.kit import StoredWebhook, TriggerDraft

from journeyhub_resend.compose import CLIENT_TAG, CLIENT_TAG_B32

# Resend's email events, in the order they happen, and the trigger each becomes (None: none).
TRIGGERS: dict[str, str | None] = {
    "email.scheduled": None,
    "email.sent": None,
    "email.delivered": "email_delivered",
    "email.delivery_delayed": None,
    "email.opened": "email_opened",
    "email.clicked": "email_clicked",
    "email.bounced": "email_bounced",
    "email.complained": "email_complained",
    "email.failed": "email_failed",
    "email.suppressed": "email_suppressed",
}
PER_RECIPIENT = frozenset({"email.bounced", "email.complained", "email.suppressed"})
REPEATABLE = frozenset({"email.opened", "email.clicked"})
# Each event's own details, flattened for the journey engine: (its part of data, {key: as}).
DETAILS: dict[str, tuple[str, dict[str, str]]] = {
    "email.bounced": (
        "bounce",
        {"type": "bounce_type", "subType": "bounce_subtype", "message": "bounce_message"},
    ),
    "email.clicked": ("click", {"link": "link", "timestamp": "clicked_at"}),
    "email.failed": ("failed", {"reason": "failed_reason"}),
    "email.suppressed": (
        "suppressed",
        {"type": "suppressed_type", "message": "suppressed_message"},
    ),
}


def drafts(webhook: StoredWebhook) -> list[TriggerDraft] | None:
    try:
        event = msgspec.json.decode(webhook.body)
    except msgspec.DecodeError:
        return None  # verified at the gateway, so this cannot be a Resend event
    kind = event.get("type") if isinstance(event, dict) else None
    if not isinstance(kind, str) or kind not in TRIGGERS:
        return None
    if (trigger := TRIGGERS[kind]) is None:
        return []
    data: dict[str, Any] = event["data"] if isinstance(event.get("data"), dict) else {}
    email_id = str(data.get("email_id") or webhook.event_id)
    listed = data["to"] if isinstance(data.get("to"), list) else [data.get("to")]
    recipients: list[str | None] = [r for r in listed if isinstance(r, str) and r]
    part, names = DETAILS.get(kind, ("", {}))
    found = data[part] if isinstance(data.get(part), dict) else {}
    detail = {name: found[key] for key, name in names.items() if found.get(key) is not None}
    if kind == "email.bounced" and str(detail.get("bounce_type", "Permanent")) != "Permanent":
        detail["suppress"] = False  # a soft bounce: the address stays usable
    when = detail.get("clicked_at") or event.get("created_at")
    again = f":{when or webhook.event_id}" if kind in REPEATABLE else ""
    tags = _tags(data.get("tags"))
    common = {"email_id": email_id, "subject": data.get("subject"), "from": data.get("from")}
    return [
        TriggerDraft(
            type=trigger,  # type: ignore[arg-type]
            source_event_id=f"{email_id}:{kind}:{(to or '').lower()}{again}",
            occurred_at=_when(when),
            client_id=_client_id(tags),
            client_email=to,
            data={**common, "event": kind, "tags": tags, **detail, "email": to and to.lower()},
        )
        for to in (recipients if kind in PER_RECIPIENT else recipients[:1]) or [None]
    ]


def _when(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (AttributeError, ValueError):  # not a string, or not a time
        return None


def _tags(tags: Any) -> dict[str, str]:
    """Webhook ``tags`` as ``{name: value}``, from either the object or the list form."""
    if isinstance(tags, list):
        listed = [t for t in tags if isinstance(t, dict) and "name" in t]
        tags = {str(t["name"]): t.get("value", "") for t in listed}
    return {str(k): str(v) for k, v in tags.items()} if isinstance(tags, dict) else {}


def _client_id(tags: dict[str, str]) -> str | None:
    """Our client id, as ``compose`` tagged the email: base32 when it was not tag-safe."""
    encoded = tags.get(CLIENT_TAG_B32)
    if tags.get(CLIENT_TAG) or not encoded:
        return tags.get(CLIENT_TAG) or None
    try:
        return base64.b32decode(encoded + "=" * (-len(encoded) % 8)).decode()
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
