"""A local fake of the part of Stripe this connector uses, for tests, benchmarks and the demo.

- ``GET /v1/events`` and ``GET /v1/events/{id}`` as Stripe serves them: Bearer (or Basic) key
  auth, Stripe's list object, newest first, ``limit`` 1..100 (default 10), ``ending_before`` /
  ``starting_after`` cursors, ``type`` (with ``*`` wildcards) or ``types[]`` filters, and
  Stripe-shaped errors ``{"error": {"type", "code", "message", "param"}}``: 401 for a bad key,
  400 ``resource_missing`` for an unknown cursor, 400 for a parameter the endpoint does not
  take (stripe-python's ``EventListParams`` lists those it does) or an invalid
  ``Stripe-Version``. The version used (the request's, else the account's) is echoed in the
  answer's ``Stripe-Version``. ``require_version`` (on by default) also refuses a call that
  pins no version: a rule of this sandbox, not of Stripe, so a connector cannot forget it.
- :class:`StripeSandbox` creates events (:meth:`~StripeSandbox.emit`) rendered in the pinned
  API version, signs and delivers them as Stripe's webhook sender does
  (:meth:`~StripeSandbox.deliver`), and records what it received. ``faults`` injects
  429/5xx/slow answers, with Stripe-shaped error bodies.
- Factories for objects in the pinned version's shape (their fields are a subset of those
  stripe-python declares for it): :func:`payment_intent`, :func:`checkout_session`,
  :func:`invoice`, :func:`invoice_payment`, :func:`charge`, :func:`refund`, :func:`dispute`.

The signing here is written independently of :mod:`journeyhub_stripe.verify` (in the shape
of stripe-python's ``WebhookSignature.generate_signature_header``); tests sign with
stripe-python itself (``deliver(sign=...)``).
"""

from __future__ import annotations

import asyncio
import base64
import fnmatch
import hmac
import json
import re
import secrets as _secrets
import string
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from hashlib import sha256
from typing import Any, Protocol, TypeVar
from urllib.parse import parse_qsl

from journeyhub.testing.sandbox import Faults, SandboxServer
from litestar import Litestar, Request, Response, get
from litestar.exceptions import MethodNotAllowedException, NotFoundException

from journeyhub_stripe.mapping import API_VERSION

WEBHOOK_USER_AGENT = "Stripe/1.0 (+https://stripe.com/docs/webhooks)"
MAX_TYPES = 20  # Stripe: "an array of up to 20 strings"
_ALPHABET = string.ascii_letters + string.digits
# A version is a date, with the release's name since 2024-09-30.acacia.
_VERSION = re.compile(r"(\d{4}-\d{2}-\d{2})(\.[a-z]+)?")
# The parameters each endpoint takes (stripe-python ``EventListParams``), arrays and hashes
# in the ``name[]`` / ``name[key]`` form.
_LIST_PARAMS = re.compile(
    r"(created(\[(gt|gte|lt|lte)\])?|delivery_success|ending_before|expand\[\d*\]|limit"
    r"|starting_after|type|types\[\d*\])"
)
_RETRIEVE_PARAMS = re.compile(r"expand\[\d*\]")


class Answered(Protocol):
    @property
    def status_code(self) -> int: ...


R = TypeVar("R", bound=Answered)
R_co = TypeVar("R_co", bound=Answered, covariant=True)
# How a delivery is signed: (payload, secrets, timestamp) → the Stripe-Signature value.
Signer = Callable[[bytes, list[str], int], str]


class Poster(Protocol[R_co]):
    """Any client that can POST raw bytes: the gateway's test client (httpx), a ``VendorHttp``.
    Delivering a webhook is Stripe's side of the wire, not a connector's call."""

    async def post(self, url: str, *, content: bytes, headers: dict[str, str]) -> R_co: ...


def new_id(prefix: str) -> str:
    """A Stripe-looking id: prefix, underscore, 24 base62 characters."""
    return f"{prefix}_" + "".join(_secrets.choice(_ALPHABET) for _ in range(24))


def _now() -> int:
    return int(time.time())


# --- Stripe-shaped answers ------------------------------------------------------------------


def stripe_error(
    status: int,
    message: str,
    *,
    type_: str = "invalid_request_error",
    code: str | None = None,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response[Any]:
    error: dict[str, Any] = {"message": message, "type": type_}
    if code:
        error["code"] = code
        error["doc_url"] = f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}"
    if param:
        error["param"] = param
    return Response(
        {"error": error},
        status_code=status,
        headers={"request-id": new_id("req"), **(headers or {})},
        media_type="application/json",
    )


