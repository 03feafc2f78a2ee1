"""Journey events out to VSCO Workspace: contacts, wedding jobs, notes, lead statuses, each
written by the id the hub knows, else found or created (:mod:`journeyhub.kit.records`)."""

from __future__ import annotations

import contextlib
import html
from typing import Any, cast
from urllib.parse import quote

from journeyhub.errors import PermanentError
from journeyhub.kit import sets_client_fields
from journeyhub.kit.records import IdMap
from journeyhub.model import DeliveryTask, JourneyEvent, Known, KnownRecord, PushResult

from journeyhub_tave import client as api
from journeyhub_tave.client import PATHS, TaveClient, TaveConfig, number, read_record

# A mapped field and the canonical field the pull reports it as, to tell a change from what the
# hub knows; a mapped field without a canonical twin cannot be compared, so it is written.
CANONICAL = {
    "contact": dict(firstName="first_name", lastName="last_name", email="email", cellPhone="phone"),
    "job": dict(name="name", eventDate="wedding_date", guestCount="guest_count"),
}
STATUS_EVENTS = ("journey_completed", "journey_paused", "journey_failed")
PUSH_EVENT_TYPES = ("journey_started", "step_completed", *STATUS_EVENTS, "client_updated")
# ASSUMED: PUT replaces the record (its body is the whole entity, so that is what is sent), and a
# deleted record's id answers 404; a create naming a record that does not exist (a link's
# contactId, a note's jobId) is refused with one of MISSING_REFERENCE (the sandbox: 400).
MISSING_REFERENCE = (400, 404, 422)


