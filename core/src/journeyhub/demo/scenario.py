"""The demo's story: a studio connects its tools, and one couple's wedding journey plays out.

Each step acts as the real world would (the journey engine posts events to the HTTP API, each
carrying the journey as the engine knows it; the Stripe and Resend sandboxes send signed
webhooks; a studio user edits a job in the Tave sandbox, and the engine, told by the hub, sends
the new date to every system), then waits for every effect by polling the sandboxes and the
store, never by sleeping a fixed time. A dead letter, a refused webhook or a failed sync ends
the step at once with the reason; anything else that does not happen in time ends it with what
was being waited for.
"""

from __future__ import annotations

import asyncio
import inspect
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from journeyhub.demo import STEP_KEYS, dates
from journeyhub.demo.engine import Journey, JourneyEngine
from journeyhub.demo.sandboxes import Sandboxes
from journeyhub.hub import Hub
from journeyhub.model import TRIGGER_TYPES
from journeyhub.testing.sandbox import Fault

STUDIO = "Golden Hour Photography"
COUPLE = "Amelia & Theo"
CLIENT_NAME = "Amelia Hart"
CLIENT_EMAIL = "amelia.hart@example.com"
VENUE = {"name": "Kew Gardens", "address": "Richmond, London"}
WEDDING_DATE = "2027-06-12"
NEW_DATE = "2027-06-19"
DEPOSIT = 150_000  # pence


class StepFailed(Exception):
    """The step did not reach its effect; the message says what went wrong."""


@dataclass(frozen=True)
class Step:
    key: str  # what --fail-step names
    title: str
    needs: tuple[str, ...] = ()  # the step is skipped without these connectors


# Connectors still taking shape: a refused connection leaves them out with a note.
OPTIONAL = frozenset({"studioninja"})

STORY: tuple[Step, ...] = (
    Step("enquiry", "Enquiry"),
    Step("booked", "Booked"),
    Step("deposit", "Deposit paid", needs=("stripe",)),
    Step("emails", "Emails", needs=("resend",)),
    Step("date", "Date moved in the CRM", needs=("tave",)),
    Step("calendar", "The date follows", needs=("tave",)),
    Step("completed", "Journey completed"),
)
if tuple(step.key for step in STORY) != STEP_KEYS:  # --fail-step checks against STEP_KEYS
    raise RuntimeError("journeyhub.demo.STEP_KEYS must list the keys of STORY, in order")


@dataclass
class Tenant:
    id: str
    admin_key: str
    ingest_key: str


