"""The Zapier bridge: what the connectors for vendors without a public API but with a Zapier
app (HoneyBook, 17hats) share. A library module, not a plugin: it registers no hooks.

**Out** (journeyhub → the user's Zap). :func:`send_action` POSTs one *action envelope* to a
"Webhooks by Zapier → Catch Hook" URL that the user pasted into the connection's config::

    {"action": "create_client", "version": 1, "id": "msg_…", "occurred_at": "2026-03-01T12:00:00Z",
     "data": {…the action's fields…}}

- ``action``: what the Zap should do; one catch hook may serve several actions (a Zap with
  Paths or Filters on ``action``). ``version``: :data:`ENVELOPE_VERSION`, raised only for a
  change that breaks existing Zaps; new fields in ``data`` are not breaking.
- ``id``: deterministic from the delivery and the action, so a retried delivery carries the
  same ``id`` (also sent as the ``webhook-id`` header). Zapier cannot drop a repeat by itself:
  the Zap must (a "Storage by Zapier" lookup of ``id`` + a Filter, or an action that is an
  upsert by nature, such as 17hats' Find-or-Create Contact).
- ``occurred_at``: when the journey event happened (the same on every retry).
- Signed per Standard Webhooks with the connection's ``secret`` (``webhook-id``,
  ``webhook-timestamp``, ``webhook-signature``). Zapier's Catch Hook does not check signatures;
  a Zap that wants to must use "Catch Raw Hook" and a Code step. Otherwise the catch-hook URL,
  which holds Zapier's own random token, is what keeps strangers out.
- Zapier answers ``200 {"status": "success", "id": …, "request_id": …, "attempt": …}`` once it
  has queued the Zap run (it runs later, asynchronously); 429 past its rate limits. Errors are
  classified by :func:`journeyhub.connectors.webhook.post_signed` (a 410 Gone is
  ``EndpointGone``: the kernel disables the connection).

**In** (the user's Zap → journeyhub). The Zap ends with "Webhooks by Zapier → POST" (payload
type JSON or form) to the connection's ``webhook_url``, with the connection's ``token`` as the
``x-journeyhub-token`` header (or ``?token=`` in the URL). The token is a separate random
value (:func:`journeyhub.signing.new_token`), never the signing secret: a Zap's settings and
its run history keep it in plain text. A connection made before tokens existed has none; its
Zaps send the secret, which is accepted only while the connection has no ``token`` (setting
one retires that use; the secret should then be rotated too, as Zapier has seen it). The
data is flat::

    trigger=payment_paid  id=<the vendor record's id>  [updated_at=…]  …the vendor's fields…

:func:`verify_zapier` checks the token in constant time and names the event; field names are
normalised (``"Client Email"``, ``clientEmail`` and ``client_email`` are one field) so a Zap
can be set up by hand without exact spelling. The trigger may also be given as ``?trigger=``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

import msgspec

from journeyhub import signing
from journeyhub.connectors.webhook import post_signed
from journeyhub.errors import ConnectorError, EndpointGone, WebhookRejected, classify_status
from journeyhub.model import WebhookReceipt, stable_id, utcnow
from journeyhub.vendor_http import VendorHttp, VendorResponse

ENVELOPE_VERSION = 1
TOKEN_HEADER = "x-journeyhub-token"  # noqa: S105 - a header name, not a secret
ACTION_HEADER = "x-journeyhub-action"
MAX_EVENT_ID = 200  # the gateway's dedupe key stays short; longer ids are hashed


class Envelope(msgspec.Struct, kw_only=True):
    """What a catch hook receives (see the module docstring)."""

    action: str
    version: int
    id: str
    occurred_at: datetime
    data: dict[str, Any]


class ZapierConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Base of a Zapier connector's config. A subclass names its actions in ``ACTIONS``."""

    ACTIONS: ClassVar[tuple[str, ...]] = ()

    catch_hook_urls: dict[str, str] = {}  # action -> the Zap's catch-hook URL
    timeout_seconds: float = 10.0  # Zapier queues the run and answers at once

    def __post_init__(self) -> None:
        for action, url in self.catch_hook_urls.items():
            if self.ACTIONS and action not in self.ACTIONS:
                raise ValueError(
                    f"catch_hook_urls: unknown action {action!r} (known: {', '.join(self.ACTIONS)})"
                )
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"catch_hook_urls.{action} must start with http:// or https://")
        if not 0 < self.timeout_seconds <= 60:
            raise ValueError("timeout_seconds must be in (0, 60]")

    def catch_hook_url(self, action: str) -> str | None:
        return self.catch_hook_urls.get(action) or None


