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

from journeyhub.errors import ConnectorError, PermanentError
from journeyhub.vendor_http import VendorHttp, VendorResponse

# ASSUMED: no request quota is published; a studio's form takes a few enquiries a day.
RATE_LIMIT_PER_SECOND = 1.0


@dataclass(frozen=True)
class FormAnswer:
    status: int


def classify(response: VendorResponse, what: str) -> ConnectorError:
    status = response.status_code
    message = f"Studio Ninja's enquiry form answered {status} to {what}"
    if status in (404, 410):
        return PermanentError(
            message + " (no such form: check enquiry_form_url)", vendor_status=status
        )
    if status in (400, 422):
        return PermanentError(
            message + " (the form refused the fields: check the field "
            "mappings against the form's field names and required fields)",
            vendor_status=status,
        )
    if status in (401, 403):
        # A public form has no credentials to refresh: a 403 is a block (bot protection).
        return PermanentError(
            message + " (refused: the form may require a captcha)", vendor_status=status
        )
    if status in (408, 429) or status >= 500:
        # The kernel's reading: 429 waits its Retry-After, 408 and 5xx retry.
        return response.error(message)
    # Any other refusal (a 409 included: the form has nothing to conflict with) is permanent.
    return PermanentError(message, vendor_status=status)


@dataclass
class EnquiryForm:
    http: VendorHttp
    url: str
    encoding: str = "form"  # "form": application/x-www-form-urlencoded; "json"
    timeout: float = 15.0

    async def submit(self, fields: dict[str, Any]) -> FormAnswer:
        """POST one enquiry. No answer raises the kernel's errors as they are:
        ``VendorUnreachable`` when nothing reached the form (a retry cannot make a second
        lead), ``OutcomeUnknown`` when it was sent and no answer came (a timeout, a dropped
        connection: the form may have taken it; the README says what that means)."""
        body: dict[str, Any] = {"json": fields} if self.encoding == "json" else {"data": fields}
        response = await self.http.post(
            self.url,
            **body,
            timeout=self.timeout,
            headers={"accept": "text/html,application/json;q=0.9"},
        )
        if response.status_code >= 400:
            raise classify(response, "an enquiry")
        return FormAnswer(response.status_code)

    async def check(self) -> FormAnswer:
        """GET the form page (what a visitor's browser loads): it exists or it does not."""
        response = await self.http.get(self.url, timeout=self.timeout)
        if response.status_code >= 400 and response.status_code != 405:
            raise classify(response, "a page load")
        return FormAnswer(response.status_code)
