"""A local fake of the VSCO Workspace API v2, for tests, benchmarks and the demo.

It serves the operations the connector makes under ``/api/v2`` and holds every request to the
published contract (``contract.py``): the query and body are validated against the operation's
schemas and refused as the API does (400 ``validation-error`` with a ``detail`` per field); an
operation outside the contract answers 501 ``not-implemented``. ``X-API-KEY`` auth (401
otherwise), collections ``{type, meta, items}`` paged by ``page``/``pageSize`` and sorted by
``sortBy``, the documented filters only, PUT as a whole-entity replace, 429 with
``Retry-After`` past a configurable request rate, and ``Faults`` on every call. Timestamps have
whole seconds, as the API's do, so records often share a ``modified``.

Inspection: ``contacts``, ``jobs``, ``notes``, ``job_contacts``; ``creates(resource, ext_id)``
counts create calls per external id (duplicate side effects); ``received_at[id]`` is when a
record arrived (wall clock, for latency); ``vendor_edit`` changes a record as a studio user
would (bumping ``modified``); ``lose_response`` makes the next matching call do its work but
lose its answer, like a crash between the vendor's commit and our reading it.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from copy import deepcopy
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import msgspec
from journeyhub.testing.sandbox import Faults, SandboxServer
from litestar import Litestar, Request, Response, route
from litestar.params import PathParameter

from journeyhub_tave import contract

PREFIX = "/api/v2"
API_KEY = "tave-sandbox-key"
_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"

CONTRACT = contract.shared()
# The resources the sandbox keeps, each with the schema of its records (in the contract's $defs).
RESOURCES = {
    "address-book": "Person",
    "job": "Job",
    "note": "Note",
    "job-contact": "JobContact",
    "job-type": "JobType",
    "lead-status": "LeadStatus",
    "payment": "Payment",
    "order": "Order",
}
# Values the API gives fields that are neither nullable nor documented with a default.
INITIAL: dict[str, dict[str, Any]] = {
    "job": {"stage": "lead", "closed": False},
    "payment": {"refundedAmount": 0},
}
REFERENCES = {"jobId": "job", "contactId": "address-book"}  # a create names records that exist
PathStr = Annotated[str, PathParameter()]


def ulid(ms: int | None = None) -> str:
    """A lowercase ULID, as the API's ids are."""
    ms = int(time.time() * 1000) if ms is None else ms
    n = (ms << 80) | int.from_bytes(os.urandom(10), "big")
    return "".join(_CROCKFORD[(n >> (5 * i)) & 31] for i in reversed(range(26)))


def _seed_id(*parts: str) -> str:
    digest = int.from_bytes(hashlib.sha256("/".join(parts).encode()).digest()[:17], "big")
    return "".join(_CROCKFORD[(digest >> (5 * i)) & 31] for i in range(26))


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def error(status: int, title: str, detail: Any, kind: str = "unknown") -> Response[Any]:
    """The API's error: ``Error`` (``detail`` a sentence) or ``ErrorValidation`` (an object)."""
    return Response(
        {"type": kind, "title": title, "detail": detail, "status": status}, status_code=status
    )


def invalid(detail: dict[str, Any]) -> Response[Any]:
    return error(400, "Validation Error", detail, "validation-error")


def missing(record_id: str) -> Response[Any]:
    # The document's only 404 (GET /job/{id}/payment) answers with the validation error shape.
    return error(404, "Not Found", {"id": [f"{record_id} does not exist"]}, "validation-error")


def not_implemented(operation: str) -> Response[Any]:
    return error(
        501, "Not Implemented", f"The sandbox does not serve {operation}.", "not-implemented"
    )