def _fault_error(status: int, retry_after: float | None) -> Response[Any]:
    headers = {"retry-after": f"{retry_after:g}"} if retry_after is not None else {}
    if status == 429:
        return stripe_error(
            429,
            "Request rate limit exceeded. Learn more about rate limits here "
            "https://stripe.com/docs/rate-limits.",
            code="rate_limit",
            headers=headers,
        )
    if status >= 500:
        return stripe_error(status, "An unknown error occurred", type_="api_error", headers=headers)
    return stripe_error(status, f"Injected error {status}", headers=headers)


def _mask(key: str) -> str:
    # Stripe's 401 names the refused key masked but for its prefix and last four characters.
    prefix = key[:8] if key.startswith(("sk_", "rk_", "pk_")) else ""
    return f"{prefix}{'*' * max(0, len(key) - len(prefix) - 4)}{key[-4:]}"


@dataclass(frozen=True)
class SeenRequest:
    method: str
    path: str
    query: list[tuple[str, str]]
    authorized: bool
    version: str | None  # the Stripe-Version it pinned


@dataclass(frozen=True)
class Delivery:
    url: str
    event_id: str
    status: int


# --- the sandbox ------------------------------------------------------------------------------


class StripeSandbox:
    """A fake Stripe account: its events, its API, its webhook sender."""

    def __init__(
        self,
        api_key: str = "sk_test_sandbox0000000000000000",
        *,
        port: int | None = None,
        account_version: str = API_VERSION,
        require_version: bool = True,
    ):
        self.api_key = api_key
        # The account's default version: what a call without Stripe-Version gets, and what
        # events are rendered in unless ``emit`` says otherwise.
        self.account_version = account_version
        self.require_version = require_version
        self.faults = Faults()
        self.requests: list[SeenRequest] = []
        self.deliveries: list[Delivery] = []
        self._events: list[dict[str, Any]] = []  # oldest first
        self._index: dict[str, int] = {}
        self._lock = threading.Lock()
        self.server = SandboxServer(create_app(self), port=port)

    # lifecycle
    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> StripeSandbox:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def __enter__(self) -> StripeSandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # events
    def emit(
        self,
        event_type: str,
        obj: dict[str, Any],
        *,
        created: int | None = None,
        livemode: bool = False,
        api_version: str | None = None,
    ) -> dict[str, Any]:
        """Record that ``event_type`` happened to ``obj``; return the Stripe event. Its data
        never changes, and names the version it was rendered in (the account's by default)."""
        event: dict[str, Any] = {
            "id": new_id("evt"),
            "object": "event",
            "api_version": api_version or self.account_version,
            "created": _now() if created is None else created,
            "data": {"object": obj},
            "livemode": livemode,
            "pending_webhooks": 1,
            "request": {"id": new_id("req"), "idempotency_key": None},
            "type": event_type,
        }
        with self._lock:
            self._index[event["id"]] = len(self._events)
            self._events.append(event)
        return event

    @property
    def events(self) -> list[dict[str, Any]]:
        """Every event, oldest first."""
        with self._lock:
            return list(self._events)

    def event(self, event_id: str) -> dict[str, Any] | None:
        with self._lock:
            position = self._index.get(event_id)
            return None if position is None else self._events[position]

    def position(self, event_id: str) -> int | None:
        with self._lock:
            return self._index.get(event_id)

    # webhooks
    @staticmethod
    def signature_header(
        payload: bytes,
        secrets: list[str],
        timestamp: int | None = None,
        *,
        v0_secret: str | None = None,
    ) -> str:
        """``Stripe-Signature`` for ``payload``: one ``v1`` per live secret (Stripe signs
        with every secret during a roll), plus the legacy ``v0`` in test mode."""
        t = _now() if timestamp is None else timestamp
        signed_payload = f"{t}.".encode() + payload
        parts = [f"t={t}"]
        parts += [f"v1={hmac.new(s.encode(), signed_payload, sha256).hexdigest()}" for s in secrets]
        if v0_secret:
            parts.append(f"v0={hmac.new(v0_secret.encode(), signed_payload, sha256).hexdigest()}")
        return ",".join(parts)

    async def deliver(
        self,
        event: dict[str, Any],
        url: str,
        secrets: list[str],
        http: Poster[R],
        *,
        timestamp: int | None = None,
        sign: Signer | None = None,
    ) -> R:
        """POST ``event`` to ``url`` as Stripe's webhook sender does: pretty-printed UTF-8
        JSON, signed over the exact bytes sent (by ``sign``, else by :meth:`signature_header`
        with the legacy ``v0`` of test mode), with ``http``; its answer as that client gives
        it."""
        payload = json.dumps(event, indent=2, ensure_ascii=False).encode("utf-8")
        t = _now() if timestamp is None else timestamp
        v0 = None if event.get("livemode") else "whsec_sandbox_legacy_v0"
        signature = (
            sign(payload, secrets, t)
            if sign is not None
            else self.signature_header(payload, secrets, t, v0_secret=v0)
        )
        headers = {
            "Stripe-Signature": signature,
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": WEBHOOK_USER_AGENT,
            "Accept": "*/*; q=0.5, application/xml",
            "Cache-Control": "no-cache",
        }
        response = await http.post(url, content=payload, headers=headers)
        with self._lock:
            self.deliveries.append(Delivery(url, event["id"], response.status_code))
        return response

    # the API's view
    def authorized(self, authorization: str | None) -> tuple[bool, str | None]:
        """Whether the header carries our key; and the key presented, if any."""
        if not authorization:
            return False, None
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer":
            presented = value.strip()
        elif scheme.lower() == "basic":  # curl -u sk_…: (key as user, no password)
            try:
                presented = base64.b64decode(value).decode().partition(":")[0]
            except ValueError:
                return False, None
        else:
            return False, None
        return hmac.compare_digest(presented.encode(), self.api_key.encode()), presented

    def list_page(
        self,
        *,
        limit: int,
        ending_before: str | None,
        starting_after: str | None,
        matches: Callable[[dict[str, Any]], bool],
    ) -> tuple[list[dict[str, Any]], bool]:
        """Stripe's list semantics over events kept oldest first; pages are newest first."""
        with self._lock:
            events = self._events
            if ending_before is not None:  # the ``limit`` events just newer than the cursor
                newer = [e for e in events[self._index[ending_before] + 1 :] if matches(e)]
                return list(reversed(newer[:limit])), len(newer) > limit
            if starting_after is not None:  # the ``limit`` events just older than it
                older = [e for e in reversed(events[: self._index[starting_after]]) if matches(e)]
                return older[:limit], len(older) > limit
            newest = [e for e in reversed(events) if matches(e)]
            return newest[:limit], len(newest) > limit


