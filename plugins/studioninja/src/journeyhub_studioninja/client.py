"""Studio Ninja's enquiry (contact) form, posted to as a browser would.

Studio Ninja has no API. What it offers for new leads is a contact form, embedded in a studio's
site as an iframe of ``https://app.studioninja.co/contactform/parser/<company id>/<form id>``
(or linked as ``.../contactform/hosted/<company id>/<form id>``); what is submitted there becomes
a lead in Studio Ninja. How the page submits (its action URL, encoding and field names) is not
published: the connection says it (``enquiry_form_url``, ``enquiry_encoding``, field mappings),
and the README tells the user how to read it off their own form.

A form answer carries no id and the form has no duplicate check: success is any 2xx, or a 3xx
to a thank-you page.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from journeyhub.errors import ConnectorError, PermanentError, RateLimited, RetryableError

# ASSUMED: no request quota is published; a studio's form takes a few enquiries a day.
RATE_LIMIT_PER_SECOND = 1.0
# The connect phase failed: nothing reached the form, so a retry cannot make a second lead.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass(frozen=True)
class FormAnswer:
    status: int


def _retry_after(response: httpx.Response) -> float | None:
    raw = response.headers.get("retry-after")
    try:
        return max(0.0, float(raw)) if raw is not None else None
    except ValueError:
        return None


def classify(response: httpx.Response, what: str) -> ConnectorError:
    status = response.status_code
    message = f"Studio Ninja's enquiry form answered {status} to {what}"
    if status == 429:
        return RateLimited(message, retry_after=_retry_after(response))
    if status in (404, 410):
        return PermanentError(message + " (no such form: check enquiry_form_url)",
                              vendor_status=status)  # fmt: skip
    if status in (400, 422):
        return PermanentError(message + " (the form refused the fields: check the field "
                              "mappings against the form's field names and required fields)",
                              vendor_status=status)  # fmt: skip
    if status in (401, 403):
        # A public form has no credentials to refresh: a 403 is a block (bot protection).
        return PermanentError(message + " (refused: the form may require a captcha)",
                              vendor_status=status)  # fmt: skip
    if status == 408 or status >= 500:
        return RetryableError(message, vendor_status=status)
    return PermanentError(message, vendor_status=status)


@dataclass
class EnquiryForm:
    http: httpx.AsyncClient
    url: str
    encoding: str = "form"  # "form": application/x-www-form-urlencoded; "json"
    timeout: float = 15.0

    async def submit(self, fields: dict[str, Any]) -> FormAnswer:
        """POST one enquiry. A timeout or a dropped connection after the request went out is
        retryable, but the form may have taken it: the README says what that means."""
        body: dict[str, Any] = {"json": fields} if self.encoding == "json" else {"data": fields}
        try:
            response = await self.http.post(
                self.url, **body, timeout=self.timeout,
                headers={"accept": "text/html,application/json;q=0.9"},
            )  # fmt: skip
        except NOT_SENT as exc:
            raise RetryableError(
                f"Studio Ninja's enquiry form unreachable: {type(exc).__name__}"
            ) from exc
        except httpx.TimeoutException as exc:
            raise RetryableError(
                f"Studio Ninja's enquiry form timed out after {self.timeout:g}s "
                "(it may have received the enquiry)"
            ) from exc
        except httpx.TransportError as exc:
            raise RetryableError(
                f"Studio Ninja's enquiry form dropped the connection: {type(exc).__name__} "
                "(it may have received the enquiry)"
            ) from exc
        if response.status_code >= 400:
            raise classify(response, "an enquiry")
        return FormAnswer(response.status_code)

    async def check(self) -> FormAnswer:
        """GET the form page (what a visitor's browser loads): it exists or it does not."""
        try:
            response = await self.http.get(self.url, timeout=self.timeout)
        except httpx.TimeoutException as exc:
            raise RetryableError(
                f"Studio Ninja's enquiry form timed out after {self.timeout:g}s"
            ) from exc
        except httpx.TransportError as exc:
            raise RetryableError(
                f"Studio Ninja's enquiry form unreachable: {type(exc).__name__}"
            ) from exc
        if response.status_code >= 400 and response.status_code != 405:
            raise classify(response, "a page load")
        return FormAnswer(response.status_code)
