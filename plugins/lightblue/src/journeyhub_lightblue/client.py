"""Light Blue's inbound API: the "contact form" request for an event, and the text status
code it is answered with.

The README says where each fact was checked; ASSUMED ones are not in Light Blue's pages.
"""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, version
from typing import Any, NamedTuple
from urllib.parse import urljoin

from journeyhub.kit import JourneyEvent, PermanentError, RetryableError, VendorHttp, send
from journeyhub.model import stable_id

from journeyhub_lightblue.config import LightBlueConfig

# From Light Blue's API pages ("Sending data directly to the Light Blue API via HTTP POST",
# "Advanced API parameters", "Data types").
KEY, TYPE = "key", "type"  # the studio's API key (My Account page), the request type
CONTACT_FORM = "contact form"  # "At present the only type that is supported"
ID, SOURCE = "ID", "Source"  # the API answers -4 to a second request with the same pair
SOURCE_VERSION = "SourceAPIVersion"
OK, BAD_PARAMETERS, DUPLICATE, HTTPS_REQUIRED = 0, -3, -4, -20
# From Light Blue's own WordPress plug-ins (Gravity Forms and ProPhoto add-ons, GPL): they
# check a key with a POST of ``Key`` to apiCheck.php, next to api.php, and read the answer as
# "<status>\r<message>"; status 0 means the account is confirmed. Nothing is created.
CHECK_SCRIPT, CHECK_KEY = "apiCheck.php", "Key"

# Parameters the connector sets itself; a field mapping must not replace them (a different
# ID or Source would defeat Light Blue's duplicate check).
_RESERVED = {name.lower() for name in (KEY, TYPE, ID, SOURCE, SOURCE_VERSION, "Reference")}
_STATUS = re.compile(r"^\s*(-?\d+)\s*(.*)$", re.DOTALL)  # "<code>" or "<code>\r<summary>"

try:
    PLUGIN_VERSION = version("journeyhub-lightblue")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    PLUGIN_VERSION = "0.0.0"


class Answer(NamedTuple):
    code: int
    summary: str  # Light Blue's words with an error, on one line
    http_status: int

    def __str__(self) -> str:
        return f"Light Blue answered {self.code}" + (f": {self.summary}" if self.summary else "")

    def refused(self, advice: str) -> PermanentError:
        """The refusal as a permanent error; -20 is the config's fault whatever was asked."""
        if self.code == HTTPS_REQUIRED:
            advice = "configuration error: api_url must be https"
            return PermanentError(f"{advice} ({self})", vendor_status=self.http_status)
        return PermanentError(f"{self} ({advice})", vendor_status=self.http_status)


async def submit(http: VendorHttp, config: LightBlueConfig, key: str, fields: dict) -> Answer:
    """POST one "contact form" request to api.php; ``fields`` are its parameters."""
    return await _post(http, config, config.api_url, {KEY: key, TYPE: CONTACT_FORM, **fields})


async def check(http: VendorHttp, config: LightBlueConfig, key: str) -> Answer:
    """Ask apiCheck.php whether the key is valid (sends no enquiry)."""
    return await _post(http, config, urljoin(config.api_url, CHECK_SCRIPT), {CHECK_KEY: key})


async def _post(http: VendorHttp, config: LightBlueConfig, url: str, form: dict) -> Answer:
    """POST ``form`` (form-encoded, UTF-8 as the API expects) and read Light Blue's answer.

    No answer raises the kernel's VendorUnreachable or OutcomeUnknown as it is (the key travels
    in the form, never in the URL); after OutcomeUnknown the retry sends the same ID and
    Source, and Light Blue answers -4 if it stored the first one.
    """
    where = url.split("?")[0]
    request = {"data": form, "headers": {"accept": "text/plain"}, "timeout": config.timeout_seconds}
    response = await send(http, "POST", url, what=where, expect=(401,), **request)
    status = response.status_code
    if status == 401:  # the API authenticates by the form's key: nothing to refresh
        raise PermanentError(f"{where} answered HTTP {status}", vendor_status=status)
    match = _STATUS.match(response.text)
    if match is None:  # not the API's answer (a proxy or maintenance page): try later
        raise RetryableError(
            f"{where} answered {status} without a Light Blue status code", vendor_status=status
        )
    summary = " ".join(match.group(2).split())  # CR/LF-separated lines → one line
    key = form.get(KEY) or form[CHECK_KEY]  # api.php's or apiCheck.php's name for it
    return Answer(int(match.group(1)), summary.replace(key, "***")[:300], status)


def submission_id(event: JourneyEvent) -> str:
    """The ``ID`` Light Blue deduplicates on (with ``Source``): one enquiry per client and
    journey, whichever event started it, so a retry, a replay or a second ``journey_started``
    makes one Inbox item; each client update is its own item, refused only when repeated."""
    if event.type == "journey_started":
        return stable_id("jh-enquiry", event.client.id, event.journey_instance_id)
    return stable_id("jh-update", event.client.id, event.id)


def enquiry(event: JourneyEvent, mapped: dict[str, Any], config: LightBlueConfig) -> dict:
    """The parameters of the "contact form" request for ``event`` (the key and type aside)."""
    shoot = event.type == "journey_started" and config.shoot_type
    form = {"ShootType": config.shoot_type} if shoot else {}
    for name, value in mapped.items():
        if name.lower() in _RESERVED:
            raise PermanentError(f"field mapping target {name!r} is set by the connector")
        if isinstance(value, dict | list):
            raise PermanentError(
                f"field mapping target {name!r} holds a {type(value).__name__}: Light Blue "
                "parameters are flat names with text values (use a target without dots)"
            )
        if value is not None and value != "":
            # ASSUMED: the API's Boolean format is not published; 1/0 is sent.
            form[name] = str(int(value)) if isinstance(value, bool) else str(value)
    ids = {SOURCE: config.source, SOURCE_VERSION: PLUGIN_VERSION, ID: submission_id(event)}
    return form | ids
