"""A small client for the VSCO Workspace (formerly Táve) REST API v2.

Every fact about the vendor's API lives in the constants below; the ones marked ASSUMED were
not found in the published OpenAPI document (workspace.vsco.co/api/v2/openapi.json) and are
listed as unverified in the README.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

import msgspec
from journeyhub.errors import (
    ConnectorError,
    PermanentError,
    RateLimited,
    ReauthRequired,
    RetryableError,
)
from journeyhub.vendor_http import VendorHttp, VendorResponse

# --- verified against the published OpenAPI document -------------------------------------------
API_BASE = "https://workspace.vsco.co/api/v2"
AUTH_HEADER = "X-API-KEY"
CONTACTS = "/address-book"  # GET list (page, pageSize, includeHidden, email, sortBy), POST
JOBS = "/job"  # GET list (page, pageSize, includeClosed, externalMappingId, sortBy), POST
NOTES = "/note"  # GET list (…, externalMappingId, jobId), POST
JOB_CONTACTS = "/job-contact"  # GET list (…, contactId, jobId), POST {jobId, contactId, client}
JOB_TYPES = "/job-type"
LEAD_STATUSES = "/lead-status"
PAYMENTS = "/payment"
STUDIO = "/studio/me"  # the cheap authenticated call
SORT_MODIFIED_DESC = "modified desc"
PAGE_SIZE_MIN, PAGE_SIZE_MAX = 10, 100
EXTERNAL_ID_MAX = 64  # ExternalMapping.id: 1..64 characters
EXTERNAL_URL_MIN, EXTERNAL_URL_MAX = 12, 255  # ExternalMapping.url: a URI, 12..255 characters
HOOK_EVENTS = ("contact.created", "job.created", "order.booked", "payment.created")
PING_TARGET_FIELD = "targetId"  # the only field the docs promise in a REST hook ping

# --- ASSUMED (not in the published document) -----------------------------------------------------
PING_EVENT_FIELDS = ("event", "type")  # where a ping may name its event; else ?event= in the URL
RATE_LIMIT_PER_SECOND = 5.0  # no quota is published; 429 + Retry-After is
# PUT /job/{id} and /address-book/{id} update only the fields sent (partial update), and answer
# 404 for a deleted record.
# A create naming a record that does not exist (a link's contactId, a note's jobId) is refused
# with one of these (the sandbox: 400 validation-error).
MISSING_REFERENCE_STATUSES = (400, 404, 422)
# Notes accept ``externalMappings`` on create (GET /note filters by externalMappingId, but the
# Note schema does not list the field); a visible reference in the note text backs it up.
NOTE_REF_PREFIX = "journeyhub ref "


def external_id(raw: str) -> str:
    """Our id as an ExternalMapping id (max 64 characters): itself, or a stable digest."""
    if len(raw) <= EXTERNAL_ID_MAX:
        return raw
    return "sha256-" + hashlib.sha256(raw.encode()).hexdigest()[: EXTERNAL_ID_MAX - 7]


@dataclass(frozen=True)
class Mappings:
    """How our ids are written into, and recognised in, a record's ``externalMappings``."""

    service: str
    link_base: str

    def prefix(self, kind: str) -> str:
        return f"{self.link_base.rstrip('/')}/{self.service}/{kind}/"

    def make(self, kind: str, raw: str) -> dict[str, str]:
        url = self.prefix(kind) + quote(raw, safe="")
        if len(url) > EXTERNAL_URL_MAX:
            url = self.prefix(kind) + external_id(raw)
        return {"id": external_id(raw), "url": url}

    @staticmethod
    def has(record: Mapping[str, Any], raw: str) -> bool:
        wanted = external_id(raw)
        return any(m.get("id") == wanted for m in record.get("externalMappings") or ())

    def ours(self, record: Mapping[str, Any], kind: str) -> str | None:
        """Our id for a record we mapped (from the mapping URL, which keeps the full id)."""
        prefix = self.prefix(kind).lower()
        for m in record.get("externalMappings") or ():
            url = str(m.get("url") or "")
            if url.lower().startswith(prefix):
                return unquote(url[len(prefix) :]) or m.get("id")
        return None


def _vendor_detail(response: VendorResponse) -> str:
    """The vendor's error title/detail ({type, title, detail, status}), short."""
    try:
        body = response.json()
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    parts = [body.get("title"), body.get("detail")]
    text = "; ".join(
        p if isinstance(p, str) else msgspec.json.encode(p).decode() for p in parts if p
    )
    return text[:300]


