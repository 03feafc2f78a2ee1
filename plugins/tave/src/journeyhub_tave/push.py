"""Journey events out to VSCO Workspace: contacts, wedding jobs, notes, lead statuses.

What the hub knows of the client at this connection (``Known``: the records earlier pushes
wrote or found, the contacts the pull saw with the client's email) is used directly: a known
record is written by its id, and a record the hub does not know is created. Lookups (by our ids
in the records' ``externalMappings``, by email) are made only where a record may exist that the
hub does not know of:

- on a later attempt of a task, since an earlier one may have written before its answer was
  lost;
- after a known id answered 404 (the studio deleted the record): a lookup, then a create.

So a push repeated after a crash at any point still ends with one contact, one job, one link
and one note per step, and a first attempt makes only the writes.
"""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable
from typing import Any

from journeyhub.errors import ConnectorError, PermanentError
from journeyhub.model import JourneyEvent, Known, KnownRecord, PushResult, SyncedRecord

from journeyhub_tave import client as api
from journeyhub_tave.client import TaveClient
from journeyhub_tave.config import TaveConfig
from journeyhub_tave.pull import contact_record, job_record

STATUS_EVENTS = ("journey_completed", "journey_paused", "journey_failed")
PUSH_EVENT_TYPES = ("journey_started", "step_completed", *STATUS_EVENTS, "client_updated")

PATHS = {"contact": api.CONTACTS, "job": api.JOBS}
# A mapped field and the canonical field the pull reports it as (pull.contact_record /
# job_record), to tell a change from what the hub already knows. A mapped field without a
# canonical twin cannot be compared, so the record is written.
CONTACT_CANONICAL = {
    "firstName": "first_name",
    "lastName": "last_name",
    "email": "email",
    "cellPhone": "phone",
}
JOB_CANONICAL = {"name": "name", "eventDate": "wedding_date", "guestCount": "guest_count"}
# How a job resolved but not yet written in this push was had: it still needs its write.
UNWRITTEN = ("known", "found")
# Each round forgets at least one known record that turned out deleted; a few suffice.
MAX_ROUNDS = 4


class _Stale(Exception):
    """A write named a known record the vendor no longer has. It is forgotten, and the event
    is handled again without it."""


