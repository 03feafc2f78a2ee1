"""Resend email tags: how our ids ride along an email and come back in its webhook events.

Resend allows only ASCII letters, digits, ``_`` and ``-`` in tag names and values, at most 256
characters. Our client ids may hold other characters, and a lossy clean-up would hand the journey
engine the wrong client, so a client id that is not tag-safe travels base32-encoded (alphabet
``A-Z2-7``, padding dropped) under another tag name; the two names can never be confused.
Sending attaches tags as a list of ``{name, value}``; webhook events carry them as an object.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

TAG_SAFE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
CLIENT_TAG = "client_id"
CLIENT_TAG_B32 = "client_id_b32"
TASK_TAG = "jh_task"


def safe_value(value: str) -> str:
    """A tag-safe rendering of ``value`` (lossy: for tracing, never to recover an id)."""
    cleaned = re.sub(r"[^A-Za-z0-9_-]", "_", value)[:256]
    return cleaned or "_"


def client_tag(client_id: str) -> dict[str, str] | None:
    if TAG_SAFE.match(client_id):
        return {"name": CLIENT_TAG, "value": client_id}
    encoded = base64.b32encode(client_id.encode()).decode().rstrip("=")
    if len(encoded) <= 256:
        return {"name": CLIENT_TAG_B32, "value": encoded}
    return None  # too long to carry: the kernel resolves the client by email instead


def email_tags(client_id: str | None, task_id: str) -> list[dict[str, str]]:
    tags = [{"name": TASK_TAG, "value": safe_value(task_id)}]
    if client_id and (tag := client_tag(client_id)):
        tags.insert(0, tag)
    return tags


def as_dict(tags: Any) -> dict[str, str]:
    """Webhook ``tags`` as ``{name: value}``, from either the object or the list form."""
    if isinstance(tags, dict):
        return {str(k): str(v) for k, v in tags.items()}
    if isinstance(tags, list):
        return {
            str(t["name"]): str(t.get("value", ""))
            for t in tags
            if isinstance(t, dict) and "name" in t
        }
    return {}


def client_id_from(tags: Any) -> str | None:
    found = as_dict(tags)
    if value := found.get(CLIENT_TAG):
        return value
    if encoded := found.get(CLIENT_TAG_B32):
        try:
            padded = encoded + "=" * (-len(encoded) % 8)
            return base64.b32decode(padded).decode()
        except (binascii.Error, ValueError, UnicodeDecodeError):
            return None
    return None
