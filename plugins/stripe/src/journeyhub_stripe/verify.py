"""Stripe webhook signatures, checked as Stripe's own libraries do. ``Stripe-Signature:
t=<unix seconds>,v1=<hex>,v1=<hex>,v0=<hex>``: each ``v1`` is the hex HMAC-SHA256 of
``"<t>.<raw body>"`` keyed with the whole signing secret (``whsec_`` included), one per live
secret during a roll, so any ``v1`` matching any secret we hold will do; the legacy ``v0`` is
ignored, as in stripe-python. Unlike it, a timestamp too far in the *future* is stale too, and
junk is a :class:`WebhookRejected`, never another exception (the gateway would answer 500)."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from datetime import datetime
from typing import Annotated

import msgspec
from journeyhub.kit import WebhookRejected

HEADER = "stripe-signature"
MAX_HEADER_LENGTH = 8192  # Stripe's header is ~80 chars per secret; anything huge is junk
_HEX_SIGNATURE = re.compile(r"[0-9a-f]{64}")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")


class Event(msgspec.Struct):
    """What the gateway reads of a verified body: the event's id (its dedupe key) and type."""

    id: Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
    type: Annotated[str, msgspec.Meta(min_length=1)]


def compute_signature(secret: str, timestamp: int, body: bytes) -> str:
    """The hex ``v1`` value Stripe computes for ``body`` at ``timestamp`` with ``secret``."""
    message = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def verify_signature(
    header: str | None, body: bytes, secrets: Iterable[str], *, now: datetime, tolerance: float
) -> int:
    """Check ``header`` against ``body`` with any of ``secrets``; return its timestamp. As
    Stripe does, the signature first, then the clock: a forgery learns nothing of our
    tolerance."""
    if not header:
        raise WebhookRejected("missing_signature", "no Stripe-Signature header")
    if len(header) > MAX_HEADER_LENGTH:
        raise WebhookRejected("bad_signature", "Stripe-Signature header is too long")
    pairs = [item.strip().partition("=") for item in header.split(",")]
    # Anything that cannot be a Stripe timestamp or signature is skipped.
    times = [int(value) for key, _, value in pairs if key == "t" and _TIMESTAMP.fullmatch(value)]
    presented = [v for key, _, v in pairs if key == "v1" and _HEX_SIGNATURE.fullmatch(v)]
    if not times or not presented:
        raise WebhookRejected("bad_signature", "Stripe-Signature lacks a valid t= or v1=")
    timestamp = times[-1]
    expected = [compute_signature(secret, timestamp, body) for secret in filter(None, secrets)]
    # Every pair is compared (a list, no early exit) so timing says nothing about which matched.
    if not any([hmac.compare_digest(e, p) for e in expected for p in presented]):
        raise WebhookRejected("bad_signature", "no v1 signature matches the signing secret")
    age = now.timestamp() - timestamp
    if abs(age) > tolerance:
        raise WebhookRejected("stale", f"timestamp {age:+.0f}s from now, tolerance {tolerance:g}s")
    return timestamp


def parse_event(body: bytes) -> Event:
    """A verified body as an event: a JSON object with string ``id`` and ``type``."""
    try:
        return msgspec.json.decode(body, type=Event)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as exc:
        raise WebhookRejected("bad_body", f"not a Stripe event: {exc}") from None
