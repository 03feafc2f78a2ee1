"""The Resend connector: transactional emails out, email events in.

Out: ``email_requested`` events and completed ``email`` steps become emails rendered from the
connection's templates, sent with ``POST /emails`` (``/emails/batch`` for bursts) under the
delivery's ``Idempotency-Key``: a retry after no answer is replayed by Resend, not sent twice.
In: Svix-signed ``email.*`` webhooks become ``email_*`` triggers.
Operations: the tenant's incidents are mailed to ``config.operations_address`` when it is set
(``operations.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from hashlib import sha256
from typing import Any

from journeyhub.kit import (
    ConnectorError,
    ConnectorInfo,
    DeliveryTask,
    FieldMapping,
    PermanentError,
    PushResult,
    RateLimit,
    RateLimited,
    ReauthRequired,
    RetryableError,
    StoredWebhook,
    TriggerDraft,
    VendorHttp,
    VendorResponse,
    WebhookReceipt,
    hookimpl,
)
from journeyhub.vendor_http import retry_after

from journeyhub_resend import inbound, verify
from journeyhub_resend.compose import compose
from journeyhub_resend.config import ResendConfig, ResendCredentials

MAX_BATCH = 100  # Resend's limit for POST /emails/batch
SINGLE_ONLY = frozenset({"attachments"})  # refused by POST /emails/batch
DEFAULT_FIELD_MAPPINGS = (
    FieldMapping(source="client.email", target="to"),
    FieldMapping(source="client.name", target="client_name"),
    FieldMapping(source="client.name", target="first_name", transform="first_name"),
    FieldMapping(source="data.couple", target="couple"),
    FieldMapping(source="wedding.date", target="wedding_date", transform="date:%d %B %Y"),
    FieldMapping(source="wedding.venue.name", target="venue"),
)


class RestrictedKey(PermanentError):
    """A sending-only key used on another endpoint: refreshing cannot help an API key."""


# Resend keeps an idempotency key's first request for 24 hours and refuses another body under it.
CHANGED_BODY = (
    "Resend already has another email under this delivery's Idempotency-Key (kept 24 hours): "
    "the connection's templates or config, or the suppression list, changed between two "
    "attempts. The first version was sent and this one was not; retrying cannot change that"
)


@hookimpl
def journeyhub_connector() -> ConnectorInfo:
    return ConnectorInfo(
        vendor="resend",
        display_name="Resend",
        capabilities=frozenset({"push", "webhook", "operations"}),
        auth_kind="bearer",
        config_schema=ResendConfig,
        credentials_schema=ResendCredentials,
        rate_limit=RateLimit(requests=2, per_seconds=1),  # Resend's default per team
        webhook_event_types=tuple(inbound.TRIGGERS),
        push_event_types=("email_requested", "step_completed"),
        default_field_mappings=DEFAULT_FIELD_MAPPINGS,
        max_batch=MAX_BATCH,
        docs_url="https://resend.com/docs/api-reference/introduction",
    )


@hookimpl
async def journeyhub_push(
    task: DeliveryTask,
    config: ResendConfig,
    creds: ResendCredentials,
    idempotency_key: str,
    http: VendorHttp,
    suppressed: frozenset[str],
) -> PushResult:
    _api_key(creds)  # before composing: an inbound-only connection is told what it lacks
    email = compose(task, config, suppressed)
    if isinstance(email, PushResult):
        return email
    return await _send(http, config, creds, email, idempotency_key)


async def _send(
    http: VendorHttp, config: ResendConfig, creds: ResendCredentials, email: Any, key: str
) -> PushResult:
    result = _sent(*await _call(http, config, creds, "/emails", email, key=key))
    if isinstance(result, PermanentError):
        raise result
    return result


@hookimpl
async def journeyhub_push_batch(
    tasks: list[DeliveryTask],
    config: ResendConfig,
    creds: ResendCredentials,
    idempotency_key: str,
    http: VendorHttp,
    suppressed: frozenset[str],
) -> list[PushResult | Exception]:
    """Every task's result at its position: tasks skipped or failing on their own never reach
    Resend, and an email Resend rejects in the permissive batch fails alone; only a failure of
    the whole call raises. The kernel sends at most ``max_batch`` tasks: one call."""
    _api_key(creds)
    results: list[PushResult | Exception | dict[str, Any]] = []
    for task in tasks:
        try:
            email = compose(task, config, suppressed)
            if isinstance(email, dict) and SINGLE_ONLY & email.keys():
                # Resend's batch takes no attachments: sent alone, under its own push's key
                email = await _send(http, config, creds, email, task.idempotency_key)
            results.append(email)
        except ConnectorError as exc:  # this task's own problem: the others still go
            results.append(exc)
    emails = [email for email in results if isinstance(email, dict)]
    if emails:
        path = "/emails/batch"
        status, body = await _call(http, config, creds, path, emails, key=idempotency_key)
        # ``data`` lists the created emails in order, less those named by index in ``errors``.
        failed = {
            e["index"]: str(e.get("message", "rejected"))[:300]
            for e in body.get("errors") or []
            if isinstance(e, dict) and isinstance(e.get("index"), int)
        }
        created = iter(body.get("data") or [])
        answers = iter(
            PermanentError(f"Resend rejected this email: {failed[index]}", vendor_status=422)
            if index in failed
            else _sent(status, next(created, None))
            for index in range(len(emails))
        )
        results = [next(answers) if isinstance(r, dict) else r for r in results]
    return results  # type: ignore[return-value]  # every email replaced by its result


@hookimpl
def journeyhub_takes_incidents(config: ResendConfig) -> bool:
    """Incidents are mailed to ``config.operations_address`` when it is set (and the
    connection can send)."""
    return config.operations_address is not None and config.from_address is not None


@hookimpl
def journeyhub_verify_webhook(
    config: ResendConfig,
    credentials: Mapping[str, Any],
    headers: Mapping[str, str],
    body: bytes,
    now: datetime,
) -> WebhookReceipt:
    # ``credentials``, not ``creds``: verify refuses, never fails, whatever is stored.
    return verify.verify(credentials, headers, body, now=now, tolerance=config.tolerance_seconds)


@hookimpl
def journeyhub_handle_webhook(webhook: StoredWebhook) -> list[TriggerDraft] | None:
    return inbound.drafts(webhook)


@hookimpl
async def journeyhub_check_connection(
    config: ResendConfig, creds: ResendCredentials, http: VendorHttp
) -> str:
    if creds.api_key is None:
        return "no api_key: this connection receives Resend's webhooks and sends nothing"
    try:
        status, body = await _call(http, config, creds, "/domains")
    except RestrictedKey:
        return "Resend accepted the API key (sending access only: it cannot list domains)"
    domains = body.get("data") or []
    verified = sum(1 for d in domains if isinstance(d, dict) and d.get("status") == "verified")
    return f"Resend answered {status}: {len(domains)} domain(s), {verified} verified"


async def _call(
    http: VendorHttp,
    config: ResendConfig,
    creds: ResendCredentials,
    path: str,
    body: Any = None,
    key: str | None = None,
) -> tuple[int, dict[str, Any]]:
    """POST ``body`` (GET without one); (status, JSON object) of a success."""
    api_key = _api_key(creds)
    headers = {"authorization": f"Bearer {api_key}", "accept": "application/json"}
    if key is not None:  # Resend takes 1 to 256 characters (else a 400): a longer one is hashed
        hashed = "jh-" + sha256(key.encode()).hexdigest()
        headers["idempotency-key"] = key if 0 < len(key) <= 256 else hashed
    if path == "/emails/batch":  # permissive: a bad email fails alone, not its batch
        headers["x-batch-validation"] = "permissive"
    method = "GET" if body is None else "POST"
    url, timeout = config.api_base + path, config.timeout_seconds
    response = await http.request(method, url, json=body, headers=headers, timeout=timeout)
    try:
        answer = response.json()
    except ValueError:
        answer = None
    status, answer = response.status_code, answer if isinstance(answer, dict) else None
    said = f"Resend {method} {path} answered {status}"
    if not response.is_success:
        raise _error(said, response, answer or {}, api_key)
    if answer is None:  # sent or not, we cannot tell: the same key replays it
        raise RetryableError(f"{said} without a JSON object", vendor_status=status)
    return status, answer


def _api_key(creds: ResendCredentials) -> str:
    if creds.api_key is None:
        raise ReauthRequired("this connection has no api_key: add one to send emails")
    return creds.api_key


def _error(said: str, response: VendorResponse, body: dict[str, Any], key: str) -> ConnectorError:
    """Resend's errors are ``{"statusCode", "name", "message"}``; ``name`` and ``message`` tell
    apart those sharing a status: a key that is missing, revoked or invalid needs a person
    (401, 403 ``invalid_api_key``, or a ``validation_error`` saying "API key is invalid"), an
    unverified domain (403 ``validation_error``) is a bad email. The key is scrubbed from the
    message, whatever the server echoes."""
    status, name = response.status_code, str(body.get("name", ""))
    detail = str(body.get("message", ""))[:300]
    said += (f" {name}" if name else "") + (f": {detail}" if detail else "")
    said = said.replace(key, "re_***")
    if status == 429:  # Resend also says when its window resets, in seconds
        wait = response.retry_after()
        reset = retry_after(response.headers.get("ratelimit-reset"))
        return RateLimited(said, retry_after=reset if wait is None else wait)
    if name == "restricted_api_key":  # a sending-only key used on another endpoint
        return RestrictedKey(said, vendor_status=status)
    names_key = "api key" in detail.lower() and status in (400, 403)
    if status == 401 or name == "invalid_api_key" or names_key:
        return ReauthRequired(said, vendor_status=status)
    if name == "invalid_idempotent_request":
        return PermanentError(f"{said.rstrip('.')}. {CHANGED_BODY}", vendor_status=status)
    if name == "concurrent_idempotent_requests":  # the other attempt's answer settles it
        return RetryableError(f"{said} (another attempt is under way)", vendor_status=status)
    return response.error(said)


def _sent(status: int, answer: Any) -> PushResult | PermanentError:
    email_id = answer.get("id") if isinstance(answer, dict) else None
    if not isinstance(email_id, str):
        return PermanentError("Resend accepted the email but answered no id")
    return PushResult(vendor_status=status, external_ids={"email_id": email_id})