@dataclass
class Scenario:
    hub: Hub
    api: httpx.AsyncClient  # on the hub's gateway
    boxes: Sandboxes
    step_timeout: float = 20.0
    fail_step: str | None = None
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    tenant: Tenant | None = None
    connections: dict[str, dict[str, Any]] = field(default_factory=dict)  # vendor → as created
    emails_sent: list[dict[str, Any]] = field(default_factory=list)
    on_wait: Callable[[str], None] | None = None  # told what each wait is for
    notes: list[str] = field(default_factory=list)  # what was left out, for the terminal
    _deadline: float = 0.0
    _dead_seen: set[str] = field(default_factory=set)

    # --- identities -------------------------------------------------------------------------------

    @property
    def client_id(self) -> str:
        return "cl_amelia_theo"

    @property
    def journey_instance_id(self) -> str:
        return f"ji_wedding_{self.run_id}"

    @property
    def tenant_id(self) -> str:
        assert self.tenant is not None
        return self.tenant.id

    @property
    def engine(self) -> JourneyEngine:
        assert self.boxes.engine is not None, "the journey engine starts with the sandboxes"
        return self.boxes.engine

    def wedding_date(self) -> str:
        """The wedding date as the journey engine knows it now."""
        journey = self.engine.journey(self.client_id)
        return str(journey.wedding["date"]) if journey is not None else WEDDING_DATE

    def has(self, vendor: str) -> bool:
        return vendor in self.connections

    def label(self, vendor: str) -> str:
        return self.boxes.label(vendor)

    # --- the steps --------------------------------------------------------------------------------

    def missing(self, step: Step) -> list[str]:
        """The connectors this step needs that are not connected."""
        return [vendor for vendor in step.needs if not self.has(vendor)]

    async def run_step(self, step: Step) -> str:
        """Run one step within its time budget; its one-line result, or StepFailed."""
        actions: dict[str, Callable[[], Awaitable[str]]] = {
            "enquiry": self.enquiry,
            "booked": self.booked,
            "deposit": self.deposit,
            "emails": self.emails,
            "date": self.date_moved,
            "calendar": self.date_follows,
            "completed": self.completed,
        }
        self._deadline = asyncio.get_running_loop().time() + self.step_timeout
        if self.fail_step == step.key:
            self.inject_fault(step.key)
        return await actions[step.key]()

    # --- set-up -----------------------------------------------------------------------------------

    async def create_tenant(self) -> Tenant:
        store = self.hub.store
        tenant_id = await store.tenants.add(STUDIO)
        admin = await store.tenants.create_key(tenant_id, "admin", "journeyhub demo")
        ingest = await store.tenants.create_key(tenant_id, "ingest", "journeyhub demo engine")
        self.tenant = Tenant(tenant_id, admin, ingest)
        self.engine.connect(self.api, ingest)
        return self.tenant

    def connection_specs(self) -> list[dict[str, Any]]:
        """What the studio connects: each running sandbox (its config and credentials, from
        the plugin, with the studio's choices on top), and the journey engine."""
        b = self.boxes
        specs: list[dict[str, Any]] = []
        for vendor in b.listed():
            sandbox = b.vendors.get(vendor)
            if sandbox is None:
                continue
            choices = CHOICES.get(vendor, {})
            spec: dict[str, Any] = {
                "vendor": vendor,
                "name": choices.get("name", b.label(vendor)),
                "config": {**sandbox.config(), **choices.get("config", {})},
                "credentials": sandbox.credentials(),
            }
            for key in ("direction", "field_mappings"):
                if key in choices:
                    spec[key] = choices[key]
            specs.append(spec)
        if b.engine is not None:
            specs.append(
                {
                    "vendor": "webhook",
                    "name": "Journey engine",
                    "direction": "outbound",
                    "config": {"url": b.engine.url},
                    "credentials": {"secret": b.engine.secret},
                    # Triggers only. ("client_updated" is also a journey event type, and the
                    # connection's filter cannot tell the two apart: leave it out so the engine is
                    # not sent its own events back.)
                    "event_types": [t for t in TRIGGER_TYPES if t != "client_updated"],
                }
            )
        return specs

    async def connect(self) -> list[str]:
        """Create every connection through the HTTP API; the vendors connected."""
        for spec in self.connection_specs():
            answer = await self.api.post("/v1/connections", json=spec, headers=self.admin())
            vendor = spec["vendor"]
            if answer.status_code != 201 and (vendor in OPTIONAL or vendor not in CHOICES):
                self.notes.append(
                    f"{self.label(vendor)}: left out (its connection was refused: "
                    f"{_detail(answer)})"
                )
                continue
            if answer.status_code != 201:
                raise StepFailed(
                    f"creating the {self.label(vendor)} connection was refused "
                    f"({answer.status_code}): {_detail(answer)}"
                )
            self.connections[spec["vendor"]] = answer.json()
        return list(self.connections)

    # --- 1. enquiry -------------------------------------------------------------------------------

    async def enquiry(self) -> str:
        self.engine.begin(
            Journey(
                instance_id=self.journey_instance_id,
                name="Wedding journey",
                client={
                    "id": self.client_id,
                    "name": CLIENT_NAME,
                    "email": CLIENT_EMAIL,
                    "phone": "+44 7700 900123",
                },
                wedding={"date": WEDDING_DATE, "venue": VENUE, "guest_count": 120},
                data={"couple": COUPLE},
            )
        )
        await self.send(self.event("enquiry", "journey_started"))
        done: list[str] = []
        if self.has("tave"):
            tave = self.boxes.get("tave")
            await self.until(
                "a contact and a job in Tave",
                lambda: tave.contacts and tave.jobs and tave.job_contacts,
            )
            done.append("Tave contact + job")
        if self.has("lightblue"):
            lightblue = self.boxes.get("lightblue")
            await self.until("an enquiry in Light Blue", lambda: lightblue.enquiries)
            done.append("Light Blue enquiry")
        if self.has("honeybook"):
            honeybook = self.boxes.get("honeybook")
            await self.until(
                "a client and a project in HoneyBook",
                lambda: honeybook.clients and honeybook.projects,
            )
            done.append("HoneyBook client + project")
        if self.has("seventeenhats"):
            hats = self.boxes.get("seventeenhats")
            await self.until("a contact in 17hats", lambda: hats.contacts)
            done.append("17hats contact")
        if self.has("studioninja"):
            ninja = self.boxes.get("studioninja")
            await self.until("an enquiry through Studio Ninja's form", lambda: ninja.submissions)
            done.append("Studio Ninja enquiry")
        if self.has("gcal"):
            await self.until("the wedding day in Google Calendar", self.wedding_event)
            done.append("wedding day on the calendar")
        if self.has("tave"):
            # Our own writes come back on the next sync: recognised as an echo, no trigger.
            await self.until("the deliveries to be recorded", self.settled)
            before = await self.trigger_count()
            await self.sync_now("tave")
            if (after := await self.trigger_count()) != before:
                raise StepFailed(
                    f"the Tave sync took our own writes for changes ({after - before} trigger(s))"
                )
        if not done:
            return "journey event accepted (no outbound connector installed)"
        return " · ".join(done)

    # --- 2. booked --------------------------------------------------------------------------------

    async def booked(self) -> str:
        when = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
        step = {
            "id": "booking",
            "name": "Booking confirmed",
            "type": "booking",
            "data": {
                "date": when,
                "start_time": "15:00",
                "duration_minutes": 30,
                "location": "Golden Hour studio",
            },
        }
        await self.send(self.event("booked", "step_completed", step=step))
        done: list[str] = []
        if self.has("tave"):
            tave = self.boxes.get("tave")
            await self.until("a note on the Tave job", lambda: tave.notes)
            done.append("note on the Tave job")
        if self.has("gcal"):
            await self.until("the booking on the calendar", lambda: self.calendar_events("step"))
            done.append("timeline event on the calendar")
        return " · ".join(done) or "step event accepted"

    # --- 3. deposit -------------------------------------------------------------------------------

    async def deposit(self) -> str:
        stripe = self.boxes.vendors["stripe"]
        payment = {
            "amount": DEPOSIT,
            "currency": "gbp",
            "email": CLIENT_EMAIL,
            "metadata": {
                "client_id": self.client_id,
                "journey_instance_id": self.journey_instance_id,
            },
            "description": f"{COUPLE}: wedding photography deposit",
        }
        wrong = "whsec_" + "d3Jvbmctc2VjcmV0" if self.fail_step == "deposit" else None
        url = self.connections["stripe"]["webhook_url"]
        answer = await stripe.webhook("payment_received", payment, url, secret=wrong)
        if answer.status_code != 200:
            raise StepFailed(
                f"the hub answered Stripe's webhook {answer.status_code}: {_detail(answer)}"
            )
        trigger = await self.engine_got("payment_received")
        amount = (trigger.get("data") or {}).get("amount", DEPOSIT)
        return f"£{amount / 100:,.2f} at Stripe → signed webhook → payment_received"

    # --- 4. emails --------------------------------------------------------------------------------

    async def emails(self) -> str:
        resend = self.boxes.vendors["resend"]
        await self.send(
            [
                self.event("welcome", "email_requested", data={"template": "welcome"}),
                self.event(
                    "receipt",
                    "email_requested",
                    data={"template": "deposit_receipt", "amount": f"£{DEPOSIT / 100:,.2f}"},
                ),
            ]
        )

        def ours() -> list[dict[str, Any]]:
            return [e for e in resend.sandbox.emails if CLIENT_EMAIL in e["to"]]

        self.emails_sent = await self.until(
            "2 emails sent through Resend", lambda: len(ours()) >= 2 and ours()
        )
        url, opened = self.connections["resend"]["webhook_url"], self.emails_sent[0]
        for kind, emails in (("email_delivered", self.emails_sent), ("email_opened", [opened])):
            for email in emails:
                answer = await resend.webhook(kind, {"email_id": email["id"]}, url)
                if answer.status_code != 200:
                    raise StepFailed(
                        f"the hub answered Resend's {kind} webhook "
                        f"{answer.status_code}: {_detail(answer)}"
                    )
        await self.engine_got("email_delivered", count=len(self.emails_sent))
        await self.engine_got("email_opened")
        count = len(self.emails_sent)
        return f"{count} emails via Resend → {count} email_delivered, 1 email_opened"

    # --- 5. the date moves in the CRM -----------------------------------------------------------

    async def date_moved(self) -> str:
        tave = self.boxes.get("tave")
        job = next(iter(tave.jobs), None)
        if job is None:
            raise StepFailed("there is no job in Tave to edit")
        tave.vendor_edit("job", job["id"], eventDate=NEW_DATE)  # as the studio would, by hand
        await self.sync_now("tave")
        trigger = await self.engine_got("wedding_date_changed")
        change = ((trigger.get("data") or {}).get("changes") or {}).get("wedding_date") or {}
        if (known := self.wedding_date()) != NEW_DATE:
            raise StepFailed(f"the journey engine still has the wedding on {known}")
        return (
            f"Tave job moved {change.get('old', WEDDING_DATE)} → {change.get('new', NEW_DATE)}"
            f" → sync → wedding_date_changed → the engine now has {NEW_DATE}"
        )

    # --- 6. every system that can be updated follows ----------------------------------------------

    async def date_follows(self) -> str:
        """The engine's next run sends the ``client_updated`` it queued on learning of the new
        date; every system the hub can update moves to it, and our own echo makes no trigger."""
        sent, answer = await self.engine.run()
        if answer is None:
            raise StepFailed("the journey engine had no update to send for the new date")
        if answer.status_code != 202:
            raise StepFailed(f"POST /v1/events answered {answer.status_code}: {_detail(answer)}")
        date = str(sent[-1]["wedding"]["date"])
        moved: list[str] = []
        for vendor in self.boxes.listed():
            if not self.has(vendor) or not dates.updatable(vendor):
                continue
            sandbox = self.boxes.get(vendor)
            name = short_label(self.label(vendor))

            def holds(vendor: str = vendor, sandbox: Any = sandbox) -> bool:
                now = dates.held(vendor, sandbox)
                return now is not None and now.date == date

            await self.until(f"{name} to hold {date}", holds)
            moved.append(name)
        await self.until("the deliveries to be recorded", self.settled)
        before = await self.trigger_count()
        await asyncio.gather(*(self.sync_now(v) for v in ("gcal", "tave") if self.has(v)))
        if (after := await self.trigger_count()) != before:
            raise StepFailed(
                f"a sync took our own change for a new one ({after - before} trigger(s))"
            )
        return f"client_updated from the engine → {', '.join(moved)} on {date} · echo: no trigger"

    # --- 7. completed -----------------------------------------------------------------------------

    async def completed(self) -> str:
        await self.send(self.event("completed", "journey_completed"))
        done: list[str] = []
        if self.has("tave"):
            tave = self.boxes.get("tave")
            await self.until(
                "the Tave job's status to become Completed",
                lambda: any(j.get("leadStatusName") == "Completed" for j in tave.jobs),
            )
            done.append("Tave job Completed")
        await self.until("every delivery to settle", self.settled)
        done.append("every delivery settled")
        date = self.wedding_date()
        behind = {
            self.label(vendor): now.date
            for vendor in self.connections
            if dates.updatable(vendor)
            and (now := dates.held(vendor, self.boxes.get(vendor))) is not None
            and now.date != date
        }
        if behind:
            found = ", ".join(f"{name} {held}" for name, held in behind.items())
            raise StepFailed(f"the wedding is on {date} at the engine but not everywhere: {found}")
        done.append(f"the wedding still on {date} everywhere it can be")
        return " · ".join(done)

    # --- events -----------------------------------------------------------------------------------

    def event(self, name: str, type_: str, **extra: Any) -> dict:
        """A journey event from the engine, carrying the journey as the engine knows it."""
        return self.engine.event(self.client_id, f"ev_{self.run_id}_{name}", type_, **extra)

    async def send(self, body: Any) -> None:
        answer = await self.engine.post(body)
        if answer.status_code != 202:
            raise StepFailed(f"POST /v1/events answered {answer.status_code}: {_detail(answer)}")

    def admin(self) -> dict[str, str]:
        assert self.tenant is not None
        return {"authorization": f"Bearer {self.tenant.admin_key}"}

    # --- waiting ----------------------------------------------------------------------------------

    async def until(self, what: str, check: Callable[[], Any]) -> Any:
        """Poll ``check`` until it is truthy, failing early on a dead letter and at the
        step's deadline with what was awaited (and the last failed attempt, if any)."""
        loop = asyncio.get_running_loop()
        if self.on_wait is not None:
            self.on_wait(what)
        while True:
            value = check()
            if inspect.isawaitable(value):
                value = await value
            if value:
                return value
            await self.raise_on_dead_letters()
            if loop.time() > self._deadline:
                hint = await self.last_failure()
                raise StepFailed(
                    f"timed out after {self.step_timeout:g}s waiting for {what}"
                    + (f"; last failure: {hint}" if hint else "")
                )
            await asyncio.sleep(0.1)

    async def raise_on_dead_letters(self) -> None:
        dead = await self.hub.store.deliveries.list_dead(self.tenant_id, limit=20)
        new = [d for d in dead if d.id not in self._dead_seen]
        self._dead_seen.update(d.id for d in new)
        if new:
            first = new[-1]
            raise StepFailed(
                f"{self.label(first.vendor)} gave up ({first.stage}, dead letter "
                f"{first.id}): {_short(first.error)}"
            )

    async def last_failure(self) -> str | None:
        rows = await self.hub.store.deliveries.list(self.tenant_id, limit=50)
        failed = [r for r in rows if r.status not in ("delivered", "skipped")]
        if not failed:
            return None
        row = failed[0]
        return f"{self.label(row.vendor)} {row.status}: {_short(row.error or '')}"

    async def engine_got(self, type_: str, count: int = 1) -> dict[str, Any]:
        engine = self.boxes.engine
        assert engine is not None

        def arrived() -> list[dict[str, Any]]:
            found = [t for t in engine.triggers(type_) if t.get("client_id") == self.client_id]
            return found if len(found) >= count else []

        found = await self.until(f"{count} {type_} trigger(s) at the journey engine", arrived)
        return found[-1]

    async def trigger_count(self) -> int:
        return len(await self.hub.store.triggers.list(self.tenant_id, limit=1000))

    async def sync_now(self, vendor: str) -> str:
        """Ask for a sync through the API and wait for its result."""
        connection_id = self.connections[vendor]["id"]
        before = await self.hub.store.sync.cursor(connection_id)
        stamp = before.updated_at if before is not None else None
        answer = await self.api.post(f"/v1/connections/{connection_id}/sync", headers=self.admin())
        if answer.status_code != 202:
            raise StepFailed(
                f"the {self.label(vendor)} sync was refused "
                f"({answer.status_code}): {_detail(answer)}"
            )

        async def ran() -> Any:
            cursor = await self.hub.store.sync.cursor(connection_id)
            return cursor if cursor is not None and cursor.updated_at != stamp else None

        cursor = await self.until(f"the {self.label(vendor)} sync", ran)
        result = cursor.last_result or ""
        if not result.startswith("ok"):
            raise StepFailed(f"the {self.label(vendor)} sync {result}")
        return result

    async def settled(self) -> bool:
        tasks = self.hub.store.tasks
        for connection in self.connections.values():
            if await tasks.pending_count(connection["id"]):
                return False
        return True

    # --- Google Calendar --------------------------------------------------------------------------

    def calendar_events(self, kind: str) -> list[dict[str, Any]]:
        gcal = self.boxes.get("gcal")
        if gcal is None:
            return []
        return [
            e
            for e in gcal.events()
            if _private(e).get("journeyhub_kind") == kind and e.get("status") != "cancelled"
        ]

    def wedding_event(self) -> dict[str, Any] | None:
        return next(iter(self.calendar_events("wedding")), None)

    # --- a broken step, on request (--fail-step) --------------------------------------------------

    def inject_fault(self, step: str) -> None:
        """Make the system this step relies on refuse every call for good."""
        refusal = Fault(
            status=422,
            body={
                "type": "validation-error",
                "title": "Validation Error",
                "detail": "injected by --fail-step",
                "status": 422,
            },
        )
        target = {
            "enquiry": "tave",
            "booked": "tave",
            "emails": "resend",
            "date": "tave",
            "calendar": "gcal",
            "completed": "tave",
        }.get(step)
        sandbox = self.boxes.get(target) if target else None
        if sandbox is not None:
            sandbox.faults.chaos(1.0, refusal)
        # "deposit": the webhook is signed with a wrong secret (see deposit()).