@dataclass
class TaveClient:
    """One connection's calls. Raises the kernel's errors; never puts the key in a message."""

    http: VendorHttp
    api_key: str
    api_base: str = API_BASE
    timeout: float = 15.0
    last_status: int | None = None
    _scrub: tuple[str, ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        self._scrub = (self.api_key,) if self.api_key else ()

    def _safe(self, text: str) -> str:
        for secret in self._scrub:
            text = text.replace(secret, "***")
        return text

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        missing_ok: bool = False,
    ) -> Any:
        where = f"{method} {path}"
        # A failed call raises the kernel's VendorUnreachable or OutcomeUnknown as it is.
        response = await self.http.request(
            method,
            self.api_base.rstrip("/") + path,
            params=params,
            json=json,
            headers={AUTH_HEADER: self.api_key, "accept": "application/json"},
            timeout=self.timeout,
        )
        self.last_status = response.status_code
        if response.status_code == 404 and missing_ok:
            return None
        if response.status_code >= 300:
            raise self._error(response, where)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise RetryableError(f"VSCO Workspace answered {where} with non-JSON") from exc

    def _error(self, response: VendorResponse, where: str) -> ConnectorError:
        status = response.status_code
        detail = _vendor_detail(response)
        message = self._safe(
            f"VSCO Workspace answered {status} to {where}" + (f": {detail}" if detail else "")
        )
        if status == 401:
            # An API key does not expire and cannot be refreshed: a person must fix it.
            return ReauthRequired(
                message + " (check the API key in VSCO Workspace Settings > API Integrations)",
                vendor_status=status,
            )
        if status == 403:
            return PermanentError(
                message + " (the API key needs Read/Write access)", vendor_status=status
            )
        if status == 429:
            return RateLimited(message, retry_after=response.retry_after())
        return response.error(message)

    # --- resources ----------------------------------------------------------------------------

    async def page(self, path: str, **params: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """One page of a collection: ``(items, meta)``."""
        body = await self.request("GET", path, params=params)
        if not isinstance(body, dict) or not isinstance(body.get("items"), list):
            raise RetryableError(f"VSCO Workspace answered GET {path} without items")
        meta = body.get("meta") if isinstance(body.get("meta"), dict) else {}
        return [i for i in body["items"] if isinstance(i, dict)], meta

    async def get(self, path: str, record_id: str) -> dict[str, Any] | None:
        return await self.request("GET", f"{path}/{quote(record_id, safe='')}", missing_ok=True)

    async def create(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        created = await self.request("POST", path, json=dict(body))
        if not isinstance(created, dict) or not created.get("id"):
            raise RetryableError(f"VSCO Workspace answered POST {path} without an id")
        return created

    async def update(
        self, path: str, record_id: str, body: Mapping[str, Any], *, missing_ok: bool = False
    ) -> dict[str, Any] | None:
        """PUT; the record as answered (or just its id when the answer is empty). With
        ``missing_ok``, None when the record does not exist (404)."""
        updated = await self.request(
            "PUT", f"{path}/{quote(record_id, safe='')}", json=dict(body), missing_ok=missing_ok
        )
        if updated is None and missing_ok and self.last_status == 404:
            return None
        return updated if isinstance(updated, dict) else {"id": record_id}

    async def find_by_name(self, path: str, name: str) -> str | None:
        """The id of a studio setting (job type, lead status) by its name, case-insensitively."""
        key = (self.api_base, hashlib.sha256(self.api_key.encode()).hexdigest(), path)
        wanted = name.strip().casefold()
        cached = _NAMES.get(key)
        if cached is not None and wanted in cached:
            return cached[wanted]
        names: dict[str, str] = {}
        for page in range(1, 21):  # studios have a handful; 20 pages is a safe stop
            items, meta = await self.page(path, page=page, pageSize=PAGE_SIZE_MAX)
            for item in items:
                if isinstance(item.get("name"), str) and not item.get("hidden"):
                    names.setdefault(item["name"].strip().casefold(), str(item["id"]))
            if page >= int(meta.get("totalPages") or 1) or len(items) < PAGE_SIZE_MAX:
                break
        _NAMES.put(key, names)
        return names.get(wanted)


class _TTLCache:
    """Studio settings change rarely: keep the name lists a few minutes to spare the quota."""

    def __init__(self, ttl: float = 300.0) -> None:
        self.ttl = ttl
        self._data: dict[tuple[str, ...], tuple[float, dict[str, str]]] = {}

    def get(self, key: tuple[str, ...]) -> dict[str, str] | None:
        hit = self._data.get(key)
        if hit is None or time.monotonic() - hit[0] > self.ttl:
            return None
        return hit[1]

    def put(self, key: tuple[str, ...], value: dict[str, str]) -> None:
        self._data[key] = (time.monotonic(), value)


_NAMES = _TTLCache()
