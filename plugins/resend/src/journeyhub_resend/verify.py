"""Verifying Resend webhooks at the gateway, before anything is acknowledged.

Resend signs with Svix (``svix-id``, ``svix-timestamp``, ``svix-signature``: an HMAC-SHA256 of
``id.timestamp.body`` keyed with the endpoint's ``whsec_…`` secret). Every current and previous
secret is tried, so a rotation loses nothing. Garbage is a ``WebhookRejected``, never a 500.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import msgspec
from journeyhub import signing
from journeyhub.kit import WebhookReceipt, WebhookRejected

from journeyhub_resend.config import valid_secret


class _Envelope(msgspec.Struct):
    type: str


def verify(
    credentials: Mapping[str, Any],
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: datetime,
    tolerance: float,
) -> WebhookReceipt:
    # The raw mapping, not decoded credentials: a bad stored secret is refused, never a failure.
    previous = credentials.get("previous_webhook_secrets")
    rotated = previous if isinstance(previous, list) else []
    secrets = [s for s in [credentials.get("webhook_secret"), *rotated] if valid_secret(s)]
    if not secrets:
        raise WebhookRejected("bad_signature", "this connection has no webhook_secret")
    lower = {k.lower(): v for k, v in headers.items()}
    msg_id = signing.verify(secrets, lower, body, now=now, tolerance=tolerance, prefix="svix")
    try:
        envelope = msgspec.json.decode(body, type=_Envelope)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise WebhookRejected("bad_body", f"not a Resend event: {exc}") from None
    return WebhookReceipt(event_id=msg_id, event_type=envelope.type)
