"""The little of Stripe's API v1 this connector reads: the Events list.

Errors become the kernel's errors (``VendorResponse.error``). Stripe echoes a masked form of a
refused key in its 401/403 messages (``Invalid API Key provided: sk_test_****abcd``), so those
messages are never passed on, and every other message has key-shaped strings scrubbed. A call
that gets no answer raises the kernel's ``VendorUnreachable`` or ``OutcomeUnknown`` as they are
(only reads here: a retry is always safe).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from journeyhub.errors import PermanentError, RetryableError
from journeyhub.vendor_http import VendorHttp, VendorResponse

_KEY_SHAPED = re.compile(r"\b(sk|rk|pk)_(live|test)_[A-Za-z0-9*]+")


class CursorGone(PermanentError):
    """Stripe no longer knows the cursor event (events are kept 30 days)."""


def _error_message(response: VendorResponse, api_key: str) -> tuple[str, dict[str, Any]]:
    """A safe description of a Stripe error answer, and Stripe's ``error`` object."""
    try:
        body = response.json()
        error = body.get("error") if isinstance(body, dict) else None
    except ValueError:
        error = None
    error = error if isinstance(error, dict) else {}
    details = [
        f"{f}={error[f]}" for f in ("type", "code", "param") if isinstance(error.get(f), str)
    ]
    message = error.get("message")
    if response.status_code in (401, 403):
        details.append("(the API key was refused or cannot read Events)")
    elif isinstance(message, str):
        if api_key:
            message = message.replace(api_key, "[redacted]")
        details.append(_KEY_SHAPED.sub("[redacted]", message))
    summary = f"Stripe answered {response.status_code}"
    return (f"{summary}: {' '.join(details)}" if details else summary), error


class StripeClient:
    def __init__(self, http: VendorHttp, api_base: str, api_key: str, timeout: float):
        self.http = http
        self.api_base = api_base.rstrip("/")
        self._api_key = api_key
        self.timeout = timeout

    async def get(self, path: str, params: Sequence[tuple[str, str]] = ()) -> dict[str, Any]:
        # No answer raises the kernel's VendorUnreachable or OutcomeUnknown as it is.
        response = await self.http.get(
            f"{self.api_base}{path}",
            params=list(params),
            headers={"authorization": f"Bearer {self._api_key}"},
            timeout=self.timeout,
        )
        if response.status_code >= 300:
            message, error = _error_message(response, self._api_key)
            if error.get("code") == "resource_missing" and error.get("param") in (
                "ending_before",
                "starting_after",
            ):
                raise CursorGone(message, vendor_status=response.status_code)
            raise response.error(message)
        try:
            body = response.json()
        except ValueError:
            raise RetryableError("Stripe answered 200 with a body that is not JSON") from None
        if not isinstance(body, dict):
            raise RetryableError("Stripe answered 200 with an unexpected body")
        return body

    async def list_events(
        self, *, ending_before: str | None = None, limit: int = 100, types: Sequence[str] = ()
    ) -> dict[str, Any]:
        """``GET /v1/events``: up to ``limit`` events, newest first; with ``ending_before``
        the ones immediately newer than that event."""
        params = [("limit", str(limit))]
        if ending_before:
            params.append(("ending_before", ending_before))
        params.extend(("types[]", t) for t in types)
        body = await self.get("/v1/events", params)
        if not isinstance(body.get("data"), list):
            raise RetryableError("Stripe's event list has no data array")
        return body
