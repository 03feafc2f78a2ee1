"""Local fakes of what Studio Ninja exposes, for tests, benchmarks and the demo.

- **Calendar**: journeyhub_gcal's :class:`GcalSandbox` (Google's token endpoint and Calendar
  API), with entries written as Studio Ninja's sync writes them (``add_entry``: a Google
  event titled ``<LABEL>: <job name>``) and a lead booked as it relabels them
  (``book_lead``: "(LEAD)" dropped, LEAD becomes SHOOT, same event) or, to test the other
  case, by deleting the event and writing a new one (``book_lead_as_new_event``).
- **Enquiry form** (:class:`StudioNinjaFormSandbox`): ``GET`` of
  ``/contactform/parser/<company>/<form>`` (and ``/contactform/hosted/...``) gives the form
  page; a ``POST`` there (form-encoded or JSON) is one submission, answered 200 with a thank-you
  page. ASSUMED, as Studio Ninja does not publish them: the POST target, the 400 for a missing
  required field, the 404 for an unknown form. ``faults`` (:class:`Faults`) applies to every
  call; ``submissions`` records what reached the studio (each one a new lead: the form has no
  duplicate check, so repeats show here).
"""

from __future__ import annotations

import html
import threading
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

import msgspec
from journeyhub.testing.sandbox import Faults, SandboxServer
from journeyhub_gcal.sandbox import USER, GcalSandbox
from litestar import Litestar, Request, Response, get, post
from litestar.params import PathParameter

# The shape of the ids in real form URLs (UUIDs); these two are the sandbox's own.
COMPANY_ID = "0a800fc8-5a4d-1b0c-8000-5a4db0c0ffee"
FORM_ID = "0a800fc8-5a4d-1b0c-8000-0000000f0a11"
PathStr = Annotated[str, PathParameter()]
FORM_FIELDS = (
    "first_name",
    "last_name",
    "email",
    "phone",
    "event_date",
    "location",
    "job_type",
    "message",
)


@dataclass(frozen=True)
class Submission:
    form_id: str
    fields: dict[str, str]
    encoding: str  # "form" or "json"
    received_at: datetime


def _page(title: str, body: str, status: int = 200) -> Response[str]:
    text = (
        f"<!doctype html><html><head><title>{html.escape(title)}</title></head>"
        f"<body>{body}</body></html>"
    )
    return Response(text, status_code=status, media_type="text/html")


class StudioNinjaFormSandbox:
    """A studio's contact form: its page, and the leads submitted through it."""

    def __init__(
        self,
        *,
        company_id: str = COMPANY_ID,
        form_id: str = FORM_ID,
        required: tuple[str, ...] = ("first_name", "email"),
        port: int | None = None,
    ) -> None:
        self.company_id = company_id
        self.form_id = form_id
        self.required = required
        self.faults = Faults()
        self._lock = threading.Lock()
        self.reset()
        self.server = SandboxServer(create_form_app(self), port=port)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def form_url(self) -> str:
        """The URL of the embedded form (the iframe's ``src``), which also takes the POST."""
        return f"{self.url}/contactform/parser/{self.company_id}/{self.form_id}"

    @property
    def hosted_url(self) -> str:
        return f"{self.url}/contactform/hosted/{self.company_id}/{self.form_id}"

    def start(self) -> StudioNinjaFormSandbox:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def __enter__(self) -> StudioNinjaFormSandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        with self._lock:
            self._submissions: list[Submission] = []
            self.requests: Counter[str] = Counter()  # "METHOD status"
        self.faults.clear()

    @property
    def submissions(self) -> list[Submission]:
        with self._lock:
            return list(self._submissions)

    def receive(
        self, company_id: str, form_id: str, fields: dict[str, str], encoding: str
    ) -> tuple[int, str]:
        """The form's answer to one submission: (status, message)."""
        if (company_id, form_id) != (self.company_id, self.form_id):
            return 404, "This form does not exist."
        missing = [name for name in self.required if not str(fields.get(name) or "").strip()]
        if missing:
            return 400, f"Please fill in: {', '.join(missing)}."
        if "email" in fields and "@" not in fields["email"]:
            return 400, "Please enter a valid email address."
        with self._lock:
            self._submissions.append(Submission(form_id, dict(fields), encoding, datetime.now(UTC)))
        return 200, "Thank you! We will be in touch soon."


def create_form_app(sb: StudioNinjaFormSandbox) -> Litestar:
    paths = [
        "/contactform/parser/{company_id:str}/{form_id:str}",
        "/contactform/hosted/{company_id:str}/{form_id:str}",
    ]

    def count(key: str) -> None:
        with sb._lock:
            sb.requests[key] += 1

    @get(paths)
    async def form_page(company_id: PathStr, form_id: PathStr) -> Response[str]:
        if (fault := await sb.faults.apply()) is not None:
            count(f"GET {fault.status_code}")
            return fault
        if (company_id, form_id) != (sb.company_id, sb.form_id):
            count("GET 404")
            return _page("Not found", "<p>This form does not exist.</p>", 404)
        inputs = "".join(f'<label>{name}<input name="{name}"></label>' for name in FORM_FIELDS)
        count("GET 200")
        return _page("Contact", f'<form method="post">{inputs}<button>Send</button></form>')

    @post(paths, status_code=200)
    async def form_submit(
        company_id: PathStr, form_id: PathStr, request: Request[Any, Any, Any]
    ) -> Response[str]:
        # The body first: a fault that delays the answer must still find a whole request.
        if "json" in request.headers.get("content-type", ""):
            try:
                raw = msgspec.json.decode(await request.body())
            except msgspec.DecodeError:
                raw = None
            if not isinstance(raw, dict):
                count("POST 400")
                return _page("Error", "<p>Bad request.</p>", 400)
            fields, encoding = {str(k): str(v) for k, v in raw.items()}, "json"
        else:
            form = await request.form()
            fields, encoding = {str(k): str(v) for k, v in form.multi_items()}, "form"
        if (fault := await sb.faults.apply()) is not None:
            count(f"POST {fault.status_code}")
            return fault
        status, message = sb.receive(company_id, form_id, fields, encoding)
        count(f"POST {status}")
        return _page("Contact", f"<p>{html.escape(message)}</p>", status)

    return Litestar([form_page, form_submit], openapi_config=None)