class Pusher:
    def __init__(
        self,
        tave: TaveClient,
        config: TaveConfig,
        event: JourneyEvent,
        mapped: dict[str, Any],
        key: str,
        known: Known,
    ) -> None:
        self.tave = tave
        self.config = config
        self.maps = config.mappings
        self.event = event
        self.key = key
        self.known = known
        self.client_id = event.client.id
        self.instance = event.journey_instance_id
        self.contact_fields = _present(mapped.get("contact") or {})
        self.job_fields = _present(mapped.get("job") or {})
        self.ids: dict[str, str] = {}
        # Every record written, found or found deleted, so the next push knows it. ``fields``
        # are what this push wrote, in the pull's canonical fields: the sync takes a pulled
        # value equal to one of them for our own echo, so a value we did not write (a studio
        # edit the pull has not seen yet) is never reported as ours.
        self.records: dict[tuple[str, str], SyncedRecord] = {}
        self.gone: set[tuple[str, str]] = set()  # (kind, vendor id) that answered 404
        # This push's contact and job, and how each was had: "known" (from the hub, not yet
        # seen by the vendor in this push), "found" (by a lookup), "updated" or "created".
        self.contact_id: str | None = None
        self.contact_how = ""
        self.job_id: str | None = None
        self.job_how = ""
        self._job_lookup: dict[str, Any] | None = None
        self._job_looked_up = False

    # --- what the hub knows, and what this push reports ------------------------------------------

    def _known(
        self, kind: str, match: Callable[[KnownRecord], bool] = lambda r: True
    ) -> KnownRecord | None:
        """The known record of ``kind`` that ``match``es and did not answer 404 in this push;
        ours before the studio's."""
        found = [
            r
            for r in self.known.records
            if r.kind == kind and (kind, r.vendor_id) not in self.gone and match(r)
        ]
        found.sort(key=lambda r: r.our_id is None)
        return found[0] if found else None

    def _known_job(self, ref: str) -> KnownRecord | None:
        # A job kept without a ref is recognised by the journey instance its fields carry.
        return self._known(
            "job",
            lambda r: (
                r.ref == ref or (r.ref is None and r.fields.get("journey_instance_id") == ref)
            ),
        )

    def must_look(self, kind: str) -> bool:
        """Whether a record of ``kind`` the hub does not know may still exist at the vendor: an
        earlier attempt may have made it, or a known one was deleted and another may stand."""
        return not self.known.first_attempt or any(k == kind for k, _ in self.gone)

    def report(
        self,
        kind: str,
        vendor_id: str,
        fields: dict[str, Any] | None = None,
        ref: str | None = None,
        email: str | None = None,
    ) -> None:
        self.records[(kind, vendor_id)] = SyncedRecord(
            kind=kind,
            vendor_id=vendor_id,
            fields=dict(fields or {}),
            our_id=self.client_id,
            email=email,
            ref=ref,
        )

    def forget(self, kind: str, vendor_id: str, ref: str | None = None) -> None:
        """A known id answered 404: report it deleted, and stop using it in this push."""
        self.gone.add((kind, vendor_id))
        self.records[(kind, vendor_id)] = SyncedRecord(
            kind=kind, vendor_id=vendor_id, our_id=self.client_id, ref=ref, deleted=True
        )
        if self.ids.get(kind) == vendor_id:
            del self.ids[kind]
            # The link this push used joined the record that is gone: the next round makes one.
            self.ids.pop("job_contact", None)
        if kind == "contact" and self.contact_id == vendor_id:
            self.contact_id, self.contact_how = None, ""
        if kind == "job" and self.job_id == vendor_id:
            self.job_id, self.job_how = None, ""
            self._job_lookup, self._job_looked_up = None, False

    def canonical(self, kind: str, record: dict[str, Any]) -> dict[str, Any]:
        pulled = (contact_record if kind == "contact" else job_record)(record, self.maps)
        return _present(pulled.fields)

    def written(
        self,
        kind: str,
        answer: dict[str, Any],
        changes: dict[str, Any],
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The canonical fields a PUT of ``changes`` set (``extra``: ones it set under another
        name), as the pull will read them: from the answer when it is the record, else from the
        values sent."""
        table = CONTACT_CANONICAL if kind == "contact" else JOB_CANONICAL
        sent = {table[k]: _plain(v) for k, v in changes.items() if k in table}
        if kind == "contact" and "first_name" in sent and "last_name" in sent:
            sent["name"] = " ".join(str(sent[n]) for n in ("first_name", "last_name") if sent[n])
        elif kind == "contact" and ("first_name" in sent or "last_name" in sent):
            sent["name"] = None  # derived by the vendor from both names: read from the answer
        fields = {**sent, **(extra or {})}
        if answer.get("id") and len(answer) > 1:
            full = self.canonical(kind, answer)
            fields = {name: full.get(name, value) for name, value in fields.items()}
        return _present(fields)

    def synced(self) -> list[SyncedRecord]:
        return list(self.records.values())

    def result(self, detail: str | None = None) -> PushResult:
        return PushResult(
            vendor_status=self.tave.last_status,
            external_ids=dict(self.ids),
            detail=detail,
            records=self.synced(),
        )

    # --- contact -----------------------------------------------------------------------------------

    def use_contact(
        self, vendor_id: str, how: str, fields: dict[str, Any] | None = None, email: Any = None
    ) -> str:
        self.contact_id, self.contact_how = vendor_id, how
        self.ids["contact"] = vendor_id
        email = (fields or {}).get("email") or email
        self.report("contact", vendor_id, fields, email=email if isinstance(email, str) else None)
        return vendor_id

    async def contact(self) -> str:
        """The client's contact, with the event's fields: the known one (ours, else the studio's
        with the client's email, which is adopted), else the one a lookup finds where one may
        exist unknown to the hub, else a new one."""
        if self.contact_id is not None:
            return self.contact_id
        while (known := self._known("contact")) is not None:
            fields = dict(known.fields)
            if known.email and not fields.get("email"):
                fields["email"] = known.email
            if not _differs_from_known(self.contact_fields, fields, CONTACT_CANONICAL):
                return self.use_contact(known.vendor_id, "known", email=fields.get("email"))
            answer = await self.tave.update(
                api.CONTACTS, known.vendor_id, self.contact_fields, missing_ok=True
            )
            if answer is None:
                self.forget("contact", known.vendor_id)
                continue
            fields = self.written("contact", answer, self.contact_fields)
            return self.use_contact(known.vendor_id, "updated", fields, known.email)

        found = await self.find_contact() if self.must_look("contact") else None
        if found is not None:
            vendor_id = str(found["id"])
            if self.contact_fields and _differs(found, self.contact_fields):
                answer = await self.tave.update(api.CONTACTS, vendor_id, self.contact_fields) or {}
                fields = self.written("contact", answer, self.contact_fields)
                return self.use_contact(vendor_id, "updated", fields, found.get("email"))
            return self.use_contact(vendor_id, "found", email=found.get("email"))

        body = {
            "kind": "person",
            **self.contact_fields,
            "externalMappings": [self.maps.make("client", self.client_id)],
        }
        created = await self.tave.create(api.CONTACTS, body)
        # The whole record is ours: every field is what this push wrote.
        return self.use_contact(str(created["id"]), "created", self.canonical("contact", created))

    async def find_contact(self) -> dict[str, Any] | None:
        """Our contact at the vendor, or the studio's with the client's email. The contact list
        cannot be filtered by externalMappingId, so look through this journey's job (which can
        be), then by email (the list's documented filter), then among the most recently
        modified contacts (where one made a moment ago, before a crash, is)."""
        client_id = self.client_id
        job_id = self.job_id
        if job_id is None:
            known_job = self._known_job(self.instance)
            if known_job is not None:
                job_id = known_job.vendor_id
            elif (job := await self.lookup_job()) is not None:
                job_id = str(job["id"])
        if job_id is not None:
            links, _ = await self.tave.page(api.JOB_CONTACTS, jobId=job_id)
            for link in links:
                contact = await self.tave.get(api.CONTACTS, str(link.get("contactId") or "-"))
                if contact is not None and self.maps.has(contact, client_id):
                    return contact
        email = (self.contact_fields.get("email") or self.event.client.email or "").strip()
        adoptable = None
        if email:
            items, _ = await self.tave.page(api.CONTACTS, email=email, pageSize=api.PAGE_SIZE_MAX)
            for item in items:
                if self.maps.has(item, client_id):
                    return item
                same = str(item.get("email") or "").strip().casefold() == email.casefold()
                # Adopt a person the studio already had, unless another client of ours.
                free = same and item.get("kind") == "person" and adoptable is None
                if free and self.maps.ours(item, "client") is None:
                    adoptable = item
        items, _ = await self.tave.page(
            api.CONTACTS, sortBy=api.SORT_MODIFIED_DESC, pageSize=api.PAGE_SIZE_MAX
        )
        for item in items:
            if self.maps.has(item, client_id):
                return item
        # The studio already had this person (an enquiry form, an import): use that contact.
        return adoptable

    # --- job -----------------------------------------------------------------------------------------

    def use_job(self, vendor_id: str, how: str, fields: dict[str, Any] | None = None) -> str:
        self.job_id, self.job_how = vendor_id, how
        self.ids["job"] = vendor_id
        self.report("job", vendor_id, fields, ref=self.instance)
        return vendor_id

    async def find_job(self, instance: str) -> dict[str, Any] | None:
        items, _ = await self.tave.page(
            api.JOBS,
            externalMappingId=api.external_id(instance),
            includeClosed="true",
            sortBy=api.SORT_MODIFIED_DESC,
            pageSize=api.PAGE_SIZE_MAX,
        )
        return next((i for i in items if self.maps.has(i, instance)), None)

    async def lookup_job(self) -> dict[str, Any] | None:
        """This journey instance's job at the vendor (looked up once per push)."""
        if not self._job_looked_up:
            self._job_lookup, self._job_looked_up = await self.find_job(self.instance), True
        return self._job_lookup

    async def resolve_job(self) -> str | None:
        """This journey instance's job, known or found; None when it is to be made."""
        if self.job_id is not None:
            return self.job_id
        known = self._known_job(self.instance)
        if known is not None:
            return self.use_job(known.vendor_id, "known")
        if self.must_look("job") and (found := await self.lookup_job()) is not None:
            return self.use_job(str(found["id"]), "found")
        return None

    async def ensure_job(self, extra: dict[str, Any] | None = None) -> str:
        """The job of this journey instance, making the contact, the job (with ``extra``) and
        their link when it is missing, so an event that overtook its journey_started still
        lands in the right place. A job found by a lookup may be one an earlier attempt made
        before its outcome was lost, with the contact and link it made then: those are found
        and reported too, so the next task of the client knows them."""
        job_id = await self.resolve_job()
        if job_id is None:
            await self.contact()
            job_id = await self.create_job(extra)
        if self.job_how in ("created", "found"):
            await self.link()
        return job_id

    async def create_job(self, extra: dict[str, Any] | None = None) -> str:
        body: dict[str, Any] = {
            **self.job_fields,
            **(extra or {}),
            "externalMappings": [self.maps.make("journey", self.instance)],
        }
        if self.config.job_type:
            type_id = await self.tave.find_by_name(api.JOB_TYPES, self.config.job_type)
            if type_id is None:
                raise PermanentError(
                    f"VSCO Workspace has no job type named {self.config.job_type!r}: "
                    "create it in Settings > Job Types or change the connection's job_type"
                )
            body["jobTypeId"] = type_id
        created = await self.tave.create(api.JOBS, body)
        return self.use_job(str(created["id"]), "created", self.canonical("job", created))

    async def link(self) -> None:
        """The job's client link to the contact: known, found where it may exist, or made."""
        if "job_contact" in self.ids:
            return
        contact_id = await self.contact()
        job_id = self.job_id
        if job_id is None:  # the callers resolve the job first
            raise RuntimeError("link() needs the job")
        known = self._known(
            "job_contact",
            lambda r: (
                r.ref == self.instance
                and r.fields.get("job_id", job_id) == job_id
                and r.fields.get("contact_id", contact_id) == contact_id
            ),
        )
        if known is not None:
            self.use_link(known.vendor_id, job_id, contact_id)
            return
        # A job made in this push has no links yet; one the hub knew on a first attempt has
        # only the links the hub knows of.
        if self.job_how == "found" or (self.job_how != "created" and self.must_look("link")):
            items, _ = await self.tave.page(api.JOB_CONTACTS, jobId=job_id, contactId=contact_id)
            found = next((i for i in items if i.get("contactId") == contact_id), None)
            if found is not None:
                self.use_link(str(found["id"]), job_id, contact_id)
                return
        created = await self.create_naming(
            api.JOB_CONTACTS,
            {"jobId": job_id, "contactId": contact_id, "client": True},
            job=job_id if self.job_how == "known" else None,
            contact=contact_id if self.contact_how == "known" else None,
        )
        self.use_link(str(created["id"]), job_id, contact_id)

    def use_link(self, vendor_id: str, job_id: str, contact_id: str) -> None:
        self.ids["job_contact"] = vendor_id
        fields = {"job_id": job_id, "contact_id": contact_id}
        self.report("job_contact", vendor_id, fields, ref=self.instance)

    async def create_naming(
        self, path: str, body: dict[str, Any], **known_ids: str | None
    ) -> dict[str, Any]:
        """POST a record that names known records (``kind=id``, not yet seen by the vendor in
        this push). When the vendor refuses it and one of them is gone, forget it and handle
        the event again (``_Stale``)."""
        try:
            return await self.tave.create(path, body)
        except PermanentError as exc:
            if exc.vendor_status not in api.MISSING_REFERENCE_STATUSES:
                raise
            gone = [
                (kind, vendor_id)
                for kind, vendor_id in known_ids.items()
                if vendor_id and await self.tave.get(PATHS[kind], vendor_id) is None
            ]
            if not gone:
                raise
            for kind, vendor_id in gone:
                self.forget(kind, vendor_id, ref=self.instance if kind == "job" else None)
            raise _Stale from exc

    # --- events ----------------------------------------------------------------------------------

    async def journey_started(self) -> PushResult:
        await self.contact()
        await self.ensure_job()
        await self.link()
        return self.result()

    async def step_completed(self) -> PushResult:
        job_id = await self.ensure_job()
        key = self.key
        known = self._known("note", lambda r: r.ref == key)
        if known is not None:
            self.use_note(known.vendor_id, job_id)
            return self.result()
        if self.must_look("note"):
            items, _ = await self.tave.page(
                api.NOTES,
                jobId=job_id,
                externalMappingId=api.external_id(key),
                sortBy=api.SORT_MODIFIED_DESC,
                pageSize=api.PAGE_SIZE_MAX,
            )
            ref = html.escape(api.NOTE_REF_PREFIX + key)
            note = next(
                (i for i in items if self.maps.has(i, key) or ref in str(i.get("contentHtml"))),
                None,
            )
            if note is not None:
                self.use_note(str(note["id"]), job_id)
                return self.result()
        body = self._note(job_id, key)
        created = await self.create_naming(
            api.NOTES,
            body,
            job=job_id if self.job_how == "known" else None,
            contact=body.get("contactId") if self.contact_how == "known" else None,
        )
        self.use_note(str(created["id"]), job_id)
        return self.result()

    def use_note(self, vendor_id: str, job_id: str) -> None:
        self.ids["note"] = vendor_id
        self.report("note", vendor_id, {"job_id": job_id}, ref=self.key)

    def _note(self, job_id: str, key: str) -> dict[str, Any]:
        step = self.event.step
        name = step.name if step else "step"
        journey = self.event.journey_name or "journey"
        content = (
            f"<p>{html.escape(journey)}: <strong>{html.escape(name)}</strong> completed</p>"
            f"<p><small>{html.escape(api.NOTE_REF_PREFIX + key)}</small></p>"
        )
        body: dict[str, Any] = {
            "contentHtml": content,
            "jobId": job_id,
            "date": self.event.occurred_at.date().isoformat(),
            "externalMappings": [self.maps.make("note", key)],
        }
        if self.contact_id is not None:
            body["contactId"] = self.contact_id
        return body

    async def set_status(self) -> PushResult:
        name = self.config.status_for(self.event.type)
        if not name:
            return PushResult(status="skipped", detail=f"no lead status set for {self.event.type}")
        status_id = await self.tave.find_by_name(api.LEAD_STATUSES, name)
        if status_id is None:
            raise PermanentError(
                f"VSCO Workspace has no lead status named {name!r}: create it in Settings > "
                "Lead Statuses or change the connection's status settings"
            )
        change = {"leadStatusId": status_id}
        # A job that answers 404 is forgotten, and the next one resolved (a lookup) is tried.
        while (job_id := await self.resolve_job()) and self.job_how in UNWRITTEN:
            answer = await self.tave.update(api.JOBS, job_id, change, missing_ok=True)
            if answer is None:
                self.forget("job", job_id, ref=self.instance)
                continue
            fields = self.written("job", answer, change, extra={"lead_status": name})
            self.use_job(job_id, "updated", fields)
        # A job made here is made with the status.
        await self.ensure_job(change)
        return self.result()

    async def client_updated(self) -> PushResult:
        await self.contact()
        date = self.job_fields.get("eventDate")
        if date:
            # The client's jobs that we made (not every job the studio has with them).
            for known in self.known.all("job"):
                if ("job", known.vendor_id) not in self.gone:
                    await self.move_job(known, date)
        return self.result()

    async def move_job(self, known: KnownRecord, date: str) -> None:
        """Set a known job's wedding date; a job the studio deleted is looked up by its journey
        instance (another may stand for it) but not made again."""
        ref = known.ref or known.fields.get("journey_instance_id")
        vendor_id = known.vendor_id
        if known.fields.get("wedding_date") != date:
            change = {"eventDate": date}
            answer = await self.tave.update(api.JOBS, vendor_id, change, missing_ok=True)
            if answer is None:
                self.forget("job", vendor_id, ref=ref)
                found = await self.find_job(ref) if ref else None
                if found is None:
                    return
                vendor_id = str(found["id"])
                if found.get("eventDate") == date:
                    self.report("job", vendor_id, ref=ref)
                    self.ids.setdefault("job", vendor_id)
                    return
                answer = await self.tave.update(api.JOBS, vendor_id, change) or {}
            self.report("job", vendor_id, self.written("job", answer, change), ref=ref)
        self.ids.setdefault("job", vendor_id)


def _present(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


def _plain(value: Any) -> Any:
    """A mapped value as the pull shows it: a phone object as its number."""
    if isinstance(value, dict):
        return value.get("e164") or value.get("formatted")
    return value


def _same(name: str, new: Any, old: Any) -> bool:
    if name == "phone":
        digits = ["".join(c for c in str(v or "") if c.isdigit()) for v in (new, old)]
        return digits[0] == digits[1]
    if name == "email":
        return str(new or "").strip().casefold() == str(old or "").strip().casefold()
    return new == old


def _differs_from_known(
    mapped: dict[str, Any], known: dict[str, Any], table: dict[str, str]
) -> bool:
    """Whether writing ``mapped`` would change the record as the hub knows it."""
    for key, value in mapped.items():
        name = table.get(key)
        if name is None or not _same(name, _plain(value), known.get(name)):
            return True
    return False


def _differs(record: dict[str, Any], fields: dict[str, Any]) -> bool:
    for key, value in fields.items():
        current = record.get(key)
        if isinstance(value, dict):
            current = current if isinstance(current, dict) else {}
            if any(current.get(k) != v for k, v in value.items()):
                return True
        elif current != value:
            return True
    return False


async def push(
    tave: TaveClient,
    config: TaveConfig,
    event: JourneyEvent,
    mapped: dict[str, Any],
    key: str,
    known: Known,
) -> PushResult:
    pusher = Pusher(tave, config, event, mapped, key, known)
    handlers: dict[str, Callable[[], Awaitable[PushResult]]] = {
        "journey_started": pusher.journey_started,
        "step_completed": pusher.step_completed,
        "client_updated": pusher.client_updated,
        **dict.fromkeys(STATUS_EVENTS, pusher.set_status),
    }
    handler = handlers.get(event.type)
    if handler is None:
        return PushResult(status="skipped", detail=f"{event.type} is not pushed to VSCO Workspace")
    try:
        for _ in range(MAX_ROUNDS):
            try:
                return await handler()
            except _Stale:
                continue  # the deleted records are forgotten: found or made again this round
        raise PermanentError(
            "VSCO Workspace kept refusing records this push names as missing; "
            "the hub's records of this client may be out of date"
        )
    except ConnectorError as exc:
        # What was written or found so far, so the next attempt knows it and makes it once.
        exc.records = pusher.synced()
        raise