class TaveSandbox:
    def __init__(
        self, api_key: str = API_KEY, rate_limit: float | None = None, port: int | None = None
    ) -> None:
        self.api_key = api_key
        self.rate_limit = rate_limit  # requests per second per key; None: unlimited
        self.faults = Faults()
        self.studio_name = "Sandbox Studio"
        self._lock = threading.Lock()
        self._frozen: datetime | None = None
        self.reset()
        self.app = _LoseResponses(create_app(self), self)
        self.server = SandboxServer(self.app, port=port)

    # --- lifecycle --------------------------------------------------------------------------------

    def start(self) -> TaveSandbox:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def __enter__(self) -> TaveSandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def api_base(self) -> str:
        return self.server.url + PREFIX

    def reset(self) -> None:
        with self._lock:
            self.store: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in RESOURCES}
            self.create_counts: Counter[tuple[str, str | None]] = Counter()
            self.received_at: dict[str, float] = {}
            self.requests: Counter[str] = Counter()  # "METHOD /api/v2/path" per call
            self.refusals = 0  # requests the published contract refuses (400, 501)
            self._hits: deque[float] = deque()
            self._lost: list[tuple[str, str]] = []
            self._late: list[tuple[str, str, float]] = []
        self.faults.clear()
        # Studio settings keep their ids across resets, as a real studio's would.
        for name in ("Wedding", "Engagement"):
            self._insert("job-type", {"name": name}, record_id=_seed_id("job-type", name))
        for name in ("New", "Completed", "Paused", "Failed"):
            self._insert("lead-status", {"name": name}, record_id=_seed_id("lead-status", name))

    # --- time -------------------------------------------------------------------------------------

    def now(self) -> datetime:
        moment = self._frozen or datetime.now(UTC)
        return moment.replace(microsecond=0)

    def freeze(self, moment: datetime | None = None) -> None:
        """Stop the clock (records then share ``modified``); ``advance`` moves it."""
        self._frozen = (moment or datetime.now(UTC)).replace(microsecond=0)

    def advance(self, seconds: float) -> None:
        self._frozen = self.now() + timedelta(seconds=seconds)

    def unfreeze(self) -> None:
        self._frozen = None

    # --- inspection -------------------------------------------------------------------------------

    def _all(self, resource: str) -> list[dict[str, Any]]:
        with self._lock:
            return deepcopy(list(self.store[resource].values()))

    @property
    def contacts(self) -> list[dict[str, Any]]:
        return self._all("address-book")

    @property
    def jobs(self) -> list[dict[str, Any]]:
        return self._all("job")

    @property
    def notes(self) -> list[dict[str, Any]]:
        return self._all("note")

    @property
    def job_contacts(self) -> list[dict[str, Any]]:
        return self._all("job-contact")

    def record(self, resource: str, record_id: str) -> dict[str, Any] | None:
        with self._lock:
            found = self.store[resource].get(record_id)
            return deepcopy(found)

    def creates(self, resource: str, external_id: str | None = None) -> int:
        """How many create calls named ``external_id`` in their externalMappings."""
        with self._lock:
            if external_id is None:
                return sum(n for (res, _), n in self.create_counts.items() if res == resource)
            return self.create_counts[(resource, external_id)]

    def lose_response(self, method: str, path: str) -> None:
        """The next ``method path`` call (path under /api/v2, e.g. "/job") is carried out but
        answered 502, as if the connection dropped after the vendor committed it."""
        with self._lock:
            self._lost.append((method.upper(), PREFIX + path))

    def answer_late(self, method: str, path: str, seconds: float) -> None:
        """The next ``method path`` call is carried out at once and answered ``seconds`` late:
        a client that gives up sooner does not know the vendor did the work."""
        with self._lock:
            self._late.append((method.upper(), PREFIX + path, seconds))

    # --- acting as the studio's user --------------------------------------------------------------

    def vendor_create(self, resource: str, **fields: Any) -> dict[str, Any]:
        return deepcopy(self._insert(resource, fields))

    def vendor_edit(self, resource: str, record_id: str, **fields: Any) -> dict[str, Any]:
        """Change a record as a studio user would in the app: ``modified`` moves."""
        with self._lock:
            record = self.store[resource][record_id]
            record.update(fields)
            self._derive(resource, record)
            record["modified"] = stamp(self.now())
            return deepcopy(record)

    def vendor_delete(self, resource: str, record_id: str) -> None:
        with self._lock:
            self.store[resource].pop(record_id, None)

    def add_payment(self, job_id: str, amount: int, status: str = "posted") -> dict[str, Any]:
        return self.vendor_create(
            "payment", jobId=job_id, amount=amount, status=status, received=None
        )

    def add_order(self, job_id: str, total: int, booked_on: str | None = None) -> dict[str, Any]:
        """An order booked on the job (``bookedOn``, ``total`` as the API computes them)."""
        booked = booked_on or self.now().date().isoformat()
        return self.vendor_create(
            "order", jobId=job_id, total=total, bookedOn=booked, status="open", name=None
        )

    # --- storage ----------------------------------------------------------------------------------

    def _insert(
        self, resource: str, fields: dict[str, Any], record_id: str | None = None
    ) -> dict[str, Any]:
        moment = self.now()
        record_id = record_id or ulid()
        record = {
            "links": {"self": {"href": f"https://tave.io/v2/{resource}/{record_id}"}},
            "id": record_id,
            "created": stamp(moment),
            "modified": stamp(moment),
            **_defaults(resource, fields.get("kind")),
            **fields,
        }
        if "hidden" in CONTRACT.defs[RESOURCES[resource]]["properties"]:  # a Job has none
            record.setdefault("hidden", False)
        with self._lock:
            self._derive(resource, record)
            self.store[resource][record_id] = record
            self.received_at[record_id] = time.time()
        return record

    def replace(self, resource: str, record_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """PUT: the body is the whole entity. A writable field it leaves out goes back to its
        default (null where allowed); externalMappings cannot be updated, so they stay."""
        with self._lock:
            record = self.store[resource][record_id]
            kind = body.get("kind", record.get("kind"))
            writable = _writable(resource, kind)
            kept = {k: v for k, v in record.items() if k not in writable or k == "externalMappings"}
            fields = {k: v for k, v in body.items() if k in writable and k != "externalMappings"}
            record.clear()
            record.update({**_defaults(resource, kind), **kept, **fields})
            self._derive(resource, record)
            record["modified"] = stamp(self.now())
            return deepcopy(record)

    def _derive(self, resource: str, record: dict[str, Any]) -> None:
        """The read-only fields the API computes."""
        if resource == "address-book":
            names = [record.get("firstName"), record.get("lastName")]
            record["name"] = " ".join(n for n in names if n) or None
            for phone in ("cellPhone", "homePhone", "workPhone"):
                record[phone] = _phone(record.get(phone))
        elif resource == "job":
            types, statuses = self.store["job-type"], self.store["lead-status"]
            record["jobTypeName"] = (types.get(record.get("jobTypeId") or "") or {}).get("name")
            record["leadStatusName"] = (statuses.get(record.get("leadStatusId") or "") or {}).get(
                "name"
            )
            record["title"] = record.get("name") or record["jobTypeName"]
        elif resource == "job-contact":
            record["roleKinds"] = ["client"] if record.get("client") else []

    def _admit(self, headers: Any) -> Response[Any] | None:
        """Auth, then the request quota."""
        key = headers.get("x-api-key")
        bearer = headers.get("authorization", "")
        if bearer.lower().startswith("bearer "):
            key = key or bearer[7:]
        if key != self.api_key:
            return error(401, "Unauthorized", "API key is missing or invalid.")
        if self.rate_limit:
            with self._lock:
                clock = time.monotonic()
                while self._hits and clock - self._hits[0] >= 1.0:
                    self._hits.popleft()
                if len(self._hits) >= self.rate_limit:
                    wait = max(1, math.ceil(1.0 - (clock - self._hits[0])))
                    response = error(
                        429, "Too Many Requests", "Exceeded request quota.", "quota-limit"
                    )
                    response.headers["retry-after"] = str(wait)
                    return response
                self._hits.append(clock)
        return None

    def refuse(self, answer: Response[Any]) -> Response[Any]:
        """Count a request the contract refuses: a connector's tests expect none."""
        self.refusals += 1
        return answer

    def _take_lost(self, method: str, path: str) -> bool:
        with self._lock:
            if (method, path) in self._lost:
                self._lost.remove((method, path))
                return True
            return False

    def _take_late(self, method: str, path: str) -> float | None:
        with self._lock:
            for late in self._late:
                if late[:2] == (method, path):
                    self._late.remove(late)
                    return late[2]
            return None


def _writable(resource: str, kind: Any = None) -> dict[str, Any]:
    """The fields a create or an update sets, by their schema."""
    operation = f"PUT /{resource}/{{id}}"
    if CONTRACT.has(operation):
        return CONTRACT.writable(operation, kind)
    return CONTRACT.writable_of(CONTRACT.defs[RESOURCES[resource]])


def _defaults(resource: str, kind: Any = None) -> dict[str, Any]:
    """A new record's writable fields: the documented default, else null where allowed."""
    found: dict[str, Any] = {}
    for name, schema in _writable(resource, kind).items():
        resolved = CONTRACT.resolve(schema)
        if "default" in resolved:
            found[name] = resolved["default"]
        elif resolved.get("nullable") or resolved.get("type") in ("array", "object"):
            found[name] = None
    return found | INITIAL.get(resource, {})


def _phone(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    text = value.get("e164") or value.get("formatted")
    if not isinstance(text, str):
        return None
    digits = "".join(c for c in text if c.isdigit())
    e164 = "+" + digits if text.strip().startswith("+") and 2 <= len(digits) <= 15 else None
    return {"id": None, "formatted": text, "e164": e164, "extension": None}


def _list(sb: TaveSandbox, resource: str, query: dict[str, Any]) -> Response[Any]:
    """A page of a collection; ``query`` holds the operation's documented parameters only."""
    page, size = query.get("page", 1), query.get("pageSize", 100)
    field, _, direction = str(query.get("sortBy") or "id").partition(" ")
    with sb._lock:
        items = list(sb.store[resource].values())
    documented = CONTRACT.operations[f"GET /{resource}"]["query"]
    if "includeHidden" in documented and not query.get("includeHidden"):
        items = [i for i in items if not i.get("hidden")]
    if "includeClosed" in documented:
        items = [i for i in items if query.get("includeClosed") or not i.get("closed")]
    if wanted := query.get("externalMappingId"):
        items = [i for i in items if any(m.get("id") == wanted for m in i["externalMappings"])]
    for name in ("jobId", "contactId"):
        if query.get(name):
            items = [i for i in items if i.get(name) == query.get(name)]
    if email := str(query.get("email") or "").strip().lower():
        # The API ranks by similarity; a substring match keeps near misses in the answer.
        items = [i for i in items if email in str(i.get("email") or "").lower()]
    items.sort(key=lambda i: (str(i.get(field) or ""), i["id"]), reverse=direction == "desc")
    total = len(items)
    chunk = items[(page - 1) * size : page * size]
    meta = {
        "currentPage": page,
        "totalPages": max(1, math.ceil(total / size)),
        "totalItems": total,
        "rows": size,
    }
    collection = CONTRACT.resolve(CONTRACT.operations[f"GET /{resource}"]["responses"]["200"])
    kind = collection["properties"]["type"]["enum"][0]
    return Response({"type": kind, "meta": meta, "items": deepcopy(chunk)})


def create_app(sb: TaveSandbox) -> Litestar:
    async def before(request: Request[Any, Any, Any]) -> Response[Any] | None:
        sb.requests[f"{request.method} {request.url.path}"] += 1
        fault = sb.faults.next()
        if fault is not None:
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.status is not None:
                sb.faults.injected[fault.status] += 1
                response = Response(
                    fault.body
                    or {
                        "type": "unknown",
                        "title": "Injected fault",
                        "detail": f"injected {fault.status}",
                        "status": fault.status,
                    },
                    status_code=fault.status,
                )
                if fault.retry_after is not None:
                    response.headers["retry-after"] = f"{fault.retry_after:g}"
                return response
        return sb._admit(request.headers)

    async def body_of(request: Request[Any, Any, Any], operation: str) -> Any:
        """The request's JSON body, or the validation error the API answers."""
        try:
            body = msgspec.json.decode(await request.body())
        except msgspec.DecodeError:
            return sb.refuse(invalid({"body": ["is not JSON"]}))
        problems = CONTRACT.body(operation, body)
        return sb.refuse(invalid(problems)) if problems else body

    @route(PREFIX + "/{resource:str}", http_method=["GET", "POST"], status_code=200)
    async def collection(resource: PathStr, request: Request[Any, Any, Any]) -> Response[Any]:
        operation = f"{request.method} /{resource}"
        if resource not in RESOURCES or not CONTRACT.has(operation):
            return sb.refuse(not_implemented(operation))
        if request.method == "GET":
            query, problems = CONTRACT.query(operation, request.query_params)
            return sb.refuse(invalid(problems)) if problems else _list(sb, resource, query)
        body = await body_of(request, operation)
        if isinstance(body, Response):
            return body
        for ref, target in REFERENCES.items():
            if body.get(ref) and body[ref] not in sb.store[target]:
                # The studio deleted it: the request was well formed, so no contract refusal.
                return invalid({ref: ["does not exist"]})
        fields = {k: v for k, v in body.items() if k in _writable(resource, body.get("kind"))}
        with sb._lock:
            for mapping in fields.get("externalMappings") or [None]:
                sb.create_counts[(resource, mapping["id"] if mapping else None)] += 1
        return Response(sb.vendor_create(resource, **fields), status_code=201)

    @route(
        PREFIX + "/{resource:str}/{record_id:str}",
        http_method=["GET", "PUT", "DELETE"],
        status_code=200,
    )
    async def one(
        resource: PathStr, record_id: PathStr, request: Request[Any, Any, Any]
    ) -> Response[Any]:
        operation = f"{request.method} /{resource}/" + ("me" if record_id == "me" else "{id}")
        if operation == "GET /studio/me":
            studio = {"id": "01h35ccwymj5ctckp8px1azhg6", "name": sb.studio_name}
            return Response({**studio, "currencyCode": "USD"})
        if resource not in RESOURCES or not CONTRACT.has(operation):
            return sb.refuse(not_implemented(operation))
        body = await body_of(request, operation) if request.method == "PUT" else None
        if isinstance(body, Response):
            return body
        if (record := sb.record(resource, record_id)) is None:
            return missing(record_id)
        if request.method == "DELETE":
            sb.vendor_delete(resource, record_id)
            return Response(None, status_code=204)
        if request.method == "GET":
            return Response(record)
        return Response(sb.replace(resource, record_id, body or {}))

    return Litestar(route_handlers=[collection, one], before_request=before, openapi_config=None)


class _LoseResponses:
    """ASGI wrapper: run the request, then drop its answer for a 502 (see ``lose_response``),
    or hold it back (see ``answer_late``)."""

    def __init__(self, app: Callable[..., Any], sb: TaveSandbox) -> None:
        self.inner = app
        self.sb = sb

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.inner(scope, receive, send)
            return
        late = self.sb._take_late(scope["method"], scope["path"])
        if late is not None:
            held: list[Any] = []

            async def hold(message: Any) -> None:
                held.append(message)

            await self.inner(scope, receive, hold)  # the work is done now
            await asyncio.sleep(late)
            for message in held:
                await send(message)
            return
        if not self.sb._take_lost(scope["method"], scope["path"]):
            await self.inner(scope, receive, send)
            return

        async def swallow(message: Any) -> None:
            return None

        await self.inner(scope, receive, swallow)
        body = b'{"type":"unknown","title":"Bad Gateway","detail":"lost","status":502}'
        await send(
            {
                "type": "http.response.start",
                "status": 502,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})


def demo() -> Any:
    """Entry point ``journeyhub.sandboxes``: this sandbox as ``journeyhub demo`` runs it."""
    from journeyhub.testing.sandbox import SandboxDemo

    return SandboxDemo(
        "Tave (VSCO Workspace)",
        TaveSandbox,
        config=lambda sb: {"api_base": sb.api_base},
        credentials=lambda sb: {"api_key": sb.api_key},
        secrets=(API_KEY,),
    )
