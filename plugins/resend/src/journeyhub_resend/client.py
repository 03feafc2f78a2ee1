"""A small client for the part of the Resend API the connector uses.

Every failure becomes the :mod:`journeyhub.errors` class the kernel acts on. Resend's error body
is ``{"statusCode", "name", "message"}`` (see the SDKs' ``exceptions``); ``name`` tells apart
errors that share a status: a 403 ``invalid_api_key`` needs a person to fix the key
(``ReauthRequired``) while a 403 ``validation_error`` (unverified domain) is a bad email, and a
401 ``restricted_api_key`` is a sending-only key used on another endpoint. The API key is
scrubbed from every message, whatever the server echoes.

A call that gets no answer raises the kernel's ``VendorUnreachable`` (never sent: a retry is
safe) or ``OutcomeUnknown`` (sent, no answer: Resend may have sent the email; the retry, under
the same ``Idempotency-Key``, is replayed by Resend instead of sending twice) as they are.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from journeyhub.errors import (
    ConnectorError,
    PermanentError,
    RateLimited,
    ReauthRequired,
    RetryableError,
)
from journeyhub.vendor_http import VendorHttp, VendorResponse

MAX_BATCH = 100  # Resend's limit for POST /emails/batch


def fit_key(key: str) -> str:
    """Resend takes idempotency keys of 1 to 256 characters (else 400 invalid_idempotency_key);
    a longer key is hashed, which keeps it deterministic."""
    if 1 <= len(key) <= 256:
        return key
    return "jh-" + hashlib.sha256(key.encode()).hexdigest()


def _seconds(raw: str | None) -> float | None:
    """``ratelimit-reset``: seconds until the window resets."""
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        return None


class ResendClient:
    def __init__(
        self, http: VendorHttp, *, api_base: str, api_key: str, timeout: float = 15.0
    ) -> None:
        self._http = http
        self._base = api_base.rstrip("/")
        self._key = api_key
        self._timeout = timeout

    # --- endpoints ---------------------------------------------------------------------------

    async def send(self, email: dict[str, Any], idempotency_key: str) -> tuple[int, dict[str, Any]]:
        """POST /emails; returns (status, ``{"id": …}``)."""
        return await self._request("POST", "/emails", email, idempotency_key=idempotency_key)

    async def send_batch(
        self, emails: Sequence[dict[str, Any]], idempotency_key: str
    ) -> tuple[int, dict[str, Any]]:
        """POST /emails/batch in permissive mode: a bad email fails alone, not its batch.

        Returns (status, ``{"data": [{"id"}…], "errors": [{"index", "message"}…]}``).
        """
        if len(emails) > MAX_BATCH:
            raise ValueError(f"a Resend batch holds at most {MAX_BATCH} emails")
        return await self._request(
            "POST",
            "/emails/batch",
            list(emails),
            idempotency_key=idempotency_key,
            extra_headers={"x-batch-validation": "permissive"},
        )

    async def list_domains(self) -> tuple[int, dict[str, Any]]:
        return await self._request("GET", "/domains", None)

    # --- plumbing ----------------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        body: Any,
        *,
        idempotency_key: str | None = None,
        extra_headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        headers = {"authorization": f"Bearer {self._key}", "accept": "application/json"}
        if idempotency_key is not None:
            headers["idempotency-key"] = fit_key(idempotency_key)
        headers.update(extra_headers or {})
        # No answer raises the kernel's VendorUnreachable or OutcomeUnknown as it is.
        response = await self._http.request(
            method, self._base + path, json=body, headers=headers, timeout=self._timeout
        )
        if response.status_code >= 300:
            raise self._error(method, path, response)
        try:
            payload = response.json()
        except ValueError:
            # Accepted or not, we cannot tell; a retry under the same idempotency key is safe.
            raise RetryableError(
                f"Resend {method} {path} answered {response.status_code} without JSON",
                vendor_status=response.status_code,
            ) from None
        if not isinstance(payload, dict):
            raise RetryableError(f"Resend {method} {path} answered an unexpected body")
        return response.status_code, payload

    def _scrub(self, text: str) -> str:
        return text.replace(self._key, "re_***") if self._key else text

    def _error(self, method: str, path: str, response: VendorResponse) -> ConnectorError:
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = {}
        name = str(body.get("name", "")) if isinstance(body, dict) else ""
        detail = str(body.get("message", "")) if isinstance(body, dict) else ""
        message = self._scrub(
            f"Resend {method} {path} answered {status}"
            + (f" {name}" if name else "")
            + (f": {detail[:300]}" if detail else "")
        )
        error = self._classify(status, name, message, response)
        error.vendor_error = name  # type: ignore[attr-defined]  # Resend's ``name``, e.g. "restricted_api_key"
        return error

    @staticmethod
    def _classify(status: int, name: str, message: str, response: VendorResponse) -> ConnectorError:
        if status == 429:
            retry_after = response.retry_after()
            if retry_after is None:
                retry_after = _seconds(response.headers.get("ratelimit-reset"))
            return RateLimited(message, retry_after=retry_after)
        if (status, name) in ((401, "missing_api_key"), (403, "invalid_api_key")):
            return ReauthRequired(message, vendor_status=status)
        if status == 401:  # restricted_api_key: refreshing cannot help an API key
            return PermanentError(message, vendor_status=status)
        return response.error(message)
