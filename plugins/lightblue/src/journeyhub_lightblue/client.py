"""A small client for Light Blue's inbound API: one form POST, answered by a text status code.

Every fact about the vendor lives in the constants below. The README lists where each was
checked; the ones marked ASSUMED were not found in Light Blue's published pages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urljoin

from journeyhub.errors import ConnectorError, PermanentError, RetryableError
from journeyhub.vendor_http import VendorHttp, VendorResponse

# --- checked against Light Blue's API pages ("Sending data directly to the Light Blue API via
# HTTP POST", "Advanced API parameters", "Data types") --------------------------------------------
API_URL = "https://online.lightbluesoftware.com/api.php"
KEY = "key"  # the studio's API key (My Account page)
TYPE = "type"
CONTACT_FORM = "contact form"  # "At present the only type that is supported"
ID = "ID"  # with Source: the API answers -4 to a second request with the same pair
SOURCE = "Source"
SOURCE_VERSION = "SourceAPIVersion"
OK, BAD_PARAMETERS, DUPLICATE, HTTPS_REQUIRED = 0, -3, -4, -20
DATE_FORMAT = "%d/%m/%Y"  # dates are read as dd/mm/yyyy unless a DateFormat parameter says else

# --- from Light Blue's own WordPress plug-ins (Gravity Forms and ProPhoto add-ons, GPL) ----------
# They check a key with a POST of ``Key`` to apiCheck.php, next to api.php, and read the answer
# as "<status>\r<message>"; status 0 means the account is confirmed. Nothing is created.
CHECK_SCRIPT = "apiCheck.php"
CHECK_KEY = "Key"

# --- ASSUMED ------------------------------------------------------------------------------------
# No request quota is published; a studio's web form sends a few enquiries a day.
RATE_LIMIT_PER_SECOND = 1.0

_STATUS = re.compile(r"^\s*(-?\d+)\s*(.*)$", re.DOTALL)


@dataclass(frozen=True)
class Answer:
    """Light Blue's status code and the summary it gives with an error."""

    code: int
    summary: str
    http_status: int


def parse_answer(text: str) -> tuple[int, str] | None:
    """``"-3\\rsummary"`` → ``(-3, "summary")``; None when the body holds no status code."""
    match = _STATUS.match(text)
    if match is None:
        return None
    summary = " ".join(match.group(2).split())  # CR/LF-separated lines → one line
    return int(match.group(1)), summary


def check_url(api_url: str) -> str:
    """apiCheck.php in the same folder as api.php."""
    return urljoin(api_url, CHECK_SCRIPT)


@dataclass
class LightBlueClient:
    """One connection's calls. Raises the kernel's errors; never puts the key in a message."""

    http: VendorHttp
    api_key: str
    api_url: str = API_URL
    timeout: float = 15.0
    _scrub: tuple[str, ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        self._scrub = (self.api_key,) if self.api_key else ()

    def safe(self, text: str) -> str:
        for secret in self._scrub:
            text = text.replace(secret, "***")
        return text

    async def submit(self, fields: dict[str, str]) -> Answer:
        """POST one "contact form" request to api.php; ``fields`` are its parameters."""
        form = {KEY: self.api_key, TYPE: CONTACT_FORM, **fields}
        return await self._post(self.api_url, form)

    async def check(self) -> Answer:
        """Ask apiCheck.php whether the key is valid (sends no enquiry)."""
        return await self._post(check_url(self.api_url), {CHECK_KEY: self.api_key})

    async def _post(self, url: str, form: dict[str, str]) -> Answer:
        where = url.split("?")[0]
        # No answer raises the kernel's VendorUnreachable or OutcomeUnknown as it is (the key
        # travels in the form, never in the URL those name). After OutcomeUnknown the retry
        # sends the same ID and Source: Light Blue answers -4 if it stored the first one.
        response = await self.http.post(
            url,
            data=form,  # application/x-www-form-urlencoded, UTF-8 as the API expects
            headers={"accept": "text/plain"},
            timeout=self.timeout,
        )
        if response.status_code >= 300:
            raise self._http_error(response, where)
        parsed = parse_answer(response.text)
        if parsed is None:
            # Not the API's answer (a proxy or maintenance page): try again later.
            raise RetryableError(
                f"{where} answered {response.status_code} without a Light Blue status code",
                vendor_status=response.status_code,
            )
        code, summary = parsed
        return Answer(code, self.safe(summary)[:300], response.status_code)

    def _http_error(self, response: VendorResponse, where: str) -> ConnectorError:
        status = response.status_code
        message = f"{where} answered HTTP {status}"
        if status in (401, 403):
            # The API authenticates by the form's key, not HTTP auth: nothing to refresh.
            return PermanentError(message, vendor_status=status)
        return response.error(message)
