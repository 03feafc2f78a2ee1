"""A local fake of Light Blue's inbound API, for tests, benchmarks and the demo.

- ``POST /api.php`` (form-encoded) as the published pages describe it: ``key`` and
  ``type=contact form``, the parameters, and a text answer ``<code>`` or
  ``<code>\\r<summary>``: ``0`` stored in the Inbox, ``-3`` a wrong type or no parameter the API
  knows, ``-4`` a repeat of an ``ID`` (or ``Reference``) from the same ``Source``, ``-20``
  plain HTTP when ``require_https`` is on (the sandbox itself serves http, so this is a flag).
  Unknown parameters are ignored, and so are dates that do not match ``DateFormat``
  (``dd/mm/yyyy`` by default), as the "Data types" page says.
- ``POST /apiCheck.php`` with ``Key``, as Light Blue's WordPress plug-ins call it to check a key:
  ``0\\r<message>`` or an error.
- ASSUMED (not published): a wrong key is answered ``-1\\rInvalid API key``; parameter names
  are matched exactly except ``key``/``type``, which Light Blue's docs spell in lower case and
  its own plug-ins send as ``Key``/``Type``.

``faults`` (:class:`~journeyhub.testing.sandbox.Faults`) is applied to every call first.
Inspection: ``enquiries`` (what reached the Inbox), ``submissions(id)`` (every request with that
ID, duplicates included: the side effects a retry caused), ``requests`` (each call's answer).
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from journeyhub.testing.sandbox import Faults, SandboxServer
from litestar import Litestar, Request, Response, post

API_KEY = "lb-sandbox-key-0123456789abcdef"
CONTACT_FORM = "contact form"
BAD_KEY = -1  # ASSUMED: the code for an unknown key is not published

# From the "Supported API parameters" page (the part that could be read) ...
CONTACT_PARAMETERS = {
    "Message",
    "ContactNameFull",
    "ContactNameFirst",
    "ContactNameLast",
    "ContactNameMaiden",
    "ContactRole",
    "ContactTitle",
    "ContactDateOfBirth",
    "ContactSource",
    "ContactTag",
    "ContactMailingList",
    "ContactEmail",
    "ContactPhoneHome",
    "ContactPhoneWork",
    "ContactPhoneMobile",
    "ContactPhone",
    "ContactPhoneType",
    "ContactWebsite",
}
# ... and from a Light Blue-generated web form that posts to api.php.
FORM_PARAMETERS = {
    "ContactCompanyName",
    "ContactAddress1",
    "ContactAddress2",
    "ContactAddress3",
    "ContactAddressCity",
    "ContactAddressCounty",
    "ContactAddressPostCode",
    "ContactAddressCountry",
    "ShootTitle",
    "ShootType",
    "ShootDate",
    "ShootTimeStart",
    "ShootTimeEnd",
    "ShootLocation",
    "ShootReferralSource",
}
# "Advanced API parameters" and the "Data types" page: they describe the request, not content.
ADVANCED_PARAMETERS = {
    "Source",
    "SourceAPIVersion",
    "ID",
    "Reference",
    "DateFormat",
    "DecimalSeparator",
}
DATE_PARAMETERS = {"ShootDate", "ContactDateOfBirth"}
DATE_FORMATS = ("dd/mm/yyyy", "d/m/yyyy", "mm/dd/yyyy", "m/d/yyyy", "yyyy/mm/dd", "yyyy/m/d")
_DATE_PIECES = {
    "dd": r"(?P<d>\d{2})",
    "d": r"(?P<d>\d{1,2})",
    "mm": r"(?P<m>\d{2})",
    "m": r"(?P<m>\d{1,2})",
    "yyyy": r"(?P<y>\d{4})",
}


def parse_date(value: str, fmt: str) -> date | None:
    """``value`` read in one of Light Blue's date formats; None when it does not match."""
    if fmt not in DATE_FORMATS:
        return None
    pattern = "/".join(_DATE_PIECES[piece] for piece in fmt.split("/"))
    match = re.fullmatch(pattern, value.strip())
    if match is None:
        return None
    try:
        return date(int(match["y"]), int(match["m"]), int(match["d"]))
    except ValueError:
        return None


@dataclass(frozen=True)
class Enquiry:
    """One item in the studio's Inbox."""

    id: str | None
    source: str | None
    fields: dict[str, str]  # the content parameters Light Blue understood
    ignored: dict[str, str]  # unknown parameters and values it could not read
    dates: dict[str, date]
    received_at: datetime


@dataclass(frozen=True)
class Call:
    path: str
    code: int
    https: bool
    id: str | None = None


@dataclass
class _State:
    enquiries: list[Enquiry] = field(default_factory=list)
    seen: set[tuple[str, str, str]] = field(default_factory=set)  # (key, Source, ID)
    per_id: Counter[str] = field(default_factory=Counter)
    requests: list[Call] = field(default_factory=list)


def _text(code: int, summary: str = "") -> Response[str]:
    body = f"{code}\r{summary}" if summary else str(code)
    return Response(body, status_code=200, media_type="text/plain")


