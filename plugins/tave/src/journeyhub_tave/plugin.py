"""The ``tave`` connector: VSCO Workspace (formerly Táve). Out: journey events become a contact,
a wedding job linked to it, notes on the job and its lead status. In: REST hook pings (the record
re-read from the API) and a pull of contacts and jobs by ``modified desc``."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from datetime import UTC
from typing import Any

import msgspec
from journeyhub import kit

from journeyhub_tave import client as api
from journeyhub_tave.client import TaveConfig, TaveCredentials
from journeyhub_tave.push import PUSH_EVENT_TYPES, Pusher

_VENUE = (
    "{% set v = event.wedding.venue if event.wedding else none %}{% if v and v.name %}Venue: "
    "{{ v.name }}{% if v.address %}, {{ v.address }}{% endif %}{% endif %}"
)
# Targets are VSCO Workspace field names under "contact." (a Person) and "job." (a Job). A Job
# has no venue field: the venue goes into the job's lead notes.
DEFAULT_FIELD_MAPPINGS = tuple(
    kit.FieldMapping(source=source, target=target, transform=transform, options=options)
    for source, target, transform, options in (
        ("client.name", "contact.firstName", "first_name", {}),
        ("client.name", "contact.lastName", "last_name", {}),
        ("client.email", "contact.email", "strip", {}),
        ("client.phone", "contact.cellPhone.formatted", "strip", {}),
        ("wedding.date", "job.eventDate", "date:%Y-%m-%d", {}),
        ("wedding.guest_count", "job.guestCount", "int", {}),
        ("client.name", "job.name", "template", {"template": "{{ event.client.name }} wedding"}),
        ("wedding.venue.name", "job.leadNotes", "template", {"template": _VENUE}),
    )
)


def _client(config: TaveConfig, creds: TaveCredentials, http: kit.VendorHttp) -> api.TaveClient:
    return api.TaveClient(http, creds.api_key, config.api_base, config.timeout_seconds)


@kit.hookimpl
def journeyhub_connector() -> kit.ConnectorInfo:
    return kit.ConnectorInfo(
        vendor="tave",
        display_name="Tave (VSCO Workspace)",
        capabilities=frozenset({"push", "pull", "webhook"}),
        auth_kind="api_key",
        config_schema=TaveConfig,
        credentials_schema=TaveCredentials,
        # ASSUMED: no quota is published, but the API answers 429 with a Retry-After.
        rate_limit=kit.RateLimit(requests=5.0),
        webhook_event_types=HOOK_EVENTS,
        push_event_types=PUSH_EVENT_TYPES,
        default_field_mappings=DEFAULT_FIELD_MAPPINGS,
        docs_url="https://workspace.vsco.co/api",
    )


@kit.hookimpl
async def journeyhub_push(
    task: kit.DeliveryTask,
    config: TaveConfig,
    creds: TaveCredentials,
    idempotency_key: str,
    http: kit.VendorHttp,
    known: kit.Known,
) -> kit.PushResult:
    if task.event is None:
        return kit.PushResult(status="skipped", detail="only journey events are pushed to Tave")
    return await Pusher(_client(config, creds, http), config, task, idempotency_key, known).push()


# Each run walks contacts, jobs, then payments. Hidden contacts come back flagged; closed jobs
# are listed too (a Job has no hidden field). Payments are read for the ones posted since.
PULLED = {"contact": api.CONTACTS, "job": api.JOBS, "payment": api.PAYMENTS}
SHOW = {"contact": {"includeHidden": "true"}, "job": {"includeClosed": "true"}, "payment": {}}
AFTER = {"contact": "job", "job": "payment", "payment": "contact"}
CLIENT_KINDS = {"person", "company"}  # employees and locations are not the studio's clients


class Mark(msgspec.Struct, kw_only=True):
    at: str | None = None
    ids: list[str] = []


class Run(Mark, kw_only=True):
    total: int | None = None


class Cursor(msgspec.Struct, kw_only=True):
    v: int = 1
    kind: str = "contact"
    page: int = 1
    marks: dict[str, Mark] = {}  # the watermark of the last finished run, by kind
    run: Run = msgspec.field(default_factory=Run)  # the run in progress

    def then(
        self, records: list[Any], more: bool = True, triggers: Any = (), **changes: Any
    ) -> kit.PullPage:
        following = msgspec.json.encode(msgspec.structs.replace(self, **changes)).decode()
        return kit.PullPage(
            records=records, next_cursor=following, has_more=more, triggers=list(triggers)
        )


@kit.hookimpl
async def journeyhub_pull(
    config: TaveConfig, creds: TaveCredentials, cursor: str | None, http: kit.VendorHttp
) -> kit.PullPage:
    """Contacts and jobs changed since the last sync. The API cannot filter by time, so a run
    walks each collection, newest ``modified`` first, down to the last run's newest (``marks``);
    the same cursor asks for the same page. A record changed mid-run jumps to page 1, already
    read, and is newer than this run's top (``run``): the next run gets it. Records deleted
    mid-run shift the pages up: the drop in ``meta.totalItems`` restarts the walk."""
    try:
        state = msgspec.json.decode(cursor, type=Cursor) if cursor else Cursor()
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise kit.PermanentError(f"unreadable Tave pull cursor: {exc}") from None
    if state.kind not in PULLED or state.page < 1:
        raise kit.PermanentError("unreadable Tave pull cursor: bad kind or page")
    kind, mark, run = state.kind, state.marks.get(state.kind, Mark()), state.run
    params = {"page": state.page, **api.NEWEST, "pageSize": config.page_size, **SHOW[kind]}
    items, meta = await _client(config, creds, http).page(PULLED[kind], **params)
    total = meta.get("totalItems") if isinstance(meta.get("totalItems"), int) else None
    if state.page > 1 and run.total is not None and total is not None and total < run.total:
        return state.then([], page=1, run=Run())  # records vanished, pages moved up: walk again
    watermark, records, reached = api.parse_time(mark.at), [], False
    triggers: list[kit.TriggerDraft] = []
    top, top_ids = api.parse_time(run.at), list(run.ids)
    for item in items:
        modified = api.parse_time(item.get("modified"))
        if not item.get("id") or modified is None:
            continue
        if watermark is not None and modified < watermark:
            reached = True  # everything further down is older still
            break
        record_id = str(item["id"])
        if top is None or modified > top:
            top, top_ids = modified, [record_id]
        elif modified == top and record_id not in top_ids:
            top_ids.append(record_id)
        # Records stamped in the watermark's own second are read again: the API's times have
        # one-second resolution, so an edit made in the second of the last sync looks the same
        # by time alone. The kernel compares fingerprints, so re-reading them emits nothing.
        if kind == "payment":  # none on the first run: it only sets the watermark
            draft = payment_trigger(item) if kind in state.marks else None
            triggers += [draft] if draft else []
        elif kind == "job" or item.get("kind") in CLIENT_KINDS:
            records.append(api.read_record(kind, item, config))
    at = top.astimezone(UTC).isoformat().replace("+00:00", "Z") if top else None
    run = Run(at=at, ids=top_ids, total=total)
    last_page = int(meta.get("totalPages") or 0) <= state.page or len(items) < config.page_size
    if not reached and not last_page:
        return state.then(records, page=state.page + 1, run=run, triggers=triggers)
    # This collection is done: its new watermark is the newest record this run saw.
    marks = dict(state.marks)
    if run.at is not None:
        ids = run.ids + [i for i in mark.ids if i not in run.ids] if run.at == mark.at else run.ids
        marks[kind] = Mark(at=run.at, ids=ids)
    marks.setdefault(kind, mark)  # a run has been made: the payments found next are new
    more = kind != "payment"  # the payments end the run
    step = dict(kind=AFTER[kind], page=1, marks=marks, run=Run(), triggers=triggers)
    return state.then(records, more, **step)


# REST hooks are unsigned pings naming a record: the gateway takes one only with the
# connection's token in the hook URL (?token=), and the record is read from the API, not the ping.
HOOK_EVENTS = ("contact.created", "job.created", "order.booked", "payment.created")
READ = {
    "contact.created": api.CONTACTS,
    "job.created": api.JOBS,
    "order.booked": api.ORDERS,
    "payment.created": api.PAYMENTS,
}
# Scheduled ("future", "confirmed-future") and in-flight ("pending") payments are not received
# yet: no hook fires when they are posted, so the pull's walk of payments by ``modified`` finds it.
PAYMENT_TRIGGERS: dict[str, Any] = {"posted": "payment_received", "failed": "payment_failed"}


def payment_trigger(payment: dict[str, Any]) -> kit.TriggerDraft | None:
    """A posted or failed payment's trigger, once per payment and outcome: the hook and the pull
    give it the same source id, so the hub keeps one."""
    if (kind := PAYMENT_TRIGGERS.get(str(payment.get("status")))) is None or not payment.get("id"):
        return None
    payment_id, job_id = str(payment["id"]), payment.get("jobId")
    data = {k: payment.get(k) for k in ("amount", "status", "received")}
    return kit.TriggerDraft(
        type=kind,
        source_event_id=f"payment:{payment_id}:{payment['status']}",
        occurred_at=api.parse_time(payment.get("modified") or payment.get("created")),
        vendor_record_id=job_id,  # the hub knows our jobs: their client is the payment's
        data=data | {"payment_id": payment_id, "job_id": job_id},
    )


def parse_ping(body: bytes, query: Mapping[str, str | None]) -> tuple[str, str | None]:
    """``(targetId, event)`` from a ping; ``WebhookRejected("bad_body")`` for anything else."""
    try:
        ping = msgspec.json.decode(body)
    except msgspec.DecodeError:
        raise kit.WebhookRejected("bad_body", "the body is not JSON") from None
    if not isinstance(ping, dict):
        raise kit.WebhookRejected("bad_body", "the body is not a JSON object")
    target = ping.get("targetId")  # the only field the docs promise in a ping
    if isinstance(target, int) and not isinstance(target, bool):
        target = str(target)
    if not isinstance(target, str) or not 0 < len(target) <= 64:
        raise kit.WebhookRejected("bad_body", "no targetId in the ping")
    # ASSUMED: where a ping names its event; else ?event= in the hook URL.
    event = next((ping[f] for f in ("event", "type") if isinstance(ping.get(f), str)), None)
    event = event or query.get("event")
    if event is not None and event not in HOOK_EVENTS:
        raise kit.WebhookRejected("bad_body", "unknown event name")
    return target, event


@kit.hookimpl
def journeyhub_verify_webhook(
    credentials: Mapping[str, Any], body: bytes, query: Mapping[str, str]
) -> kit.WebhookReceipt:
    if not (token := query.get("token")):
        raise kit.WebhookRejected("missing_signature", "the hook URL has no ?token=")
    expected = credentials.get("webhook_token")
    if not isinstance(expected, str) or not expected or not isinstance(token, str):
        raise kit.WebhookRejected("bad_token", "this connection has no webhook_token")
    # surrogatepass: a garbage query string must be rejected, not crash the encoder.
    given, expected = (t.encode("utf-8", "surrogatepass") for t in (token, expected))
    if not hmac.compare_digest(given, expected):
        raise kit.WebhookRejected("bad_token", "the token does not match this connection")
    target, event = parse_ping(body, query)
    # Each hook fires once per record it names ("created", "booked"): event + record is the
    # natural dedupe key for a redelivered ping.
    return kit.WebhookReceipt(event_id=f"{event or 'unknown'}:{target}", event_type=event)


@kit.hookimpl
async def journeyhub_handle_webhook(
    config: TaveConfig, creds: TaveCredentials, webhook: kit.StoredWebhook, http: kit.VendorHttp
) -> list[kit.TriggerDraft] | None:
    tave = _client(config, creds, http)
    target, event = parse_ping(webhook.body, {"event": webhook.event_type or None})
    if event not in READ:
        return None
    if (record := await tave.get(READ[event], target)) is None:
        return []  # deleted since the ping: nothing left to tell
    if event == "contact.created":
        pulled = api.read_record("contact", record, config)
        data = {"contact_id": pulled.vendor_id, **pulled.fields}
        client = pulled.our_id, pulled.fields.get("email")
        return [_draft("client_updated", webhook, record, client, pulled.vendor_id, data)]
    if event == "payment.created":
        if (draft := payment_trigger(record)) is None:
            return []
        draft.client_id, draft.client_email = await _client_of_job(
            tave, config, draft.vendor_record_id
        )
        return [draft]
    if event == "job.created":
        pulled = api.read_record("job", record, config)
        job_id, data = pulled.vendor_id, {"job_id": pulled.vendor_id, **pulled.fields}
    else:  # order.booked: the booking itself, with the order's total and booking date
        job_id = record.get("jobId")
        data = {"status": "booked", "order_id": target, "job_id": job_id}
        data |= {"amount": record.get("total"), "date": record.get("bookedOn")}
    client = await _client_of_job(tave, config, job_id)
    return [_draft("project_status_changed", webhook, record, client, job_id, data)]


def _draft(
    kind: Any, webhook: kit.StoredWebhook, record: Any, client: Any, record_id: Any, data: Any
) -> kit.TriggerDraft:
    return kit.TriggerDraft(
        type=kind,
        source_event_id=webhook.event_id,
        occurred_at=api.parse_time(record.get("created")),
        client_id=client[0],
        client_email=client[1],
        vendor_record_id=record_id,
        data=data,
    )


async def _client_of_job(tave: api.TaveClient, config: TaveConfig, job_id: Any) -> tuple[Any, Any]:
    links, _ = await tave.page(api.JOB_CONTACTS, jobId=job_id) if job_id else ([], {})
    links.sort(key=lambda link: not link.get("client"))
    for link in links:
        if (cid := link.get("contactId")) and (contact := await tave.get(api.CONTACTS, str(cid))):
            return config.ours(contact, "client"), contact.get("email")
    return None, None


@kit.hookimpl
async def journeyhub_check_connection(
    config: TaveConfig, creds: TaveCredentials, http: kit.VendorHttp
) -> str:
    tave = _client(config, creds, http)
    studio = await tave.request("GET", "/studio/me")  # the cheap authenticated call
    name = studio.get("name") if isinstance(studio, dict) else None
    return f"VSCO Workspace answered {tave.last_status}: studio {name!r}"