class ZapierCredentials(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    secret: str  # signs what we send to Zapier
    # What the Zaps send back as x-journeyhub-token / ?token=. None only on connections made
    # before tokens existed: their Zaps send the secret (see the module docstring).
    token: str | None = None

    def __post_init__(self) -> None:
        # Long enough not to be guessed: it was the inbound token before tokens existed.
        if not (
            self.secret.startswith("whsec_")
            and signing.valid_secret(self.secret)
            and len(self.secret) >= len("whsec_") + 24
        ):
            raise ValueError(
                "secret must be a Standard Webhooks secret of 18+ bytes: whsec_<base64>"
            )
        if self.token is not None and (problem := signing.token_problem(self.token, self.secret)):
            raise ValueError(problem)


# --- out ---------------------------------------------------------------------------------------


def action_id(idempotency_key: str, action: str) -> str:
    """The envelope id of ``action`` for one delivery: the same on every retry."""
    return stable_id("msg", idempotency_key, action)


def redact_url(url: str) -> str:
    """A catch-hook URL with its token (the last path segment) masked: the URL is the only
    credential of a catch hook, so it never goes into an error message whole."""
    parts = urlsplit(url)
    segments = parts.path.rstrip("/").split("/")
    if len(segments) > 1 and segments[-1]:
        segments[-1] = "***"
    return f"{parts.scheme}://{parts.netloc}{'/'.join(segments)}/"


async def send_action(
    http: VendorHttp,
    url: str,
    secret: str,
    msg_id: str,
    action: str,
    payload: dict[str, Any],
    timeout: float,
    *,
    occurred_at: datetime | None = None,
) -> VendorResponse:
    """POST one signed action envelope to a Zapier catch hook; raise the classified error."""
    envelope = Envelope(
        action=action,
        version=ENVELOPE_VERSION,
        id=msg_id,
        occurred_at=occurred_at or utcnow(),
        data=payload,
    )
    body = msgspec.json.encode(envelope)
    try:
        return await post_signed(
            http,
            url,
            secret,
            msg_id,
            body,
            timeout=timeout,
            extra_headers={ACTION_HEADER: action},
        )
    except ConnectorError as exc:
        if exc.vendor_status is None:  # timeouts and dropped connections name no URL
            raise
        if isinstance(exc, EndpointGone):
            raise EndpointGone(
                f"Zapier catch hook {redact_url(url)} answered 410 Gone to {action}",
                vendor_status=410,
            ) from None
        raise classify_status(
            exc.vendor_status,
            f"Zapier catch hook {redact_url(url)} answered {exc.vendor_status} to {action}",
            getattr(exc, "retry_after", None),
        ) from None


def zapier_request_id(response: VendorResponse) -> str | None:
    """The id Zapier gave the queued run (``{"status": "success", "id": …}``), if any."""
    try:
        answer = response.json()
    except ValueError:
        return None
    if isinstance(answer, dict):
        value = answer.get("id") or answer.get("request_id")
        return value if isinstance(value, str) else None
    return None


# --- in ----------------------------------------------------------------------------------------

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_NOT_WORD = re.compile(r"[^a-z0-9]+")


def normalize(name: str) -> str:
    """``"Client Email"``, ``"clientEmail"``, ``"client-email"`` → ``"client_email"``."""
    return _NOT_WORD.sub("_", _CAMEL.sub("_", name).lower()).strip("_")


@dataclass(frozen=True)
class ZapierInbound:
    """A Zap's POST, parsed: the trigger's name, the record's id and the flat fields."""

    trigger: str
    record_id: str | None
    event_id: str
    fields: dict[str, Any]


def _decode(body: bytes, content_type: str) -> dict[str, Any]:
    if "x-www-form-urlencoded" in content_type:
        try:
            return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        except (UnicodeDecodeError, ValueError):
            raise WebhookRejected("bad_body", "the form body is not UTF-8") from None
    try:
        decoded = msgspec.json.decode(body)
    except (msgspec.DecodeError, ValueError, RecursionError):
        raise WebhookRejected("bad_body", "the body is neither JSON nor a form") from None
    if not isinstance(decoded, dict):
        raise WebhookRejected("bad_body", "the body is not a JSON object")
    return decoded


def _text(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float | str):
        text = str(value).strip()
        return text or None
    return None


def pick(fields: Mapping[str, Any], *names: str) -> str | None:
    """The first non-empty text among ``names`` (normalised field names)."""
    for name in names:
        if (text := _text(fields.get(name))) is not None:
            return text
    return None


def _event_id(
    trigger: str, record_id: str | None, body: bytes, fields: Mapping[str, Any], versioned: bool
) -> str:
    digest = hashlib.sha256(body).hexdigest()
    if record_id is None:
        # No id mapped in the Zap: a replay of the same run has the same body, hence the same
        # id; two different events that look exactly alike collapse into one.
        event_id = f"{trigger}:sha256:{digest[:40]}"
    elif versioned:
        # A record that changes again and again (an "Updated Contact"): each version is its
        # own event, told apart by its timestamp or, failing that, by its content.
        version = pick(fields, "updated_at", "occurred_at") or f"sha256:{digest[:16]}"
        event_id = f"{trigger}:{record_id}@{version}"
    else:
        event_id = f"{trigger}:{record_id}"
    return event_id if len(event_id) <= MAX_EVENT_ID else stable_id("zap", event_id)


def parse_inbound(
    body: bytes,
    content_type: str = "",
    trigger_hint: str | None = None,
    *,
    versioned: Collection[str] = (),
) -> ZapierInbound:
    """Parse a Zap's POST. ``trigger_hint`` is the ``?trigger=`` of the URL (at the gateway) or
    the stored event type (in the inbound worker). Raises ``WebhookRejected("bad_body")``."""
    raw = _decode(body, content_type.lower())
    fields = {normalize(str(k)): v for k, v in raw.items()}
    trigger_name = pick(fields, "trigger", "type") or (trigger_hint or "").strip()
    trigger = normalize(trigger_name)
    if not trigger:
        raise WebhookRejected("bad_body", "no trigger: put `trigger` in the Zap's POST data")
    record_id = pick(fields, "id")
    return ZapierInbound(
        trigger=trigger,
        record_id=record_id,
        event_id=_event_id(trigger, record_id, body, fields, trigger in versioned),
        fields=fields,
    )


def _legacy_secret_matches(token: str, secret: str) -> bool:
    # A secret is base64: a "+" put unencoded into ?token= arrives as a space. Spaces never
    # occur in a secret, so mapping them back cannot make a wrong token match. Only line ends
    # are stripped: a space at either end is such a "+" (a secret may end in one).
    candidate = token.strip("\r\n\t").replace(" ", "+").encode()
    return hmac.compare_digest(candidate, secret.encode())


def _token_matches(presented: str, credentials: Mapping[str, Any]) -> bool:
    """The connection's token when it has one (the secret is then refused); on a connection
    made before tokens existed, the secret its Zaps were set up with."""
    token = credentials.get("token")
    if token is not None:
        return isinstance(token, str) and bool(token) and signing.token_matches(presented, token)
    secret = credentials.get("secret")
    return isinstance(secret, str) and bool(secret) and _legacy_secret_matches(presented, secret)


def verify_zapier(
    credentials: Mapping[str, Any],
    headers: Mapping[str, str],
    query: Mapping[str, str],
    body: bytes,
    *,
    versioned: Collection[str] = (),
) -> WebhookReceipt:
    """Authenticate a Zap's POST by the connection's token and name its event.

    Raises :class:`WebhookRejected` (``missing_signature``, ``bad_token``, ``bad_body``) and
    nothing else, whatever arrives.
    """
    presented = headers.get(TOKEN_HEADER) or query.get("token")
    if not presented:
        raise WebhookRejected(
            "missing_signature", f"send the connection's token as {TOKEN_HEADER} or ?token="
        )
    if not _token_matches(presented, credentials):
        raise WebhookRejected("bad_token", "the token does not match this connection")
    inbound = parse_inbound(
        body, headers.get("content-type", ""), query.get("trigger"), versioned=versioned
    )
    return WebhookReceipt(event_id=inbound.event_id, event_type=inbound.trigger)


# --- values from Zaps ----------------------------------------------------------------------------

_DATE_FORMATS = (
    "%Y-%m-%d",
    "%m/%d/%Y",
    "%m/%d/%Y %H:%M",
    "%m/%d/%Y %I:%M %p",
    "%m/%d/%y",
    "%b %d, %Y",
    "%B %d, %Y",
    "%b %d, %Y %I:%M %p",
    "%d %b %Y",
)


def parse_when(value: Any) -> datetime | None:
    """A time as Zaps and vendor exports write it: ISO 8601 (``Z`` allowed), a date, US
    ``MM/DD/YYYY``, ``Mar 3, 2026``, or Unix seconds. Naive times are taken as UTC.
    ``None`` when it cannot be read (the caller decides whether that matters)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if not isinstance(value, str) or not (text := value.strip()):
        return None
    if text.isdigit() and len(text) >= 9:
        return parse_when(int(text))
    moment: datetime | None = None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        for pattern in _DATE_FORMATS:
            try:
                moment = datetime.strptime(text, pattern)
                break
            except ValueError:
                continue
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
