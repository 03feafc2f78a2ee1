"""Standard Webhooks signatures (also the Svix scheme that Resend uses, with ``svix-`` headers),
and the tokens of senders that cannot sign.

Signing uses the ``standardwebhooks`` library. Verification parses the headers itself so that
garbage is a clean rejection (never an exception the gateway would turn into a 500), the clock
is injectable for tests, and several ``v1`` signatures are accepted for secret rotation.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook

from journeyhub.errors import WebhookRejected

_TIMESTAMP = re.compile(r"[0-9]{1,12}")
# URL-safe, so it goes into ?token= unchanged; 32 characters of base64url are 192 bits.
_TOKEN = re.compile(r"[A-Za-z0-9_-]{32,256}")


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def new_token() -> str:
    """A random token (256 bits, URL-safe) for senders that cannot sign, as
    ``x-journeyhub-token`` or ``?token=``. It is never the signing secret: a token travels in
    URLs and in the sender's settings and history, a signing key must not."""
    return secrets.token_urlsafe(32)


def token_problem(token: str, secret: str) -> str | None:
    """Why ``token`` cannot be a connection's token next to its signing ``secret``; None when
    it can."""
    if not _TOKEN.fullmatch(token):
        return "token must be 32 to 256 URL-safe characters (A-Z a-z 0-9 - _)"
    key = secret.removeprefix("whsec_")
    if token in secret or (key and key in token):
        return "token must not be, or contain, the signing secret"
    return None


def token_matches(presented: str, token: str) -> bool:
    """Constant-time comparison of a presented token with the connection's."""
    return hmac.compare_digest(
        presented.strip().encode("utf-8", "surrogatepass"), token.encode("utf-8", "surrogatepass")
    )


def valid_secret(secret: str) -> bool:
    try:
        Webhook(secret)
    except Exception:  # binascii.Error, ValueError, EmptyWebhookSecretError (a bare Exception)
        return False
    return True


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value (``v1,<base64>``)."""
    moment = datetime.fromtimestamp(timestamp, tz=UTC)
    return Webhook(secret).sign(msg_id=msg_id, timestamp=moment, data=body.decode())


def signed_headers(
    secret: str, msg_id: str, body: bytes, *, prefix: str = "webhook", timestamp: int | None = None
) -> dict[str, str]:
    ts = int(datetime.now(UTC).timestamp()) if timestamp is None else timestamp
    return {
        f"{prefix}-id": msg_id,
        f"{prefix}-timestamp": str(ts),
        f"{prefix}-signature": sign(secret, msg_id, ts, body),
    }


def verify(
    secrets_: list[str],
    headers: dict[str, str],
    body: bytes,
    *,
    now: datetime,
    tolerance: float = 300.0,
    prefix: str = "webhook",
) -> str:
    """Check a Standard Webhooks / Svix signature against any of ``secrets_``; return the
    message id. Raises :class:`WebhookRejected` saying what was wrong."""
    msg_id = headers.get(f"{prefix}-id", "")
    raw_ts = headers.get(f"{prefix}-timestamp", "")
    raw_sig = headers.get(f"{prefix}-signature", "")
    if not (msg_id and raw_ts and raw_sig):
        raise WebhookRejected(
            "missing_signature", f"{prefix}-id, -timestamp and -signature are required"
        )
    # Plain ASCII digits only: int() also takes "1_0", " 10 ", other scripts' digits, and a
    # number too large for a float (an OverflowError below, a 500 at the gateway).
    if not _TIMESTAMP.fullmatch(raw_ts):
        raise WebhookRejected("bad_signature", f"{prefix}-timestamp is not a number")
    timestamp = int(raw_ts)
    if abs(now.timestamp() - timestamp) > tolerance:
        raise WebhookRejected("stale", f"timestamp is outside the {tolerance:g}s tolerance")
    presented: list[bytes] = []
    for part in raw_sig.split():
        version, _, value = part.partition(",")
        if version == "v1" and value:
            try:
                presented.append(base64.b64decode(value, validate=True))
            except (binascii.Error, ValueError):
                continue
    if not presented:
        raise WebhookRejected("bad_signature", "no v1 signature in the header")
    try:
        signed = f"{msg_id}.{timestamp}.".encode() + body
    except UnicodeError:  # an id no sender could have signed (lone surrogates)
        raise WebhookRejected("bad_signature", "no signature matches") from None
    for secret in secrets_:
        key = _key(secret)
        if key is None:
            continue  # a malformed or empty stored secret never matches
        expected = hmac.new(key, signed, hashlib.sha256).digest()
        if any(hmac.compare_digest(expected, sig) for sig in presented):
            return msg_id
    raise WebhookRejected("bad_signature", "no signature matches")


def _key(secret: str) -> bytes | None:
    """The HMAC key of a ``whsec_<base64>`` secret, as the standardwebhooks library reads it;
    None when it is not one. The signature is computed here over the raw body bytes (the
    library signs a ``str``, so a body that is not UTF-8 could never verify)."""
    try:  # the library's own reading: the prefix dropped, padding added, lenient base64
        key = base64.b64decode(secret.removeprefix("whsec_") + "==")
    except (binascii.Error, ValueError):
        return None
    return key or None