# --- the API ------------------------------------------------------------------------------------


Matcher = Callable[[dict[str, Any]], bool]


def _type_filter(query: list[tuple[str, str]]) -> tuple[Matcher | None, Response[Any] | None]:
    single = [v for k, v in query if k == "type"]
    many = [v for k, v in query if k == "types[]" or (k.startswith("types[") and k.endswith("]"))]
    if single and many:
        return None, stripe_error(
            400, "You may only specify one of these parameters: type, types.", param="types"
        )
    if len(many) > MAX_TYPES:
        return None, stripe_error(400, f"You may specify at most {MAX_TYPES} types.", param="types")
    if many:
        wanted = set(many)
        return (lambda e: e["type"] in wanted), None
    if single:
        pattern = single[-1]
        return (lambda e: fnmatch.fnmatchcase(e["type"], pattern)), None
    return (lambda e: True), None


def _version_refused(sandbox: StripeSandbox, version: str | None) -> Response[Any] | None:
    """Stripe refuses a version it does not know: not a release date, or one after the
    newest. Missing, it uses the account's (unless ``require_version``)."""
    if version is None:
        if not sandbox.require_version:
            return None
        return stripe_error(
            400, "This sandbox requires a Stripe-Version header (Stripe would use the account's)."
        )
    known = _VERSION.fullmatch(version)
    if known is None or known.group(1) > API_VERSION[:10]:
        return stripe_error(400, f"Invalid Stripe API version: {version}")
    return None


def _unknown_param(query: list[tuple[str, str]], allowed: re.Pattern[str]) -> Response[Any] | None:
    for name, _ in query:
        if not allowed.fullmatch(name):
            return stripe_error(400, f"Received unknown parameter: {name}", param=name)
    return None


