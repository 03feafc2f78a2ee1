"""The VSCO Workspace (formerly Táve) REST API v2: what we know of it, a connection's settings,
its records as read, and its calls. Facts marked ASSUMED (in plugin.py and push.py) are not in
the published OpenAPI document; the README lists them."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote, unquote

from journeyhub import kit
from journeyhub.connectors.zapier import parse_when as parse_time
from journeyhub.model import PulledRecord
from msgspec import Meta

from journeyhub_tave import contract

API_BASE = "https://workspace.vsco.co/api/v2"
Url = Annotated[str, Meta(pattern="^https?://")]
CONTACTS = "/address-book"  # GET list (page, pageSize, includeHidden, email, sortBy), POST
JOBS = "/job"  # GET list (page, pageSize, includeClosed, externalMappingId, sortBy), POST
NOTES = "/note"  # GET list (…, externalMappingId, jobId), POST
JOB_CONTACTS = "/job-contact"  # GET list (…, contactId, jobId), POST {jobId, contactId, client}
JOB_TYPES, LEAD_STATUSES, PAYMENTS, ORDERS = "/job-type", "/lead-status", "/payment", "/order"
PAGE_SIZE_MIN, PAGE_SIZE_MAX = 10, 100
NEWEST = {"sortBy": "modified desc", "pageSize": PAGE_SIZE_MAX}
PATHS = {"job": JOBS, "contact": CONTACTS}  # in the order a refused create checks them
EXTERNAL_ID_MAX, EXTERNAL_URL_MAX = 64, 255  # ExternalMapping: id 1..64, url a URI of 12..255
NAMES_TTL = 300.0  # studio settings change rarely: their names are kept to spare the quota
_NAMES: dict[tuple[str, ...], tuple[float, dict[str, str]]] = {}  # studio settings' names
# The fields a pull reads as they are, by our name.
CONTACT = dict(first_name="firstName", last_name="lastName", email="email", contact_kind="kind")
JOB = {
    "wedding_date": "eventDate",
    "status": "stage",
    "lead_status": "leadStatusName",
    "closed": "closed",
    "guest_count": "guestCount",
    "job_type": "jobTypeName",
    "lead_notes": "leadNotes",  # the venue, as the default mapping writes it
}
# A PUT replaces the record (its body is the whole entity): what the hub knows of one, by our
# name, and the field a whole body carries it in; studio settings are known by their names.
WHOLE = {
    "contact": {**CONTACT, "phone": "cellPhone"},
    "job": {k: JOB[k] for k in ("wedding_date", "status", "closed", "guest_count", "lead_notes")}
    | {"name": "name"},
}
SETTINGS = {"job_type": (JOB_TYPES, "jobTypeId"), "lead_status": (LEAD_STATUSES, "leadStatusId")}
UPDATES = {"contact": "PUT /address-book/{id}", "job": "PUT /job/{id}"}  # in the contract


def external_id(raw: str) -> str:
    """Our id as an ExternalMapping id (max 64 characters): itself, or a stable digest."""
    if len(raw) <= EXTERNAL_ID_MAX:
        return raw
    return "sha256-" + hashlib.sha256(raw.encode()).hexdigest()[: EXTERNAL_ID_MAX - 7]


class TaveConfig(kit.Config, kw_only=True):
    api_base: Url = API_BASE
    # Our records carry externalMappings {id, url}; the url is
    # <external_link_base>/<external_service>/<kind>/<our id>, which is how we recognise ours.
    external_service: Annotated[str, Meta(pattern="^[a-z0-9][a-z0-9_-]{0,39}$")] = "journeyhub"
    external_link_base: Url = "https://journeyhub.invalid"
    job_type: str | None = "Wedding"  # a Job Type name in the studio; None: no job type
    # Lead Status names set on the job; None: leave the job alone for that event.
    status_completed: str | None = "Completed"
    status_paused: str | None = "Paused"
    status_failed: str | None = "Failed"
    page_size: Annotated[int, Meta(ge=PAGE_SIZE_MIN, le=PAGE_SIZE_MAX)] = PAGE_SIZE_MAX
    timeout_seconds: Annotated[float, Meta(gt=0, le=60)] = 15.0

    def prefix(self, kind: str) -> str:
        return f"{self.external_link_base.rstrip('/')}/{self.external_service}/{kind}/"

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


class TaveCredentials(kit.Config, kw_only=True):
    api_key: Annotated[str, Meta(pattern=r"\S")]  # Settings > API Integrations (Read/Write)
    webhook_token: Annotated[str, Meta(min_length=16)] | None = None  # ?token= in the hook URL


def writable(kind: str, record: Mapping[str, Any]) -> dict[str, Any]:
    """A record as read, cut to what its update may send (by the published schema); its
    externalMappings cannot be updated."""
    names = contract.writable_names(UPDATES[kind], record.get("kind"))
    return {k: v for k, v in record.items() if k in names and k != "externalMappings"}


def number(phone: Any) -> Any:
    return (phone.get("e164") or phone.get("formatted")) if isinstance(phone, dict) else None


def read_record(kind: str, item: dict[str, Any], config: TaveConfig) -> PulledRecord:
    """A contact or a job in the canonical fields the pull reports."""
    fields: dict[str, Any] = {}
    if kind == "contact":
        names = (item.get("firstName"), item.get("lastName"))
        name = item.get("name") or " ".join(p for p in names if isinstance(p, str) and p)
        phones = (number(item.get(n)) for n in ("cellPhone", "phone", "homePhone", "workPhone"))
        fields = {"name": name or None, "phone": next(filter(None, phones), None)}
    fields |= {k: item.get(v) for k, v in (JOB if kind == "job" else CONTACT).items()}
    if kind == "job":
        fields["name"] = item.get("name") or item.get("title")
        # Our journey instance, when we made the job. A job's client is a contact, so our_id
        # (the client's id) comes from the link our push recorded, not from here.
        fields["journey_instance_id"] = config.ours(item, "journey")
    ours = config.ours(item, "client") if kind == "contact" else None
    # A contact can be hidden (listed with includeHidden); a Job has no such field, and a deleted
    # one is only seen when its id no longer answers (the push forgets it then).
    gone = kind == "contact" and bool(item.get("hidden"))
    vid, at = str(item["id"]), parse_time(item.get("modified"))
    return PulledRecord(
        vendor_id=vid, kind=kind, fields=fields, modified_at=at, deleted=gone, our_id=ours
    )


@dataclass
class TaveClient:
    """One connection's calls. Raises the kernel's errors; never puts the key in a message."""

    http: kit.VendorHttp
    api_key: str
    api_base: str = API_BASE
    timeout: float = 15.0
    last_status: int | None = None

    async def request(self, method: str, path: str, missing_ok: bool = False, **sent: Any) -> Any:
        """The answer's JSON (``sent``: params, json); None if empty, or a 404 with missing_ok."""
        what, url = f"VSCO Workspace {method} {path}", self.api_base.rstrip("/") + path
        headers = {"X-API-KEY": self.api_key, "accept": "application/json"}
        sent.update(headers=headers, timeout=self.timeout)
        expect = (401, 404) if missing_ok else (401,)
        try:
            answer = await kit.send(self.http, method, url, what=what, expect=expect, **sent)
        except kit.ConnectorError as exc:  # the same, without the key should the vendor echo it
            exc.message = exc.message.replace(self.api_key, "***")
            exc.args = (exc.message,)
            raise
        self.last_status = answer.status_code
        if answer.status_code == 401:  # an API key cannot be refreshed: a person must fix it
            message = f"VSCO Workspace answered 401 to {method} {path}: check the API key"
            raise kit.ReauthRequired(message + " in Settings > API Integrations", vendor_status=401)
        if answer.status_code in (204, 404) or not answer.content:
            return None
        try:
            return answer.json()
        except ValueError:
            raise kit.RetryableError(f"{what}: the answer is not JSON") from None

    async def page(self, path: str, **params: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        body = await self.request("GET", path, params=params)
        if not isinstance(body, dict) or not isinstance(body.get("items"), list):
            raise kit.RetryableError(f"VSCO Workspace answered GET {path} without items")
        meta = body["meta"] if isinstance(body.get("meta"), dict) else {}
        return [i for i in body["items"] if isinstance(i, dict)], meta

    async def get(self, path: str, record_id: str) -> dict[str, Any] | None:
        return await self.request("GET", f"{path}/{quote(record_id, safe='')}", missing_ok=True)

    async def create(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        created = await self.request("POST", path, json=dict(body))
        if not isinstance(created, dict) or not created.get("id"):
            raise kit.RetryableError(f"VSCO Workspace answered POST {path} without an id")
        return created

    async def setting(self, path: str, name: str, field: str) -> str:
        """The id of the studio setting (a job type, a lead status) the config ``field`` names."""
        key = (self.api_base, hashlib.sha256(self.api_key.encode()).hexdigest(), path)
        wanted = name.strip().casefold()
        read, names = _NAMES.get(key, (0.0, {}))
        if wanted not in names or time.monotonic() - read > NAMES_TTL:
            names = {}
            for page in range(1, 21):  # studios have a handful; 20 pages is a safe stop
                items, meta = await self.page(path, page=page, pageSize=PAGE_SIZE_MAX)
                for item in items:
                    if isinstance(item.get("name"), str) and not item.get("hidden"):
                        names.setdefault(item["name"].strip().casefold(), str(item["id"]))
                if page >= int(meta.get("totalPages") or 1) or len(items) < PAGE_SIZE_MAX:
                    break
            _NAMES[key] = (time.monotonic(), names)
        if wanted not in names:
            kind = path.strip("/").replace("-", " ")
            fix = f"create it in its Settings or change the connection's {field}"
            raise kit.PermanentError(f"VSCO Workspace has no {kind} named {name!r}: {fix}")
        return names[wanted]
