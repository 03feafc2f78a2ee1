"""A local fake of the Resend API, faithful for the subset the connector uses.

Served over real HTTP on a loopback port (``journeyhub.testing.sandbox.SandboxServer``) for tests,
benchmarks and ``journeyhub demo``. What it fakes, and where the facts come from (see README):

- ``POST /emails``, ``POST /emails/batch`` (at most 100; ``x-batch-validation: strict`` by default,
  ``permissive`` answers ``{"data", "errors": [{"index", "message"}]}``), ``GET /emails/{id}``,
  ``GET /domains``; answers 200 with the shapes of the official SDKs.
- ``Authorization: Bearer re_…``: missing → 401 ``missing_api_key``; unknown → 403
  ``invalid_api_key``; a revoked (deleted) key → ``validation_error`` "API key is invalid", 401
  on the sending endpoints and 400 elsewhere, as Resend's current error reference says; a
  sending-only key on another endpoint → 401 ``restricted_api_key``.
- Email bodies are validated against ``email_schema.json`` (the SDKs' structure), then Resend's
  rules: 422 ``missing_required_field``, ``validation_error``, ``invalid_attachment`` (neither
  ``content`` nor ``path``, content not base64), no attachments in a batch.
- Errors are ``{"statusCode", "name", "message"}``.
- Rate limit per API key, N requests per window (default 2 per second, Resend's default):
  429 ``rate_limit_exceeded`` with ``retry-after`` and ``ratelimit-limit/-remaining/-reset``;
  successes carry the ``ratelimit-*`` headers too.
- ``Idempotency-Key`` (1 to 256 characters, else 400 ``invalid_idempotency_key``), kept 24 hours
  per key, endpoint and API key: the same body replays the first answer and sends nothing; a
  different body is a 409 ``invalid_idempotent_request``; a request while another with its key
  is still under way is a 409 ``concurrent_idempotent_requests``.
- The ``from`` domain must be one of the sandbox's verified domains (else 403).
- ``faults`` (:class:`journeyhub.testing.sandbox.Faults`) inject 5xx, 429 and slow answers.

Beyond the API it records every accepted email (``emails``), counts ``requests``, ``accepted``,
``refused_429`` and ``duplicates`` (an email whose ``jh_task`` tag was already accepted: a
side effect done twice), and plays Resend's webhooks: :meth:`ResendSandbox.emit` builds an
``email.*`` event for a stored email and :meth:`ResendSandbox.deliver` posts it Svix-signed.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import math
import secrets
import string
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from importlib.resources import files
from typing import Any, Protocol, TypeVar

from journeyhub import signing
from journeyhub.testing.sandbox import Faults, SandboxServer
from jsonschema import Draft202012Validator
from litestar import Litestar, Request, Response, get, post
from litestar.exceptions import MethodNotAllowedException, NotFoundException

from journeyhub_resend.compose import TAG_SAFE, TASK_TAG
from journeyhub_resend.config import FROM_RE, valid_address

DEFAULT_API_KEY = "re_sandbox_full_0123456789"
SENDING_API_KEY = "re_sandbox_send_0123456789"
IDEMPOTENCY_TTL = 24 * 3600.0
MAX_BATCH = 100
MAX_TO = 50
_BASE62 = string.ascii_letters + string.digits
EMAIL_SCHEMA = Draft202012Validator(
    json.loads(files("journeyhub_resend").joinpath("email_schema.json").read_text())
)
SEND_PATHS = ("/emails", "/emails/batch")
# (secret, msg_id, timestamp, body) → the ``svix-signature`` header; tests give the official
# ``svix`` package's, the demo uses the kernel's signer.
Signer = Callable[[str, str, int, bytes], str]

Answer = tuple[int, dict[str, Any] | list[Any]]

R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)


class Poster(Protocol[R_co]):
    """Any client that can POST raw bytes: the gateway's test client (httpx), a ``VendorHttp``.
    Delivering a webhook is Resend's side of the wire, not a connector's call."""

    async def post(self, url: str, *, content: bytes, headers: dict[str, str]) -> R_co: ...


def _error(status: int, name: str, message: str) -> Answer:
    return status, {"statusCode": status, "name": name, "message": message}


def _iso(moment: datetime) -> str:
    """Resend's webhook timestamps: ``2024-11-22T23:41:12.126Z``."""
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"


def _base64(attachment: dict[str, Any]) -> bool:
    content = attachment.get("content")
    if isinstance(content, list):  # resend-python also sends a file's bytes as integers
        return bool(content)
    try:
        return isinstance(content, str) and bool(base64.b64decode(content, validate=True))
    except binascii.Error:
        return False


