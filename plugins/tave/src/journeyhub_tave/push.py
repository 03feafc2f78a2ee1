"""Journey events out to VSCO Workspace: contacts, wedding jobs, notes, lead statuses.

Every step is a lookup before a create, keyed by our ids in the records' ``externalMappings``,
so a push repeated after a crash at any point ends with one contact, one job, one link and one
note per step.
"""

from __future__ import annotations

import html
from typing import Any

from journeyhub.errors import PermanentError
from journeyhub.model import JourneyEvent, PushResult, SyncedRecord

from journeyhub_tave import client as api
from journeyhub_tave.client import TaveClient
from journeyhub_tave.config import TaveConfig

STATUS_EVENTS = ("journey_completed", "journey_paused", "journey_failed")
PUSH_EVENT_TYPES = ("journey_started", "step_completed", *STATUS_EVENTS, "client_updated")


class Pusher:
    def __init__(self, tave: TaveClient, config: TaveConfig, event: JourneyEvent, mapped: dict):
        self.tave = tave
        self.config = config
        self.maps = config.mappings
        self.event = event
        self.contact_fields: dict[str, Any] = dict(mapped.get("contact") or {})
        self.job_fields: dict[str, Any] = dict(mapped.get("job") or {})
        self.ids: dict[str, str] = {}
        self._job: dict[str, Any] | None = None
        self._job_looked_up = False
        # The records as this push left them, reported in the pull's own fields so the sync
        # recognises them as our echo when they come back.
        self.written: dict[str, dict[str, Any]] = {}

    def wrote(
        self, kind: str, record: dict[str, Any] | None, changes: dict[str, Any] | None = None
    ) -> None:
        if isinstance(record, dict) and record.get("id"):
            self.written[kind] = {**record, **(changes or {})}

    def result(self, detail: str | None = None) -> PushResult:
        from journeyhub_tave.pull import contact_record, job_record

        records = []
        for kind, record in self.written.items():
            pulled = (contact_record if kind == "contact" else job_record)(record, self.maps)
            fields = {k: v for k, v in pulled.fields.items() if v is not None}
            email = fields.get("email") if kind == "contact" else None
            records.append(
                SyncedRecord(
                    kind=kind,
                    vendor_id=pulled.vendor_id,
                    fields=fields,
                    our_id=self.event.client.id,
                    email=email,
                )
            )
        return PushResult(
            vendor_status=self.tave.last_status,
            external_ids=self.ids,
            detail=detail,
            records=records,
        )

    # --- contact ----------------------------------------------------------------------------------

    async def find_contact(self) -> dict[str, Any] | None:
        """Our contact. The contact list cannot be filtered by externalMappingId, so look
        through this journey's job (which can), then by email (the list's documented filter),
        then among the most recently modified contacts (where one we created a moment ago,
        before a crash, is)."""
        client_id = self.event.client.id
        job = await self.job()
        if job is not None:
            links, _ = await self.tave.page(api.JOB_CONTACTS, jobId=str(job["id"]))
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

    async def upsert_contact(self) -> str:
        found = await self.find_contact()
        fields = {k: v for k, v in self.contact_fields.items() if v is not None}
        if found is None:
            body = {
                "kind": "person",
                **fields,
                "externalMappings": [self.maps.make("client", self.event.client.id)],
            }
            created = await self.tave.create(api.CONTACTS, body)
            self.ids["contact"] = str(created["id"])
            self.wrote("contact", created)
        else:
            self.ids["contact"] = str(found["id"])
            if fields and _differs(found, fields):
                await self.tave.update(api.CONTACTS, self.ids["contact"], fields)
                self.wrote("contact", found, fields)
        return self.ids["contact"]

    # --- job ----------------------------------------------------------------------------------------

    async def job(self) -> dict[str, Any] | None:
        """This journey instance's job (looked up once per push)."""
        if not self._job_looked_up:
            self._job, self._job_looked_up = await self.find_job(), True
        return self._job

    async def find_job(self) -> dict[str, Any] | None:
        instance = self.event.journey_instance_id
        items, _ = await self.tave.page(
            api.JOBS,
            externalMappingId=api.external_id(instance),
            includeClosed="true",
            sortBy=api.SORT_MODIFIED_DESC,
            pageSize=api.PAGE_SIZE_MAX,
        )
        return next((i for i in items if self.maps.has(i, instance)), None)

    async def ensure_job(self) -> str:
        """The job of this journey instance, creating the contact, job and link if missing
        (so an event that overtook its journey_started still lands in the right place)."""
        job = await self.job()
        if job is not None:
            self.ids["job"] = str(job["id"])
            return self.ids["job"]
        return await self.create_job(await self.upsert_contact())

    async def create_job(self, contact_id: str) -> str:
        body: dict[str, Any] = {
            **{k: v for k, v in self.job_fields.items() if v is not None},
            "externalMappings": [self.maps.make("journey", self.event.journey_instance_id)],
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
        self.wrote("job", created)
        self._job, self._job_looked_up = created, True
        self.ids["job"] = str(created["id"])
        await self.link(contact_id, self.ids["job"])
        return self.ids["job"]

    async def link(self, contact_id: str, job_id: str) -> None:
        items, _ = await self.tave.page(api.JOB_CONTACTS, jobId=job_id, contactId=contact_id)
        found = next((i for i in items if i.get("contactId") == contact_id), None)
        if found is None:
            found = await self.tave.create(
                api.JOB_CONTACTS, {"jobId": job_id, "contactId": contact_id, "client": True}
            )
        self.ids["job_contact"] = str(found["id"])

    # --- events ---------------------------------------------------------------------------------------

    async def journey_started(self) -> PushResult:
        contact_id = await self.upsert_contact()
        job = await self.job()
        if job is None:
            await self.create_job(contact_id)
        else:
            # Delivered again after the job was made: the link may be what a crash interrupted.
            self.ids["job"] = str(job["id"])
            await self.link(contact_id, self.ids["job"])
        return self.result()

    async def step_completed(self, key: str) -> PushResult:
        job_id = await self.ensure_job()
        items, _ = await self.tave.page(
            api.NOTES,
            jobId=job_id,
            externalMappingId=api.external_id(key),
            sortBy=api.SORT_MODIFIED_DESC,
            pageSize=api.PAGE_SIZE_MAX,
        )
        ref = html.escape(api.NOTE_REF_PREFIX + key)
        note = next(
            (i for i in items if self.maps.has(i, key) or ref in str(i.get("contentHtml"))), None
        )
        if note is None:
            note = await self.tave.create(api.NOTES, self._note(job_id, key))
        self.ids["note"] = str(note["id"])
        return self.result()

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
        if "contact" in self.ids:
            body["contactId"] = self.ids["contact"]
        return body

    async def set_status(self) -> PushResult:
        name = self.config.status_for(self.event.type)
        if not name:
            return PushResult(status="skipped", detail=f"no lead status set for {self.event.type}")
        job_id = await self.ensure_job()
        status_id = await self.tave.find_by_name(api.LEAD_STATUSES, name)
        if status_id is None:
            raise PermanentError(
                f"VSCO Workspace has no lead status named {name!r}: create it in Settings > "
                "Lead Statuses or change the connection's status settings"
            )
        await self.tave.update(api.JOBS, job_id, {"leadStatusId": status_id})
        return self.result()

    async def client_updated(self) -> PushResult:
        contact_id = await self.upsert_contact()
        date = self.job_fields.get("eventDate")
        if date:
            # The client's jobs that we made (not every job the studio has with them).
            links, _ = await self.tave.page(
                api.JOB_CONTACTS, contactId=contact_id, pageSize=api.PAGE_SIZE_MAX
            )
            for job_id in dict.fromkeys(str(link["jobId"]) for link in links if link.get("jobId")):
                job = await self.tave.get(api.JOBS, job_id)
                if job is None or self.maps.ours(job, "journey") is None:
                    continue
                if job.get("eventDate") != date:
                    await self.tave.update(api.JOBS, job_id, {"eventDate": date})
                    self.wrote("job", job, {"eventDate": date})
                self.ids.setdefault("job", job_id)
        return self.result()


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
    tave: TaveClient, config: TaveConfig, event: JourneyEvent, mapped: dict, key: str
) -> PushResult:
    pusher = Pusher(tave, config, event, mapped)
    if event.type == "journey_started":
        return await pusher.journey_started()
    if event.type == "step_completed":
        return await pusher.step_completed(key)
    if event.type in STATUS_EVENTS:
        return await pusher.set_status()
    if event.type == "client_updated":
        return await pusher.client_updated()
    return PushResult(status="skipped", detail=f"{event.type} is not pushed to VSCO Workspace")