class LightBlueSandbox:
    """A fake Light Blue account: its Inbox and its two API scripts."""

    def __init__(
        self, api_key: str = API_KEY, *, require_https: bool = False, port: int | None = None
    ) -> None:
        self.api_key = api_key
        self.require_https = require_https
        self.faults = Faults()
        self._lock = threading.Lock()
        self._state = _State()
        self.server = SandboxServer(create_app(self), port=port)

    # --- lifecycle ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def api_url(self) -> str:
        return f"{self.url}/api.php"

    def start(self) -> LightBlueSandbox:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def __enter__(self) -> LightBlueSandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        """Empty the Inbox and the logs, clear faults, serve plain HTTP again."""
        with self._lock:
            self._state = _State()
        self.require_https = False
        self.faults.clear()

    # --- inspection -----------------------------------------------------------------------------

    @property
    def enquiries(self) -> list[Enquiry]:
        with self._lock:
            return list(self._state.enquiries)

    @property
    def requests(self) -> list[Call]:
        with self._lock:
            return list(self._state.requests)

    def submissions(self, submission_id: str) -> int:
        """Requests with this ID that passed the key and type checks (duplicates included)."""
        with self._lock:
            return self._state.per_id[submission_id]

    def enquiry(self, submission_id: str) -> Enquiry | None:
        return next((e for e in self.enquiries if e.id == submission_id), None)

    # --- the API --------------------------------------------------------------------------------

    def _log(self, call: Call) -> None:
        with self._lock:
            self._state.requests.append(call)

    def receive(self, form: dict[str, str], *, https: bool) -> tuple[int, str]:
        """Light Blue's answer to one api.php request."""
        lower = {k.lower(): v for k, v in form.items()}
        if self.require_https and not https:
            return -20, "You must use HTTPS when using the Light Blue API."
        if lower.get("key") != self.api_key:
            return BAD_KEY, "Invalid API key"
        ref = form.get("ID") or form.get("Reference") or None
        source = form.get("Source") or ""
        if lower.get("type") != CONTACT_FORM:
            return -3, "Invalid API request type"
        fields: dict[str, str] = {}
        ignored: dict[str, str] = {}
        dates: dict[str, date] = {}
        fmt = form.get("DateFormat") or "dd/mm/yyyy"
        for name, value in form.items():
            if name.lower() in ("key", "type") or name in ADVANCED_PARAMETERS or value == "":
                continue
            if name not in CONTACT_PARAMETERS | FORM_PARAMETERS:
                ignored[name] = value
            elif name in DATE_PARAMETERS:
                parsed = parse_date(value, fmt)
                if parsed is None:
                    ignored[name] = value
                else:
                    fields[name], dates[name] = value, parsed
            else:
                fields[name] = value
        with self._lock:
            if ref is not None:
                self._state.per_id[ref] += 1
            if not fields:
                return -3, "No valid parameters were supplied for this API request type"
            if ref is not None:
                dedupe = (self.api_key, source, ref)
                if dedupe in self._state.seen:
                    return -4, "Duplicate API request"
                self._state.seen.add(dedupe)
            self._state.enquiries.append(
                Enquiry(ref, source or None, fields, ignored, dates, datetime.now(UTC))
            )
        return 0, ""

    def check(self, form: dict[str, str], *, https: bool) -> tuple[int, str]:
        """apiCheck.php: is this key an account's?"""
        if self.require_https and not https:
            return -20, "You must use HTTPS when using the Light Blue API."
        key = next((v for k, v in form.items() if k.lower() == "key"), None)
        if key != self.api_key:
            return BAD_KEY, "Invalid API key"
        return 0, "Account confirmed"


def create_app(sandbox: LightBlueSandbox) -> Litestar:
    async def read(request: Request[Any, Any, Any]) -> tuple[dict[str, str], bool]:
        form = await request.form()
        # PHP keeps the last value of a repeated name.
        values = {str(k): str(v) for k, v in form.multi_items()}
        return values, request.url.scheme == "https"

    @post("/api.php")
    async def api_php(request: Request[Any, Any, Any]) -> Response[Any]:
        form, https = await read(request)  # the body first: a slow answer must still land
        if (fault := await sandbox.faults.apply()) is not None:
            return fault
        code, summary = sandbox.receive(form, https=https)
        sandbox._log(Call("/api.php", code, https, form.get("ID") or form.get("Reference")))
        return _text(code, summary)

    @post("/apiCheck.php")
    async def api_check(request: Request[Any, Any, Any]) -> Response[Any]:
        form, https = await read(request)
        if (fault := await sandbox.faults.apply()) is not None:
            return fault
        code, summary = sandbox.check(form, https=https)
        sandbox._log(Call("/apiCheck.php", code, https))
        return _text(code, summary)

    return Litestar([api_php, api_check])


__all__ = ["API_KEY", "Call", "Enquiry", "LightBlueSandbox", "create_app", "parse_date"]


def demo() -> Any:
    """Entry point ``journeyhub.sandboxes``: this sandbox as ``journeyhub demo`` runs it."""
    from journeyhub.testing.sandbox import SandboxDemo

    return SandboxDemo(
        "Light Blue",
        LightBlueSandbox,
        config=lambda sb: {"api_url": sb.api_url},
        credentials=lambda sb: {"api_key": sb.api_key},
        secrets=(API_KEY,),
    )