def _when(value: date | datetime) -> dict[str, str | None]:
    # The other half as null: an edit (patch semantics) then drops it, so an entry can move
    # between all-day and timed.
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)  # Google needs an offset
        return {"dateTime": aware.isoformat(), "date": None}
    return {"date": value.isoformat(), "dateTime": None}


def label_of(entry_type: str, lead: bool) -> str:
    if entry_type == "LEAD":
        return "LEAD"
    return f"{entry_type} (LEAD)" if lead else entry_type


class StudioNinjaSandbox:
    """Studio Ninja as journeyhub sees it: a Google calendar it syncs into, and its form."""

    def __init__(
        self, *, calendar_id: str = USER, required: tuple[str, ...] = ("first_name", "email")
    ) -> None:
        self.calendar_id = calendar_id
        self.google = GcalSandbox()
        self.forms = StudioNinjaFormSandbox(required=required)

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> StudioNinjaSandbox:
        self.google.start()
        self.forms.start()
        return self

    def stop(self) -> None:
        self.forms.stop()
        self.google.stop()

    def __enter__(self) -> StudioNinjaSandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        self.google.reset()
        self.forms.reset()

    @property
    def url(self) -> str:
        """The enquiry form's server (Google's is ``google.url``)."""
        return self.forms.url

    @property
    def faults(self) -> Faults:
        """The enquiry form's faults (Google's are ``google.faults``)."""
        return self.forms.faults

    @property
    def submissions(self) -> list[Submission]:
        return self.forms.submissions

    def config(self, **overrides: Any) -> dict[str, Any]:
        """A connection config pointing at both fakes."""
        return {
            "api_base": self.google.api_base,
            "token_url": self.google.token_url,
            "calendar_id": self.calendar_id,
            "enquiry_form_url": self.forms.form_url,
            **overrides,
        }

    def credentials(self, **overrides: Any) -> dict[str, Any]:
        return self.google.credentials(**overrides)

    # --- Studio Ninja's calendar sync, as it writes --------------------------------------------

    def add_entry(
        self,
        entry_type: str,
        name: str,
        start: date | datetime,
        end: date | datetime | None = None,
        *,
        lead: bool = False,
        location: str | None = None,
        description: str | None = None,
    ) -> dict[str, Any]:
        """A Studio Ninja entry in the calendar: ``<LABEL>: <name>``."""
        if end is None:
            end = start + (timedelta(hours=1) if isinstance(start, datetime) else timedelta(days=1))
        return self.google.user_add(
            self.calendar_id,
            summary=f"{label_of(entry_type, lead)}: {name}",
            start=_when(start),
            end=_when(end),
            location=location,
            description=description,
        )

    def book_lead(self, event_id: str) -> dict[str, Any]:
        """The lead is booked: the same event loses its "(LEAD)" (LEAD becomes SHOOT)."""
        event = self.google.event(event_id, self.calendar_id)
        assert event is not None, event_id
        title = str(event["summary"])
        if title.startswith("LEAD"):
            title = "SHOOT" + title.removeprefix("LEAD")
        return self.google.user_edit(
            event_id, self.calendar_id, summary=title.replace(" (LEAD)", "", 1)
        )

    def book_lead_as_new_event(self, event_id: str) -> dict[str, Any]:
        """The other way a sync could do it: delete the lead's event, write a new one."""
        event = self.google.event(event_id, self.calendar_id)
        assert event is not None, event_id
        self.google.user_delete(event_id, self.calendar_id)
        title = str(event["summary"])
        if title.startswith("LEAD"):
            title = "SHOOT" + title.removeprefix("LEAD")
        fields = {k: event[k] for k in ("start", "end", "location", "description") if k in event}
        return self.google.user_add(
            self.calendar_id, summary=title.replace(" (LEAD)", "", 1), **fields
        )

    def move(
        self, event_id: str, start: date | datetime, end: date | datetime | None = None
    ) -> dict[str, Any]:
        if end is None:
            end = start + (timedelta(hours=1) if isinstance(start, datetime) else timedelta(days=1))
        return self.google.user_edit(event_id, self.calendar_id, start=_when(start), end=_when(end))


__all__ = [
    "COMPANY_ID",
    "FORM_ID",
    "StudioNinjaFormSandbox",
    "StudioNinjaSandbox",
    "Submission",
    "create_form_app",
    "label_of",
]


def demo() -> Any:
    """Entry point ``journeyhub.sandboxes``: this sandbox as ``journeyhub demo`` runs it."""
    from journeyhub.testing.sandbox import SandboxDemo

    return SandboxDemo(
        "Studio Ninja",
        StudioNinjaSandbox,
        config=lambda sb: sb.config(),
        credentials=lambda sb: sb.credentials(),
    )
