"""One vendor call, its answer turned into what the kernel acts on.

``send`` returns a successful answer (or one of the statuses the caller expects, such as a
404 it handles) and raises every other one as the kernel's error: 429 ``RateLimited`` with
its ``Retry-After``, 401 ``AuthExpired``, 408/409/5xx ``RetryableError``, other 4xx
``PermanentError``. The message says what was asked (``what``), the status and the vendor's
own words. No answer at all raises the HTTP client's ``VendorUnreachable`` (never sent, safe
to retry) or ``OutcomeUnknown`` (sent, the vendor may have acted): a connector lets both
through as they are, so the push worker can wait and look up before it creates again.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from journeyhub.vendor_http import VendorHttp, VendorResponse

DETAIL_CHARS = 200
# Where vendors put their message in a JSON error body, most specific first.
_MESSAGE_KEYS = ("message", "error_description", "detail", "error", "title", "errors")


def vendor_message(response: VendorResponse) -> str:
    """The vendor's own words from an error answer, short: a JSON body's message, else its
    text. Empty when there is none."""
    try:
        body = response.json()
    except ValueError:
        return " ".join(response.text.split())[:DETAIL_CHARS]
    for _ in range(3):  # {"error": {"message": …}} and the like
        if not isinstance(body, dict):
            break
        found = next((body[key] for key in _MESSAGE_KEYS if body.get(key)), None)
        if found is None:
            break
        body = found
    if isinstance(body, list) and body:
        body = body[0].get("message", body[0]) if isinstance(body[0], dict) else body[0]
    return str(body)[:DETAIL_CHARS] if isinstance(body, str | int | float) else ""


async def send(
    http: VendorHttp,
    method: str,
    url: str,
    *,
    what: str,
    expect: Collection[int] = (),
    **request: Any,
) -> VendorResponse:
    """Send one request (``request`` as ``VendorHttp.request`` takes it) and return the
    answer when it is a 2xx or in ``expect``; raise the kernel's error for any other."""
    response = await http.request(method, url, **request)
    if response.is_success or response.status_code in expect:
        return response
    said = vendor_message(response)
    raise response.error(f"{what}: {response.status_code}" + (f" ({said})" if said else ""))
