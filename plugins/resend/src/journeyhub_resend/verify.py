"""Verifying Resend webhooks at the gateway, before anything is acknowledged.

Resend signs webhooks with Svix: ``svix-id``, ``svix-timestamp`` and ``svix-signature``
(``v1,<base64>`` items separated by spaces), an HMAC-SHA256 of ``id.timestamp.body`` keyed with
the base64 part of the endpoint's ``whsec_…`` secret. Every current and previous secret is tried,
so a rotation loses nothing. Garbage of any kind is a :class:`WebhookRejected`, never another
exception (that would be a 500).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import msgspec
from journeyhub import signing
from journeyhub.errors import WebhookRejected
from journeyhub.model import WebhookReceipt

from journeyhub_resend.config import valid_secret


class _Envelope(msgspec.Struct):
    type: str


def webhook_secrets(credentials: Mapping[str, Any]) -> list[str]:
    """Current secret first, then the ones being rotated out; unusable ones are left out."""
    previous = credentials.get("previous_webhook_secrets")
    candidates = [
        credentials.get("webhook_secret"),
        *(previous if isinstance(previous, list) else []),
    ]
    return [s for s in candidates if valid_secret(s)]


def verify(
    credentials: Mapping[str, Any],
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: datetime,
    tolerance: float,
) -> WebhookReceipt:
    secrets = webhook_secrets(credentials)
    if not secrets:
        raise WebhookRejected(
            "bad_signature", "this connection has no webhook_secret to check with"
        )
    msg_id = signing.verify(
        secrets,
        {k.lower(): v for k, v in headers.items()},
        body,
        now=now,
        tolerance=tolerance,
        prefix="svix",
    )
    try:
        envelope = msgspec.json.decode(body, type=_Envelope)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise WebhookRejected("bad_body", f"not a Resend event: {exc}") from None
    return WebhookReceipt(event_id=msg_id, event_type=envelope.type)