class Pusher(IdMap):
    """One push; the records it reports carry the canonical fields it wrote (to tell our echo)."""

    def __init__(
        self, tave: TaveClient, config: TaveConfig, task: DeliveryTask, key: str, known: Known
    ) -> None:
        event = cast(JourneyEvent, task.event)  # the hook passes only tasks of journey events
        self.tave, self.config, self.event, self.key = tave, config, event, key  # key: idempotency
        self.instance = event.journey_instance_id
        refs = {"job": self.instance, "job_contact": self.instance, "note": key}
        super().__init__(known, event.client.id, refs, links=("job_contact",))
        self.fields = {kind: _present(task.mapped.get(kind) or {}) for kind in CANONICAL}
        self.sets = sets_client_fields(event)  # else the client's and wedding's fields stay
        self.read: dict[str, dict[str, Any]] = {}  # records read in this push, by vendor id

    def ref_of(self, record: KnownRecord) -> str | None:
        # A job kept without a ref has its journey instance in its fields.
        return record.ref if record.ref is not None else record.fields.get("journey_instance_id")

    async def push(self) -> PushResult:
        if (kind := self.event.type) not in PUSH_EVENT_TYPES:
            return PushResult(status="skipped", detail=f"{kind} is not pushed to VSCO Workspace")
        skipped = await self.run(self.set_status if kind in STATUS_EVENTS else getattr(self, kind))
        return skipped or self.result(self.tave.last_status)

    async def base(self, kind: str, vid: str) -> dict[str, Any] | None:
        """The whole record to PUT a change onto: as read in this push, else as the hub knows it
        (no read: the calls per event stay as they are), else read now; None when it is gone."""
        if vid in self.read:
            return api.writable(kind, self.read[vid])
        known = next((r.fields for r in self.known.records if r.vendor_id == vid), {})
        if _whole(kind, known):
            body = {field: known.get(name) for name, field in api.WHOLE[kind].items()}
            if kind == "contact":
                phone = body["cellPhone"] and {"formatted": body["cellPhone"]}
                return body | {"kind": body["kind"] or "person", "cellPhone": phone}
            with contextlib.suppress(PermanentError):  # a setting renamed: the record names it
                for name, (path, field) in api.SETTINGS.items():
                    named = known.get(name)
                    body[field] = named and await self.tave.setting(path, named, name)
                return body
        record = await self.tave.get(PATHS[kind], vid)
        return None if record is None else api.writable(kind, self.read.setdefault(vid, record))

    async def put(
        self, kind: str, vid: str, change: Any, ref: Any = None, found: bool = False, **extra: Any
    ) -> Any:
        """PUT ``change`` over the whole record: the canonical fields it set (and ``extra``) as
        the pull will read them; None when a known record is gone (forgotten, with ``ref``; a
        ``found`` one raises)."""
        path = f"{PATHS[kind]}/{quote(vid, safe='')}"
        body = await self.base(kind, vid)
        answer = body and await self.tave.request(
            "PUT", path, json=body | dict(change), missing_ok=not found
        )
        if answer is None and self.tave.last_status == 404:
            return self.forget(kind, vid, ref)
        table = CANONICAL[kind]
        sent = {table[k]: _plain(v) for k, v in change.items() if k in table}
        names = [n for n in ("first_name", "last_name") if n in sent]
        if names:  # the vendor derives the name from both: from one alone, it is read back
            sent["name"] = " ".join(str(sent[n]) for n in names if sent[n]) if names[1:] else None
        fields = {**sent, **extra}
        if isinstance(answer, dict) and answer.get("id") and len(answer) > 1:
            full = self.canonical(kind, answer)
            fields = {name: full.get(name, value) for name, value in fields.items()}
        return _present(fields)

    def canonical(self, kind: str, record: dict[str, Any]) -> dict[str, Any]:
        return _present(read_record(kind, record, self.config).fields)

    async def contact(self) -> str:
        """The client's contact with the event's fields: known (ours first), found, or made."""
        if "contact" in self.ids:
            return self.ids["contact"]
        changes = self.fields["contact"] if self.sets else {}
        while (known := self.find("contact")) is not None:
            fields = dict(known.fields)
            if known.email and not fields.get("email"):
                fields["email"] = known.email
            if not _differs_from_known(changes, fields):
                return self.use("contact", known.vendor_id, "known", email=fields.get("email"))
            if (fields := await self.put("contact", known.vendor_id, changes)) is not None:
                return self.use("contact", known.vendor_id, "updated", fields, known.email)
        if self.must_look("contact") and (found := await self.find_contact()) is not None:
            vendor_id, email = str(found["id"]), found.get("email")
            self.read[vendor_id] = found
            if not changes or not _differs(found, changes):
                return self.use("contact", vendor_id, "found", email=email)
            fields = await self.put("contact", vendor_id, changes, found=True)
            return self.use("contact", vendor_id, "updated", fields, email)
        body = {"kind": "person", **self.fields["contact"]}
        body["externalMappings"] = [self.config.make("client", self.event.client.id)]
        made = await self.tave.create(api.CONTACTS, body)
        return self.use("contact", str(made["id"]), "created", self.canonical("contact", made))

    async def find_contact(self) -> dict[str, Any] | None:
        """Ours, else the studio's with the client's email. The contact list cannot be filtered by
        externalMappingId: look through this journey's job (which can be), then by email, then
        among the newest (where one made just before a crash is)."""
        client_id = self.event.client.id
        job_id = self.ids.get("job") or self.known_id("job")
        if not job_id and (job := await self.lookup_job()):
            job_id = str(job["id"])
        if job_id:
            links, _ = await self.tave.page(api.JOB_CONTACTS, jobId=job_id)
            for link in links:
                contact = await self.tave.get(api.CONTACTS, str(link.get("contactId") or "-"))
                if contact is not None and self.config.has(contact, client_id):
                    return contact
        adoptable = None
        if email := (self.fields["contact"].get("email") or self.event.client.email or "").strip():
            items, _ = await self.tave.page(api.CONTACTS, email=email, pageSize=api.PAGE_SIZE_MAX)
            if mine := next((i for i in items if self.config.has(i, client_id)), None):
                return mine
            for item in items:  # else adopt a person the studio had, unless a client of ours
                free = item.get("kind") == "person" and self.config.ours(item, "client") is None
                if free and _norm("email", item.get("email")) == _norm("email", email):
                    adoptable = adoptable or item
        items, _ = await self.tave.page(api.CONTACTS, **api.NEWEST)
        return next((i for i in items if self.config.has(i, client_id)), adoptable)

    async def find_job(self, instance: str) -> dict[str, Any] | None:
        params = {"externalMappingId": api.external_id(instance), "includeClosed": "true"}
        items, _ = await self.tave.page(api.JOBS, **params, **api.NEWEST)
        return next((i for i in items if self.config.has(i, instance)), None)

    async def lookup_job(self) -> dict[str, Any] | None:
        return await self.lookup("job", lambda: self.find_job(self.instance))

    async def resolve_job(self) -> str | None:
        """This journey instance's job, known or found; None when it is to be made."""
        if "job" in self.ids:
            return self.ids["job"]
        if (known := self.known_id("job")) is not None:
            return self.use("job", known, "known")
        if self.must_look("job") and (found := await self.lookup_job()) is not None:
            self.read[str(found["id"])] = found
            return self.use("job", str(found["id"]), "found")
        return None

    async def ensure_job(self, extra: dict[str, Any] | None = None) -> str:
        """This journey instance's job, made (with ``extra``, its contact and link) when missing,
        so an event that overtook its journey_started lands there; a found one gets its link."""
        job_id = await self.resolve_job()
        if job_id is None:
            await self.contact()
            body = {**self.fields["job"], **(extra or {})}
            body["externalMappings"] = [self.config.make("journey", self.instance)]
            if job_type := self.config.job_type:
                body["jobTypeId"] = await self.tave.setting(api.JOB_TYPES, job_type, "job_type")
            made = await self.tave.create(api.JOBS, body)
            job_id = self.use("job", str(made["id"]), "created", self.canonical("job", made))
        if self.how["job"] in ("created", "found"):
            await self.link()
        return job_id

    async def link(self) -> None:
        """The job's client link to the contact: known, found where it may exist, or made."""
        if "job_contact" in self.ids:
            return
        contact_id = await self.contact()
        job_id, how = self.ids["job"], self.how["job"]  # the callers resolve the job first
        fields = {"job_id": job_id, "contact_id": contact_id}
        link_id = self.known_id("job_contact", **fields)
        # A job made in this push has no links yet; one the hub knew on a first attempt has
        # only the links the hub knows of.
        if link_id is None and (how == "found" or (how != "created" and self.must_look("link"))):
            items, _ = await self.tave.page(api.JOB_CONTACTS, jobId=job_id, contactId=contact_id)
            link_id = next((str(i["id"]) for i in items if i.get("contactId") == contact_id), None)
        if link_id is None:
            body = {"jobId": job_id, "contactId": contact_id, "client": True}
            link_id = str((await self.create_naming(api.JOB_CONTACTS, body))["id"])
        self.use("job_contact", link_id, "", fields)

    async def create_naming(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST a record naming this push's job and contact (the push runs again without one
        that the vendor refused as gone)."""
        try:
            return await self.tave.create(path, body)
        except PermanentError as exc:
            if exc.vendor_status in MISSING_REFERENCE:
                await self.recheck(PATHS, lambda k, v: self.tave.get(PATHS[k], v))
            raise

    async def journey_started(self) -> None:
        await self.contact()
        await self.ensure_job()
        await self.link()

    async def step_completed(self) -> None:
        """One note per step across retries. The Note schema has no externalMappings, so a note
        is known by the hub's id map (its ref: the idempotency key) and, where an earlier attempt
        may have made it unseen, found by a marker holding that key in its text."""
        job_id = await self.ensure_job()
        note_id = self.known_id("note")
        marker = html.escape(f"journeyhub ref [{self.key}]")
        if note_id is None and self.must_look("note"):
            items, _ = await self.tave.page(api.NOTES, jobId=job_id, **api.NEWEST)
            note_id = next(
                (str(i["id"]) for i in items if marker in str(i.get("contentHtml"))), None
            )
        if note_id is None:
            step, journey = self.event.step, html.escape(self.event.journey_name or "journey")
            said = f"<p>{journey}: <strong>{html.escape(step.name if step else 'step')}</strong>"
            body = {
                "contentHtml": f"{said} completed</p><p><small>{marker}</small></p>",
                "jobId": job_id,
                "date": self.event.occurred_at.date().isoformat(),
            }
            if "contact" in self.ids:
                body["contactId"] = self.ids["contact"]
            note_id = str((await self.create_naming(api.NOTES, body))["id"])
        self.use("note", note_id, "", {"job_id": job_id})

    async def set_status(self) -> PushResult | None:
        setting = "status_" + self.event.type.removeprefix("journey_")
        if not (name := getattr(self.config, setting)):
            return PushResult(status="skipped", detail=f"no lead status set for {self.event.type}")
        change = {"leadStatusId": await self.tave.setting(api.LEAD_STATUSES, name, setting)}
        # A job that answers 404 is forgotten, and the next one resolved (a lookup) is tried.
        while (job_id := await self.resolve_job()) and self.how["job"] in ("known", "found"):
            fields = await self.put("job", job_id, change, self.instance, lead_status=name)
            if fields is not None:
                self.use("job", job_id, "updated", fields)
        await self.ensure_job(change)  # a job made here is made with the status
        return None

    async def client_updated(self) -> None:
        """The contact, then the client's jobs we made get the new wedding date: one the studio
        deleted is looked up by its journey instance (another may stand for it), not made again."""
        await self.contact()
        if not (date := self.fields["job"].get("eventDate")):
            return
        for known in self.known.all("job"):
            ref = known.ref or known.fields.get("journey_instance_id")
            vendor_id, change = known.vendor_id, {"eventDate": date}
            if known.fields.get("wedding_date") != date:
                if (fields := await self.put("job", vendor_id, change, ref)) is None:
                    if (found := await self.find_job(ref) if ref else None) is None:
                        continue
                    vendor_id = str(found["id"])
                    self.read[vendor_id] = found
                    if found.get("eventDate") != date:
                        fields = await self.put("job", vendor_id, change, found=True)
                self.report("job", vendor_id, fields, ref=ref)
            self.ids.setdefault("job", vendor_id)


def _whole(kind: str, fields: dict[str, Any]) -> bool:
    """Whether the hub's fields of a record came from a whole read (a job's stage always has a
    value), so a PUT can be made of them without reading the record first."""
    return "status" in fields if kind == "job" else any(k in fields for k in api.CONTACT)


def _present(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


def _plain(value: Any) -> Any:
    """A mapped value as the pull shows it: a phone object as its number."""
    return number(value) if isinstance(value, dict) else value


def _norm(name: str, value: Any) -> Any:
    """A canonical value as compared: a phone by its digits, an email ignoring case."""
    if name == "phone":
        return "".join(c for c in str(value or "") if c.isdigit())
    return str(value or "").strip().casefold() if name == "email" else value


def _differs_from_known(mapped: dict[str, Any], known: dict[str, Any]) -> bool:
    """Whether writing ``mapped`` would change the contact as the hub knows it."""
    table = CANONICAL["contact"]
    return any(
        k not in table or _norm(table[k], _plain(v)) != _norm(table[k], known.get(table[k]))
        for k, v in mapped.items()
    )


def _differs(record: dict[str, Any], fields: dict[str, Any]) -> bool:
    """Whether writing ``fields`` would change the vendor's ``record`` (an object: its keys)."""
    for key, value in fields.items():
        current = record.get(key)
        if isinstance(value, dict):
            current = {k: (current if isinstance(current, dict) else {}).get(k) for k in value}
        if current != value:
            return True
    return False