TEMPLATES = {
    "welcome": {
        "subject": "Welcome, {{ client.first_name }}! {{ wedding.date_long }} is in our diary",
        "html": (
            '<h1 style="color: {{ vendor.accent_color }}">Dear {{ couple }},</h1>'
            "<p>Thank you for choosing {{ vendor.vendor_name }} for your wedding on "
            "{{ wedding.date_long }} at {{ wedding.venue.name }}.</p>"
            "<p>{{ vendor.signature }}</p>"
        ),
        "text": "Dear {{ couple }}, thank you for choosing {{ vendor.vendor_name }}.",
    },
    "deposit_receipt": {
        "subject": "Deposit received: {{ data.amount }}",
        "html": (
            "<p>Dear {{ couple }},</p><p>We have received your deposit of "
            "<strong>{{ data.amount }}</strong>. Your date, {{ wedding.date_long }}, is secured."
            "</p><p>{{ vendor.signature }}</p>"
        ),
    },
}

_COUPLE_TITLE = {
    "transform": "template",
    "options": {"template": "{{ event.data.couple }} wedding"},
}
_SLOW = {"pull_interval_seconds": 3600}  # the demo syncs when the story says so

# What the studio chooses for each tool it connects, on top of the config and credentials its
# sandbox gives (``journeyhub.sandboxes``); the report lists the tools in this order. A sandbox
# not named here is connected with its own settings, and left out if that is refused.
CHOICES: dict[str, dict[str, Any]] = {
    "tave": {
        "name": "Studio CRM",
        "direction": "bidirectional",
        "config": _SLOW,
        "field_mappings": [{"source": "data.couple", "target": "job.name", **_COUPLE_TITLE}],
    },
    "stripe": {"name": "Payments", "direction": "inbound", "config": _SLOW},
    "resend": {
        "name": "Client emails",
        "direction": "bidirectional",
        "config": {
            "from_address": f"{STUDIO} <hello@example.com>",
            "reply_to": "studio@example.com",
            "language": "en-GB",
            "branding": {
                "vendor_name": STUDIO,
                "accent_color": "#b08d57",
                "signature": "Maya & the Golden Hour team",
            },
            "templates": TEMPLATES,
        },
    },
    "gcal": {
        "name": "Studio calendar",
        "direction": "bidirectional",
        "config": {"time_zone": "Europe/London", **_SLOW},
        "field_mappings": [{"source": "data.couple", "target": "summary", **_COUPLE_TITLE}],
    },
    "lightblue": {
        "name": "Light Blue inbox",
        "direction": "outbound",
        "config": {"source": "journeyhub-demo"},
        "field_mappings": [{"source": "data.couple", "target": "ShootTitle", **_COUPLE_TITLE}],
    },
    "honeybook": {"name": "HoneyBook Zaps", "direction": "outbound"},
    "seventeenhats": {"name": "17hats Zap", "direction": "outbound"},
    "studioninja": {"name": "Studio Ninja", "direction": "bidirectional", "config": _SLOW},
}


def _private(event: dict[str, Any]) -> dict[str, Any]:
    props = event.get("extendedProperties") or {}
    return props.get("private") or {} if isinstance(props, dict) else {}


def short_label(label: str) -> str:
    """A label without its note: "Tave (VSCO Workspace)" → "Tave"."""
    return label.split(" (", 1)[0]


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _detail(answer: httpx.Response) -> str:
    try:
        body = answer.json()
    except ValueError:
        return _short(answer.text)
    if isinstance(body, dict):
        return _short(str(body.get("detail") or body.get("reason") or body))
    return _short(str(body))
