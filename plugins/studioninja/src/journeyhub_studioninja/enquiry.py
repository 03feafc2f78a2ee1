"""Studio Ninja's enquiry (contact) form: what a journey posts there, as a browser would.

Studio Ninja has no API; new leads come through a contact form, embedded in a studio's site as
an iframe of ``https://app.studioninja.co/contactform/parser/<company id>/<form id>`` (or linked
as ``.../contactform/hosted/...``). How it submits (action URL, encoding, field names) is not
published: the connection says it, and the README tells how to read it off the form. An answer
carries no id: success is any 2xx, or a 3xx to a thank-you page. Nor can the form deduplicate,
so the only guard is ours, in this process: ``LEDGER`` (what it cannot cover: README, Limits).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from journeyhub.kit import JourneyEvent, PermanentError, RetryableError, VendorHttp, VendorResponse
from journeyhub.model import stable_id

from journeyhub_studioninja.config import StudioNinjaConfig

# ASSUMED: no request quota is published; a studio's form takes a few enquiries a day.
RATE_LIMIT_PER_SECOND = 1.0
# What the form's refusals most likely mean. Any other 4xx (a 409 included: the form has
# nothing to conflict with) is permanent too; a public form has no credentials to refresh, so
# a 401 or 403 is a block (bot protection), not an expired token.
HINTS = {
    (404, 410): "no such form: check enquiry_form_url",
    (400, 422): "the form refused the fields: check the field mappings against the form's "
    "field names and required fields",
    (401, 403): "refused: the form may require a captcha",
}
# (connection id, enquiry) -> True once sent, False while being sent; the oldest are dropped.
LEDGER: OrderedDict[tuple[str, str], bool] = OrderedDict()
LEDGER_SIZE = 10_000
_ledger_lock = threading.Lock()


def answered(response: VendorResponse, what: str) -> int:
    """The form's status when it took the request; else the kernel's error for its answer."""
    status = response.status_code
    message = f"Studio Ninja's enquiry form answered {status} to {what}"
    if status in (408, 429) or status >= 500:
        raise response.error(message)  # the kernel's reading: 429 waits, 408 and 5xx retry
    if status >= 400:
        hint = next((hint for codes, hint in HINTS.items() if status in codes), None)
        raise PermanentError(f"{message} ({hint})" if hint else message, vendor_status=status)
    return status


async def load_page(http: VendorHttp, url: str, config: StudioNinjaConfig) -> int:
    """GET the form page (what a visitor's browser loads): it exists or it does not (a 405 is
    a page that only takes the POST)."""
    response = await http.get(url, timeout=config.timeout_seconds)
    return 405 if response.status_code == 405 else answered(response, "a page load")


def submission_id(event: JourneyEvent) -> str:
    """One enquiry per client and journey, whichever event id started it."""
    return stable_id("jh-sn-enquiry", event.client.id, event.journey_instance_id)


def form_fields(
    event: JourneyEvent, mapped: dict[str, Any], config: StudioNinjaConfig
) -> dict[str, str]:
    """The form fields for ``event``: the mapped ones as text, and our reference when set."""
    reserved = config.reference_field
    fields: dict[str, str] = {}
    for name, value in mapped.items():
        if name == reserved:
            raise PermanentError(
                f"field mapping target {name!r} is the reference_field and cannot be mapped"
            )
        if isinstance(value, bool):
            fields[name] = "true" if value else "false"
        elif isinstance(value, str | int | float) and value != "":
            fields[name] = str(value)
        elif value is not None and value != "":
            raise PermanentError(
                f"field mapping target {name!r} holds a {type(value).__name__}: the enquiry "
                "form takes flat field names with text values (use a target without dots)"
            )
    if not fields:
        raise PermanentError("the field mappings gave the enquiry form no field to send")
    if reserved is not None:
        fields[reserved] = submission_id(event)
    return fields


async def post(
    http: VendorHttp, url: str, config: StudioNinjaConfig, key: tuple[str, str], fields: Any
) -> int | None:
    """POST the enquiry ``key`` (connection, enquiry) unless this process has: the form's
    status, or None when it was posted already; a concurrent post of it is retried later (and
    then finds it sent). A post that fails is forgotten, so a retry posts it; no answer raises
    the kernel's errors as they are: ``VendorUnreachable`` when nothing reached the form (a
    retry cannot make a second lead), ``OutcomeUnknown`` when no answer came (the form may
    have taken it)."""
    with _ledger_lock:
        if key in LEDGER:
            LEDGER.move_to_end(key)
            if LEDGER[key]:
                return None
            raise RetryableError("this enquiry is being posted by another delivery; retry later")
        LEDGER[key] = False  # being sent
        while len(LEDGER) > LEDGER_SIZE:
            LEDGER.popitem(last=False)
    body = {"json": fields} if config.enquiry_encoding == "json" else {"data": fields}
    headers = {"accept": "text/html,application/json;q=0.9"}
    try:
        response = await http.post(url, **body, headers=headers, timeout=config.timeout_seconds)
        status = answered(response, "an enquiry")
    except BaseException:
        with _ledger_lock:
            LEDGER.pop(key, None)
        raise
    with _ledger_lock:
        LEDGER[key] = True
    return status
