"""The ``studioninja`` connector. Studio Ninja has no API and no Zapier app. In: it syncs its jobs
into the user's Google Calendar, read with journeyhub_gcal's OAuth and sync machinery (paging,
sync tokens, the 410 resync, the cursor). Out: new leads go through the studio's enquiry form."""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

from journeyhub.kit import (
    Connection,
    ConnectorInfo,
    DeliveryTask,
    PermanentError,
    PullPage,
    PushResult,
    RateLimit,
    VendorHttp,
    hookimpl,
)
from journeyhub_gcal import (
    GcalClient,
    GcalCredentials,
    authenticate,
    list_events_page,
    refresh_access_token,
)

from journeyhub_studioninja import enquiry
from journeyhub_studioninja.config import DEFAULT_FIELD_MAPPINGS, StudioNinjaConfig
from journeyhub_studioninja.entries import job_records, shoot_record

# A new journey is a new enquiry; the form takes nothing else (no update, no outcome).
PUSH_EVENT_TYPES = ("journey_started",)


@hookimpl
def journeyhub_connector() -> ConnectorInfo:
    return ConnectorInfo(
        vendor="studioninja",
        display_name="Studio Ninja",
        capabilities=frozenset({"pull", "push"}),
        auth_kind="oauth2",  # Google's, for the calendar Studio Ninja syncs into
        config_schema=StudioNinjaConfig,
        credentials_schema=GcalCredentials,  # Google's: Studio Ninja has no API of its own
        # Pushes are posts to a studio's public form; no limit is published, so be gentle.
        rate_limit=RateLimit(requests=enquiry.RATE_LIMIT_PER_SECOND),
        push_event_types=PUSH_EVENT_TYPES,
        default_field_mappings=DEFAULT_FIELD_MAPPINGS,
        # No notifications are set up on Studio Ninja's calendar: the schedule is the trigger.
        pull_interval_seconds=900.0,
        docs_url="https://help.studioninja.co/en/articles/425838-getting-started-with-the-calendar",
    )


@hookimpl
async def journeyhub_authenticate(
    config: StudioNinjaConfig, credentials: Mapping[str, Any], http: VendorHttp, refused: bool
) -> Mapping[str, Any] | None:
    if refused:  # Google answered 401 to this token: refresh now, whatever its expiry says
        return await refresh_access_token(http, config.gcal(), credentials)
    return await authenticate(http, config.gcal(), credentials)


@hookimpl
async def journeyhub_pull(
    config: StudioNinjaConfig, credentials: Mapping[str, Any], cursor: str | None, http: VendorHttp
) -> PullPage:
    entries = partial(shoot_record, config=config)  # which events are Studio Ninja's entries
    page = await list_events_page(http, config.gcal(), credentials, cursor, record=entries)
    records = [record for shoot in page.records for record in (shoot, *job_records(shoot))]
    return PullPage(records=records, next_cursor=page.next_cursor, has_more=page.has_more)


@hookimpl
async def journeyhub_push(
    task: DeliveryTask, connection: Connection, config: StudioNinjaConfig, http: VendorHttp
) -> PushResult:
    event = task.event
    if event is None or event.type not in PUSH_EVENT_TYPES:
        kind = event.type if event is not None else task.kind
        return PushResult(status="skipped", detail=f"Studio Ninja's enquiry form takes no {kind}")
    url = config.enquiry_form_url
    if url is None:
        raise PermanentError("no enquiry_form_url in the connection's config: cannot send leads")
    fields = enquiry.form_fields(event, task.mapped, config)
    ids = {"enquiry": enquiry.submission_id(event)}
    status = await enquiry.post(http, url, config, (connection.id, ids["enquiry"]), fields)
    if status is None:
        detail = "this enquiry was already posted to the form"
        return PushResult(status="already_delivered", external_ids=ids, detail=detail)
    detail = f"Studio Ninja's enquiry form answered {status}: a new lead"
    return PushResult(vendor_status=status, external_ids=ids, detail=detail)


@hookimpl
async def journeyhub_check_connection(
    config: StudioNinjaConfig, credentials: Mapping[str, Any], http: VendorHttp
) -> str:
    gcal = config.gcal()
    # The check may get stored credentials with a stale token: refresh for this call only.
    cal = GcalClient(http, gcal, await authenticate(http, gcal, credentials) or credentials)
    calendar = await cal.calendar()
    name = calendar.get("summary") or calendar.get("id")
    said = f"Google Calendar answered {cal.last_status}: calendar {name!r}"
    if config.enquiry_form_url is None:
        return said + "; no enquiry form configured (no push)"
    page = await enquiry.load_page(http, config.enquiry_form_url, config)
    return said + f"; the enquiry form answered {page}"
