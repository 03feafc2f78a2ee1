"""Stripe webhook signatures, checked the way Stripe's own libraries check them.

``Stripe-Signature: t=<unix seconds>,v1=<hex>,v1=<hex>,v0=<hex>`` where each ``v1`` is
HMAC-SHA256 of ``"<t>.<raw body>"`` keyed with the whole signing secret string (``whsec_``
included), in lower-case hex. During a secret roll Stripe signs with every live secret and
sends one ``v1`` per secret, so a request is genuine when any ``v1`` matches any secret we hold.
``v0`` is a legacy scheme and is ignored, as stripe-python (``WebhookSignature``) does.

Differences from stripe-python, on purpose: a timestamp too far in the *future* is stale
too (the library only checks the past), and every way a header can be malformed is a
:class:`WebhookRejected`, never another exception (the gateway would answer 500).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import msgspec
from journeyhub.errors import WebhookRejected

SCHEME = "v1"
HEADER = "stripe-signature"
MAX_HEADER_LENGTH = 8192  # Stripe's header is ~80 chars per secret; anything huge is junk
_HEX_SIGNATURE = re.compile(r"[0-9a-f]{64}")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
MAX_EVENT_ID_LENGTH = 255


def compute_signature(secret: str, timestamp: int, body: bytes) -> str:
    """The hex ``v1`` value Stripe computes for ``body`` at ``timestamp`` with ``secret``."""
    message = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def parse_header(header: str) -> tuple[int, list[str]]:
    """Split a Stripe-Signature header into its timestamp and its ``v1`` signatures."""
    if len(header) > MAX_HEADER_LENGTH:
        raise WebhookRejected("bad_signature", "Stripe-Signature header is too long")
    timestamp: int | None = None
    signatures: list[str] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            continue
        if key == "t" and _TIMESTAMP.fullmatch(value):
            timestamp = int(value)
        elif key == SCHEME and _HEX_SIGNATURE.fullmatch(value):
            signatures.append(value)  # anything else cannot be a Stripe signature: skipped
    if timestamp is None:
        raise WebhookRejected("bad_signature", "Stripe-Signature has no valid t= timestamp")
    if not signatures:
        raise WebhookRejected("bad_signature", f"Stripe-Signature has no {SCHEME} signature")
    return timestamp, signatures


def verify_signature(
    header: str | None,
    body: bytes,
    secrets: Iterable[str],
    *,
    now: datetime,
    tolerance: float = 300,
) -> int:
    """Check ``header`` against ``body`` with any of ``secrets``; return its timestamp.

    Same order as Stripe: the signature first, then the clock, so a forged request learns
    nothing about our tolerance.
    """
    if not header:
        raise WebhookRejected("missing_signature", "no Stripe-Signature header")
    timestamp, presented = parse_header(header)
    matched = False
    for secret in secrets:
        if not secret:
            continue
        expected = compute_signature(secret, timestamp, body)
        # Compare against every entry (no early exit) so timing says nothing about which.
        for signature in presented:
            matched |= hmac.compare_digest(expected, signature)
    if not matched:
        raise WebhookRejected("bad_signature", "no v1 signature matches the signing secret")
    age = now.timestamp() - timestamp
    if abs(age) > tolerance:
        raise WebhookRejected(
            "stale",
            f"Stripe-Signature timestamp is {age:+.0f}s from now (tolerance {tolerance:g}s)",
        )
    return timestamp


def parse_event(body: bytes) -> dict[str, Any]:
    """Decode a verified body: a JSON object with string ``id`` and ``type``."""
    try:
        event = msgspec.json.decode(body)
    except (msgspec.DecodeError, ValueError, RecursionError):
        raise WebhookRejected("bad_body", "the body is not JSON") from None
    if not isinstance(event, dict):
        raise WebhookRejected("bad_body", "the body is not a JSON object")
    event_id, event_type = event.get("id"), event.get("type")
    if not isinstance(event_id, str) or not 0 < len(event_id) <= MAX_EVENT_ID_LENGTH:
        raise WebhookRejected("bad_body", "the event has no string id")
    if not isinstance(event_type, str) or not event_type:
        raise WebhookRejected("bad_body", "the event has no string type")
    return event