def _when(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (AttributeError, ValueError):
        return None


def _address_of(sender: str) -> str:
    return sender.rsplit("<", 1)[-1].rstrip(">").strip() if "<" in sender else sender.strip()


def signed_event(
    event: dict[str, Any],
    secret: str,
    sign: Signer,
    *,
    msg_id: str | None = None,
    timestamp: int | None = None,
) -> tuple[bytes, dict[str, str]]:
    """The body and Svix headers of ``event`` as Resend's webhook sender sends it."""
    body = json.dumps(event).encode()
    msg_id = msg_id or "msg_" + "".join(secrets.choice(_BASE62) for _ in range(27))
    stamp = int(time.time()) if timestamp is None else timestamp
    return body, {
        "content-type": "application/json",
        "user-agent": "Svix-Webhooks/1.0",
        "svix-id": msg_id,
        "svix-timestamp": str(stamp),
        "svix-signature": sign(secret, msg_id, stamp, body),
    }


class ResendSandbox:
    def __init__(
        self,
        *,
        api_keys: dict[str, str] | None = None,  # key → "full_access" | "sending_access"
        rate_limit: int = 2,
        per_seconds: float = 1.0,
        domains: tuple[str, ...] = ("example.com",),
        clock: Callable[[], float] = time.time,  # for the 24 h idempotency window
        port: int | None = None,
    ) -> None:
        self.api_keys = api_keys or {
            DEFAULT_API_KEY: "full_access",
            SENDING_API_KEY: "sending_access",
        }
        self.rate_limit = rate_limit
        self.per_seconds = per_seconds
        self.domains = list(domains)
        self.clock = clock
        self.signer: Signer | None = None
        self.faults = Faults()
        self._lock = threading.Lock()
        self.reset()
        self.app = create_app(self)
        self._server = SandboxServer(self.app, port=port)

    # --- lifecycle and inspection ----------------------------------------------------------------

    @property
    def url(self) -> str:
        return self._server.url

    @property
    def api_key(self) -> str:
        """A full-access key the sandbox accepts."""
        return next(k for k, v in self.api_keys.items() if v == "full_access")

    def start(self) -> ResendSandbox:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> ResendSandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        """Forget everything received (emails, keys, counters, windows, planned faults)."""
        with self._lock:
            self.emails: list[dict[str, Any]] = []
            self._by_id: dict[str, dict[str, Any]] = {}
            self._tasks_seen: set[str] = set()
            self._idempotency: dict[tuple[str, str, str], tuple[str, float, Answer]] = {}
            self._in_flight: set[tuple[str, str, str]] = set()
            self.revoked: set[str] = set()  # keys deleted at Resend
            self._windows: dict[str, deque[float]] = {}
            self.requests = 0
            self.accepted = 0
            self.refused_429 = 0
            self.duplicates = 0
            self.calls: list[tuple[str, str, int]] = []  # (method, path, status) answered
        self.faults.clear()

    def email(self, email_id: str) -> dict[str, Any]:
        with self._lock:
            return dict(self._by_id[email_id])

    # --- webhooks ------------------------------------------------------------------------------

    def emit(
        self,
        event_type: str,
        email_id: str,
        *,
        created_at: datetime | None = None,
        link: str = "https://example.com/gallery",
        **data_overrides: Any,
    ) -> dict[str, Any]:
        """Build the webhook event Resend sends for ``email_id`` (and note its last event)."""
        moment = created_at or datetime.now(UTC)
        with self._lock:
            email = self._by_id[email_id]
            email["last_event"] = event_type.removeprefix("email.")
            tags = {t["name"]: t.get("value", "") for t in email.get("tags") or []}
            data: dict[str, Any] = {
                "created_at": email["created_at"],
                "email_id": email_id,
                "message_id": f"<{email_id}@resend.dev>",
                "from": email["from"],
                "to": list(email["to"]),
                "subject": email["subject"],
                "tags": tags,
            }
        if event_type == "email.bounced":
            data["bounce"] = {
                "type": "Permanent",
                "subType": "General",
                "message": "The recipient's email address does not exist.",
            }
        elif event_type == "email.clicked":
            data["click"] = {
                "ipAddress": "203.0.113.7",
                "link": link,
                "timestamp": _iso(moment),
                "userAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7)",
            }
        elif event_type == "email.failed":
            data["failed"] = {"reason": "reached_daily_quota"}
        elif event_type == "email.suppressed":
            data["suppressed"] = {
                "type": "OnAccountSuppressionList",
                "message": "The recipient is on this account's suppression list.",
            }
        data.update(data_overrides)
        return {"type": event_type, "created_at": _iso(moment), "data": data}

    def signed(
        self,
        event: dict[str, Any],
        secret: str,
        *,
        msg_id: str | None = None,
        timestamp: int | None = None,
    ) -> tuple[bytes, dict[str, str]]:
        """The body and Svix headers Resend would send for ``event``, signed by ``signer``."""
        sign = self.signer or signing.sign
        return signed_event(event, secret, sign, msg_id=msg_id, timestamp=timestamp)

    async def deliver(
        self,
        event: dict[str, Any],
        url: str,
        secret: str,
        http: Poster[R],
        *,
        msg_id: str | None = None,
        timestamp: int | None = None,
    ) -> R:
        """POST ``event`` to ``url`` as Resend's webhook sender (Svix) does, with ``http``;
        its answer as that client gives it."""
        body, headers = self.signed(event, secret, msg_id=msg_id, timestamp=timestamp)
        return await http.post(url, content=body, headers=headers)

    # --- the API -------------------------------------------------------------------------------

    async def handle(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        """One API request → (status, JSON body, headers)."""
        with self._lock:
            self.requests += 1
        status, payload, extra = await self._answer(method, path, headers, body)
        with self._lock:
            if status == 429:
                self.refused_429 += 1
            self.calls.append((method, path, status))
        return status, payload, extra

    async def _answer(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        """Resend answers a request whose idempotency key is still being handled with a 409."""
        idem = headers.get("idempotency-key")
        if method != "POST" or path not in SEND_PATHS or idem is None:
            return await self._respond(method, path, headers, body)
        flight = (headers.get("authorization", ""), path, idem)
        with self._lock:
            busy = flight in self._in_flight
            self._in_flight.add(flight)
        if busy:
            message = "Same idempotency key used while a request is still in progress."
            return (*_error(409, "concurrent_idempotent_requests", message), {})
        try:
            return await self._respond(method, path, headers, body)
        finally:
            with self._lock:
                self._in_flight.discard(flight)

    async def _respond(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        fault = self.faults.next()
        if fault is not None:
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.status is not None:
                self.faults.injected[fault.status] += 1
                extra = {}
                if fault.retry_after is not None:
                    extra["retry-after"] = f"{fault.retry_after:g}"
                payload = (
                    fault.body
                    or _error(
                        fault.status,
                        "rate_limit_exceeded" if fault.status == 429 else "internal_server_error",
                        "Too many requests."
                        if fault.status == 429
                        else "An unexpected error occurred.",
                    )[1]
                )
                return fault.status, payload, extra

        auth = headers.get("authorization", "")
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            return (
                *_error(401, "missing_api_key", "Missing API key in the authorization header."),
                {},
            )
        key = auth[7:].strip()
        access = self.api_keys.get(key)
        if key in self.revoked:
            status = 401 if method == "POST" and path in SEND_PATHS else 400
            return (*_error(status, "validation_error", "API key is invalid"), {})
        if access is None:
            return (*_error(403, "invalid_api_key", "API key is invalid"), {})

        limited, rate_headers = self._take(key)
        if limited:
            message = (
                f"Too many requests. You can only make {self.rate_limit} requests per second. "
                "See rate limit response headers for more information. "
                "Or contact support to increase rate limit."
            )
            return (*_error(429, "rate_limit_exceeded", message), rate_headers)

        if method == "GET" and access != "full_access":
            answer = _error(
                401, "restricted_api_key", "This API key is restricted to only send emails"
            )
        elif method == "POST" and path in SEND_PATHS:
            answer = self._send(key, path, headers, body)
        elif method == "GET" and path == "/domains":
            answer = 200, self._domains()
        elif method == "GET" and path.startswith("/emails/"):
            found = self._by_id.get(path.removeprefix("/emails/"))
            answer = (200, dict(found)) if found else _error(404, "not_found", "Email not found")
        else:
            answer = _error(404, "not_found", "The requested endpoint does not exist.")
        return (*answer, rate_headers)

    def _take(self, key: str) -> tuple[bool, dict[str, str]]:
        """Count one request against ``key``'s window: (refused?, ratelimit headers)."""
        now = time.monotonic()
        with self._lock:
            window = self._windows.setdefault(key, deque())
            while window and now - window[0] >= self.per_seconds:
                window.popleft()
            refused = len(window) >= self.rate_limit
            if not refused:
                window.append(now)
            reset = math.ceil(self.per_seconds - (now - window[0])) if window else 0
            headers = {
                "ratelimit-limit": str(self.rate_limit),
                "ratelimit-remaining": str(max(0, self.rate_limit - len(window))),
                "ratelimit-reset": str(max(reset, 1 if refused else 0)),
            }
        if refused:
            headers["retry-after"] = headers["ratelimit-reset"]
        return refused, headers

    def _domains(self) -> dict[str, Any]:
        return {
            "object": "list",
            "has_more": False,
            "data": [
                {
                    "id": str(uuid.uuid5(uuid.NAMESPACE_DNS, name)),
                    "name": name,
                    "status": "verified",
                    "created_at": "2025-01-01 00:00:00.000000+00",
                    "region": "us-east-1",
                }
                for name in self.domains
            ],
        }

    def _send(self, key: str, path: str, headers: dict[str, str], body: bytes) -> Answer:
        try:
            payload = json.loads(body or b"null")
        except ValueError:
            return _error(400, "validation_error", "Invalid JSON body.")
        idem = headers.get("idempotency-key")
        if idem is not None and not 1 <= len(idem) <= 256:
            return _error(400, "invalid_idempotency_key", "The key must be between 1-256 chars.")
        digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
        slot = (key, path, idem or "")
        with self._lock:
            if idem is not None and (seen := self._idempotency.get(slot)) is not None:
                first_digest, at, answer = seen
                if self.clock() - at < IDEMPOTENCY_TTL:
                    if first_digest != digest:
                        return _error(
                            409,
                            "invalid_idempotent_request",
                            "Same idempotency key used with a different request payload.",
                        )
                    return answer  # a replay: the first answer, nothing sent
            if path == "/emails":
                answer = self._create_one(payload)
            else:
                permissive = headers.get("x-batch-validation", "strict") == "permissive"
                answer = self._create_batch(payload, permissive)
            if idem is not None and answer[0] == 200:
                self._idempotency[slot] = (digest, self.clock(), answer)
        return answer

    def _validate(self, email: Any, *, in_batch: bool) -> Answer | None:
        if not isinstance(email, dict):
            return _error(422, "validation_error", "Each email must be an object.")
        for field in ("from", "to", "subject"):
            if not email.get(field):
                return _error(422, "missing_required_field", f"Missing `{field}` field.")
        for attachment in email.get("attachments") or []:
            if isinstance(attachment, dict) and not (_base64(attachment) or attachment.get("path")):
                message = "Attachment must have either a base64 `content` or a `path`."
                return _error(422, "invalid_attachment", message)
        for problem in EMAIL_SCHEMA.iter_errors(email):
            where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in problem.path)
            return _error(
                422, "validation_error", f"Invalid `{where[1:] or 'body'}`: {problem.message}"
            )
        sender = email["from"]
        if not isinstance(sender, str) or not FROM_RE.match(sender.strip()):
            return _error(
                422,
                "validation_error",
                "Invalid `from` field. The email address needs to follow the "
                "`email@example.com` or `Name <email@example.com>` format.",
            )
        to = [email["to"]] if isinstance(email["to"], str) else email["to"]
        if not isinstance(to, list) or not all(isinstance(a, str) and valid_address(a) for a in to):
            return _error(
                422,
                "validation_error",
                "Invalid `to` field. The email address needs to follow the "
                "`email@example.com` or `Name <email@example.com>` format.",
            )
        if len(to) > MAX_TO:
            return _error(422, "validation_error", f"Too many recipients: at most {MAX_TO}.")
        if not any(email.get(k) for k in ("html", "text", "react", "template")):
            return _error(422, "validation_error", "Missing `html` or `text` field.")
        for tag in email.get("tags") or []:
            if not (
                isinstance(tag, dict)
                and TAG_SAFE.match(str(tag.get("name", "")))
                and TAG_SAFE.match(str(tag.get("value", "_")))
            ):
                return _error(
                    422,
                    "validation_error",
                    "Tags should only contain ASCII letters, numbers, underscores, or dashes.",
                )
        if in_batch and email.get("attachments"):
            return _error(422, "validation_error", "`attachments` are not supported in batch.")
        if email.get("scheduled_at") is not None and _when(email["scheduled_at"]) is None:
            return _error(422, "validation_error", "`scheduled_at` must be an ISO 8601 date.")
        domain = _address_of(sender).rsplit("@", 1)[-1].lower()
        if domain not in self.domains:
            return _error(
                403,
                "validation_error",
                f"The {domain} domain is not verified. Please, add and verify your domain "
                "on https://resend.com/domains",
            )
        return None

    def _store(self, email: dict[str, Any]) -> str:
        """Record one accepted email (caller holds the lock)."""
        email_id = str(uuid.uuid4())
        to = [email["to"]] if isinstance(email["to"], str) else list(email["to"])
        record = {
            "object": "email",
            "id": email_id,
            "from": email["from"],
            "to": to,
            "subject": email["subject"],
            "html": email.get("html"),
            "text": email.get("text"),
            "cc": email.get("cc"),
            "bcc": email.get("bcc"),
            "reply_to": email.get("reply_to"),
            "tags": list(email.get("tags") or []),
            "created_at": datetime.now(UTC).isoformat(),
            "last_event": "scheduled" if email.get("scheduled_at") else "sent",
            "scheduled_at": email.get("scheduled_at"),
            "headers": dict(email.get("headers") or {}),
            "attachments": list(email.get("attachments") or []),
        }
        self.emails.append(record)
        self._by_id[email_id] = record
        self.accepted += 1
        task = next((t.get("value") for t in record["tags"] if t.get("name") == TASK_TAG), None)
        if task is not None:
            if task in self._tasks_seen:
                self.duplicates += 1
            self._tasks_seen.add(task)
        return email_id

    def _create_one(self, payload: Any) -> Answer:
        if (problem := self._validate(payload, in_batch=False)) is not None:
            return problem
        return 200, {"id": self._store(payload)}

    def _create_batch(self, payload: Any, permissive: bool) -> Answer:
        if not isinstance(payload, list) or not payload:
            return _error(422, "validation_error", "The batch must be a non-empty array of emails.")
        if len(payload) > MAX_BATCH:
            return _error(
                422, "validation_error", f"Too many emails in the batch: at most {MAX_BATCH}."
            )
        problems = [self._validate(email, in_batch=True) for email in payload]
        if not permissive:
            first = next((p for p in problems if p is not None), None)
            if first is not None:
                return first
        data = [
            {"id": self._store(email)}
            for email, problem in zip(payload, problems, strict=True)
            if problem is None
        ]
        if not permissive:
            return 200, {"data": data}
        errors = [
            {"index": i, "message": problem[1]["message"]}  # type: ignore[call-overload]
            for i, problem in enumerate(problems)
            if problem is not None
        ]
        return 200, {"data": data, "errors": errors}


def create_app(sandbox: ResendSandbox) -> Litestar:
    """The Litestar app serving ``sandbox``: every route goes through ``sandbox.handle``."""

    async def answer(request: Request[Any, Any, Any]) -> Response[Any]:
        headers = {k.lower(): v for k, v in request.headers.items()}
        status, payload, extra = await sandbox.handle(
            request.method, request.url.path, headers, await request.body()
        )
        return Response(payload, status_code=status, headers=extra, media_type="application/json")

    @post("/emails", status_code=200)
    async def send_email(request: Request[Any, Any, Any]) -> Response[Any]:
        return await answer(request)

    @post("/emails/batch", status_code=200)
    async def send_batch(request: Request[Any, Any, Any]) -> Response[Any]:
        return await answer(request)

    @get("/emails/{email_id:str}")
    async def get_email(request: Request[Any, Any, Any]) -> Response[Any]:
        return await answer(request)

    @get("/domains")
    async def list_domains(request: Request[Any, Any, Any]) -> Response[Any]:
        return await answer(request)

    def not_found(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
        status, name, message = (
            (405, "method_not_allowed", "Method is not allowed for the requested path.")
            if isinstance(exc, MethodNotAllowedException)
            else (404, "not_found", "The requested endpoint does not exist.")
        )
        return Response(
            {"statusCode": status, "name": name, "message": message}, status_code=status
        )

    return Litestar(
        route_handlers=[send_email, send_batch, get_email, list_domains],
        exception_handlers={NotFoundException: not_found, MethodNotAllowedException: not_found},
        openapi_config=None,
        debug=False,
    )


def demo() -> Any:
    """Entry point ``journeyhub.sandboxes``: this sandbox as ``journeyhub demo`` runs it (its
    ``email_<event>`` webhooks are Resend's signed ``email.<event>`` for ``data["email_id"]``)."""
    from journeyhub.testing.sandbox import SandboxDemo

    def sender(event_type: str) -> Any:
        async def send(sb: ResendSandbox, data: Any, url: str, secret: str, http: Any) -> Any:
            return await sb.deliver(sb.emit(event_type, data["email_id"]), url, secret, http)

        return send

    events = ("delivered", "opened", "clicked", "bounced", "complained", "failed", "suppressed")
    return SandboxDemo(
        "Resend",
        ResendSandbox,
        config=lambda sb: {"api_base": sb.url},
        credentials=lambda sb: {"api_key": sb.api_key},
        webhooks={f"email_{e}": sender(f"email.{e}") for e in events},
        secrets=(DEFAULT_API_KEY, SENDING_API_KEY),
    )