def create_app(sandbox: StripeSandbox) -> Litestar:
    async def guard(
        request: Request[Any, Any, Any], allowed: re.Pattern[str]
    ) -> Response[Any] | None:
        """What every Stripe call goes through: faults first, then the key, the version and
        the parameters."""
        query = parse_qsl(request.scope.get("query_string", b"").decode(), keep_blank_values=True)
        ok, presented = sandbox.authorized(request.headers.get("authorization"))
        version = request.headers.get("stripe-version")
        seen = SeenRequest(request.method, request.url.path, query, ok, version)
        with sandbox._lock:
            sandbox.requests.append(seen)
        fault = sandbox.faults.next()
        if fault is not None:
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.status is not None:
                sandbox.faults.injected[fault.status] += 1
                if fault.body is not None:
                    return Response(fault.body, status_code=fault.status)
                return _fault_error(fault.status, fault.retry_after)
        if not ok:
            if presented is None:
                message = (
                    "You did not provide an API key. You need to provide your API key in the "
                    "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
                    "YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for "
                    "details, or we can help at https://support.stripe.com/."
                )
            else:
                message = f"Invalid API Key provided: {_mask(presented)}"
            return stripe_error(401, message, headers={"www-authenticate": 'Bearer realm="Stripe"'})
        return _version_refused(sandbox, version) or _unknown_param(query, allowed)

    def answer(request: Request[Any, Any, Any], body: dict[str, Any]) -> Response[Any]:
        version = request.headers.get("stripe-version") or sandbox.account_version
        return Response(body, headers={"request-id": new_id("req"), "stripe-version": version})

    @get("/v1/events")
    async def list_events(request: Request[Any, Any, Any]) -> Response[Any]:
        if (refused := await guard(request, _LIST_PARAMS)) is not None:
            return refused
        query = parse_qsl(request.scope.get("query_string", b"").decode(), keep_blank_values=True)
        params = dict(query)
        raw_limit = params.get("limit", "10")
        if not raw_limit.isdigit():
            return stripe_error(400, f"Invalid integer: {raw_limit}", param="limit")
        limit = int(raw_limit)
        if not 1 <= limit <= 100:
            bound = "greater than or equal to 1" if limit < 1 else "less than or equal to 100"
            return stripe_error(400, f"This value must be {bound}.", param="limit")
        ending_before = params.get("ending_before") or None
        starting_after = params.get("starting_after") or None
        if ending_before and starting_after:
            return stripe_error(
                400,
                "You may only specify one of these parameters: ending_before, starting_after.",
                param="ending_before",
            )
        for name, cursor in (("ending_before", ending_before), ("starting_after", starting_after)):
            if cursor is not None and sandbox.position(cursor) is None:
                return stripe_error(
                    400, f"No such event: '{cursor}'", code="resource_missing", param=name
                )
        matches, refused = _type_filter(query)
        if refused is not None or matches is None:
            return refused or stripe_error(400, "Invalid type filter.", param="types")
        page, has_more = sandbox.list_page(
            limit=limit,
            ending_before=ending_before,
            starting_after=starting_after,
            matches=matches,
        )
        body = {"object": "list", "data": page, "has_more": has_more, "url": "/v1/events"}
        return answer(request, body)

    @get("/v1/events/{event_id:str}")
    async def retrieve_event(request: Request[Any, Any, Any]) -> Response[Any]:
        if (refused := await guard(request, _RETRIEVE_PARAMS)) is not None:
            return refused
        event_id = str(request.path_params["event_id"])
        event = sandbox.event(event_id)
        if event is None:
            return stripe_error(
                404, f"No such event: '{event_id}'", code="resource_missing", param="id"
            )
        return answer(request, event)

    def unrecognized(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
        return stripe_error(
            404,
            f"Unrecognized request URL ({request.method}: {request.url.path}). Please see "
            "https://stripe.com/docs or we can help at https://support.stripe.com/.",
        )

    return Litestar(
        [list_events, retrieve_event],
        exception_handlers={
            NotFoundException: unrecognized,
            MethodNotAllowedException: unrecognized,
        },
    )


# --- realistic objects ----------------------------------------------------------------------------


def _address() -> dict[str, Any]:
    keys = ("city", "country", "line1", "line2", "postal_code", "state")
    return dict.fromkeys(keys)


def payment_intent(
    amount: int = 150_000,
    currency: str = "usd",
    *,
    customer: str | None = None,
    receipt_email: str | None = None,
    metadata: dict[str, str] | None = None,
    failed: bool = False,
    canceled: str | None = None,
    description: str | None = "Wedding photography deposit",
) -> dict[str, Any]:
    """A PaymentIntent, succeeded, (``failed``) declined or canceled (for the
    ``cancellation_reason`` given)."""
    pi_id = new_id("pi")
    failed = failed or canceled is not None
    error = None
    if failed:
        error = {
            "charge": new_id("ch"),
            "code": "card_declined",
            "decline_code": "insufficient_funds",
            "doc_url": "https://stripe.com/docs/error-codes/card-declined",
            "message": "Your card has insufficient funds.",
            "type": "card_error",
        }
    return {
        "id": pi_id,
        "object": "payment_intent",
        "amount": amount,
        "amount_capturable": 0,
        "amount_received": 0 if failed else amount,
        "canceled_at": _now() if canceled else None,
        "cancellation_reason": canceled,
        "capture_method": "automatic_async",
        "client_secret": f"{pi_id}_secret_{new_id('x')[2:]}",
        "confirmation_method": "automatic",
        "created": _now(),
        "currency": currency,
        "customer": customer,
        "description": description,
        "last_payment_error": error,
        "latest_charge": None if failed else new_id("ch"),
        "livemode": False,
        "metadata": metadata or {},
        "payment_method": None if failed else new_id("pm"),
        "payment_method_types": ["card"],
        "receipt_email": receipt_email,
        "status": "canceled" if canceled else "requires_payment_method" if failed else "succeeded",
    }


def checkout_session(
    amount_total: int = 250_000,
    currency: str = "usd",
    *,
    customer: str | None = None,
    email: str | None = "bride@example.com",
    name: str | None = "Zoë Martin",
    metadata: dict[str, str] | None = None,
    payment_status: str = "paid",
) -> dict[str, Any]:
    """A completed Checkout Session in payment mode; ``email`` is what the customer typed."""
    return {
        "id": "cs_test_" + new_id("x")[2:] + new_id("x")[2:],
        "object": "checkout.session",
        "amount_subtotal": amount_total,
        "amount_total": amount_total,
        "created": _now(),
        "currency": currency,
        "customer": customer,
        "customer_creation": "if_required",
        "customer_details": {
            "address": _address(),
            "email": email,
            "name": name,
            "phone": None,
            "tax_exempt": "none",
            "tax_ids": [],
        },
        "customer_email": None,
        "expires_at": _now() + 86_400,
        "livemode": False,
        "metadata": metadata or {},
        "mode": "payment",
        "payment_intent": new_id("pi"),
        "payment_status": payment_status,
        "status": "complete",
        "success_url": "https://example.com/thanks",
        "url": None,
    }


def invoice(
    amount_due: int = 300_000,
    currency: str = "usd",
    *,
    customer: str | None = None,
    customer_email: str | None = "groom@example.com",
    customer_name: str | None = "Sam Lee",
    metadata: dict[str, str] | None = None,
    paid: bool = True,
    off_stripe: bool = False,
) -> dict[str, Any]:
    """A finalized invoice in the shape of 2025-03-31.basil on: paid (through Stripe, or
    ``off_stripe``) or, with ``paid=False``, after a failed payment attempt. It names no
    PaymentIntent: its ``payments`` are only there when expanded (see
    :func:`invoice_payment`)."""
    now = _now()
    return {
        "id": new_id("in"),
        "object": "invoice",
        "account_country": "US",
        "amount_due": amount_due,
        "amount_overpaid": 0,
        "amount_paid": amount_due if paid else 0,
        "amount_paid_off_stripe": amount_due if paid and off_stripe else 0,
        "amount_remaining": 0 if paid else amount_due,
        "attempt_count": 0 if off_stripe else 1,
        "attempted": not off_stripe,
        "billing_reason": "manual",
        "collection_method": "charge_automatically",
        "created": now,
        "currency": currency,
        "customer": customer or new_id("cus"),
        "customer_email": customer_email,
        "customer_name": customer_name,
        "hosted_invoice_url": "https://invoice.stripe.com/i/acct_sandbox/test_" + new_id("x")[2:],
        "livemode": False,
        "metadata": metadata or {},
        "next_payment_attempt": None if paid else now + 3 * 86_400,
        "number": "JH-0001",
        "parent": None,
        "status": "paid" if paid else "open",
        "status_transitions": {
            "finalized_at": now,
            "marked_uncollectible_at": None,
            "paid_at": now if paid else None,
            "voided_at": None,
        },
        "subtotal": amount_due,
        "total": amount_due,
    }


def invoice_payment(
    invoice_id: str, payment_intent_id: str, amount: int, currency: str = "usd"
) -> dict[str, Any]:
    """The InvoicePayment that ties a paid invoice to the PaymentIntent that paid it."""
    now = _now()
    return {
        "id": new_id("inpay"),
        "object": "invoice_payment",
        "amount_paid": amount,
        "amount_requested": amount,
        "created": now,
        "currency": currency,
        "invoice": invoice_id,
        "is_default": True,
        "livemode": False,
        "payment": {"type": "payment_intent", "payment_intent": payment_intent_id},
        "status": "paid",
        "status_transitions": {"canceled_at": None, "paid_at": now},
    }


def charge(
    amount: int = 150_000,
    currency: str = "usd",
    *,
    amount_refunded: int = 0,
    customer: str | None = None,
    email: str | None = "bride@example.com",
    receipt_email: str | None = None,
    metadata: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A captured card charge, refunded by ``amount_refunded``."""
    return {
        "id": new_id("ch"),
        "object": "charge",
        "amount": amount,
        "amount_captured": amount,
        "amount_refunded": amount_refunded,
        "balance_transaction": new_id("txn"),
        "billing_details": {"address": _address(), "email": email, "name": None, "phone": None},
        "captured": True,
        "created": _now(),
        "currency": currency,
        "customer": customer,
        "failure_code": None,
        "failure_message": None,
        "livemode": False,
        "metadata": metadata or {},
        "paid": True,
        "payment_intent": new_id("pi"),
        "payment_method": new_id("pm"),
        "receipt_email": receipt_email,
        "refunded": amount_refunded >= amount,
        "status": "succeeded",
    }


def refund(
    amount: int = 50_000,
    currency: str = "usd",
    *,
    charge_id: str | None = None,
    payment_intent_id: str | None = None,
    customer: str | None = None,
    metadata: dict[str, str] | None = None,
    status: str = "succeeded",
    failure_reason: str | None = None,
) -> dict[str, Any]:
    """A Refund object: it names its charge and, when it has one, the customer; ``status``
    ``pending``, ``succeeded``, ``failed`` (with a ``failure_reason``) or ``canceled``."""
    return {
        "id": new_id("re"),
        "object": "refund",
        "amount": amount,
        "balance_transaction": new_id("txn"),
        "charge": charge_id or new_id("ch"),
        "created": _now(),
        "currency": currency,
        "customer": customer,
        "failure_reason": failure_reason,
        "metadata": metadata or {},
        "payment_intent": payment_intent_id or new_id("pi"),
        "reason": "requested_by_customer",
        "receipt_number": None,
        "status": status,
    }


def dispute(
    amount: int = 150_000,
    currency: str = "usd",
    *,
    status: str = "needs_response",
    reason: str = "fraudulent",
    charge_id: str | None = None,
    payment_intent_id: str | None = None,
    metadata: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A Dispute: it names its charge and PaymentIntent, not the customer."""
    now = _now()
    return {
        "id": new_id("du"),
        "object": "dispute",
        "amount": amount,
        "balance_transactions": [],
        "charge": charge_id or new_id("ch"),
        "created": now,
        "currency": currency,
        "evidence": {"customer_email_address": None, "customer_name": None},
        "evidence_details": {
            "due_by": now + 7 * 86_400,
            "has_evidence": False,
            "past_due": False,
            "submission_count": 0,
        },
        "is_charge_refundable": False,
        "livemode": False,
        "metadata": metadata or {},
        "payment_intent": payment_intent_id or new_id("pi"),
        "reason": reason,
        "status": status,
    }


__all__ = [
    "Delivery",
    "SeenRequest",
    "StripeSandbox",
    "charge",
    "checkout_session",
    "create_app",
    "dispute",
    "invoice",
    "invoice_payment",
    "new_id",
    "payment_intent",
    "refund",
    "stripe_error",
]


def demo() -> Any:
    """Entry point ``journeyhub.sandboxes``: this sandbox as ``journeyhub demo`` runs it (its
    ``payment_received`` webhook is a signed ``payment_intent.succeeded`` event)."""
    import inspect

    from journeyhub.testing.sandbox import SandboxDemo

    async def paid(sb: StripeSandbox, data: Any, url: str, secret: str, http: Any) -> Any:
        intent = payment_intent(
            data["amount"],
            data.get("currency", "usd"),
            receipt_email=data.get("email"),
            metadata=data.get("metadata"),
            description=data.get("description"),
        )
        return await sb.deliver(sb.emit("payment_intent.succeeded", intent), url, [secret], http)

    return SandboxDemo(
        "Stripe",
        StripeSandbox,
        config=lambda sb: {"api_base": sb.url},
        credentials=lambda sb: {"api_key": sb.api_key},
        webhooks={"payment_received": paid},
        secrets=(inspect.signature(StripeSandbox).parameters["api_key"].default,),
    )
