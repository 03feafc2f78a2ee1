"""The ``studioninja`` connector: Studio Ninja through the two channels its users really have.

Studio Ninja has no API and no Zapier app. In: it syncs its jobs into the user's Google
Calendar, which this connector reads with journeyhub_gcal's OAuth and sync machinery. Out: new
leads go through the studio's own enquiry (contact) form.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from journeyhub.errors import PermanentError, RetryableError
from journeyhub.hookspecs import hookimpl
from journeyhub.mapping import apply_mappings, merge_defaults
from journeyhub.model import (
    Connection,
    ConnectorInfo,
    DeliveryTask,
    PullPage,
    PushResult,
    RateLimit,
)
from journeyhub.vendor_http import VendorHttp
from journeyhub_gcal import authenticate, refresh_access_token
from journeyhub_gcal.client import GcalClient

from journeyhub_studioninja import client as form_client
from journeyhub_studioninja.config import (
    DEFAULT_FIELD_MAPPINGS,
    StudioNinjaConfig,
    StudioNinjaCredentials,
    load_config,
)
from journeyhub_studioninja.enquiry import (
    LEDGER,
    PUSH_EVENT_TYPES,
    SENT,
    form_fields,
    submission_id,
)
from journeyhub_studioninja.pull import pull_page

VENDOR = "studioninja"


@hookimpl
def journeyhub_connector() -> ConnectorInfo:
    return ConnectorInfo(
        vendor=VENDOR,
        display_name="Studio Ninja",
        capabilities=frozenset({"pull", "push"}),
        auth_kind="oauth2",  # Google's, for the calendar Studio Ninja syncs into
        config_schema=StudioNinjaConfig,
        credentials_schema=StudioNinjaCredentials,
        # Pushes are posts to a studio's public form; none are published, so be gentle.
        rate_limit=RateLimit(requests=form_client.RATE_LIMIT_PER_SECOND),
        push_event_types=PUSH_EVENT_TYPES,
        default_field_mappings=DEFAULT_FIELD_MAPPINGS,
        # No notifications are set up on Studio Ninja's calendar: the schedule is the trigger.
        pull_interval_seconds=900.0,
        docs_url="https://help.studioninja.co/en/articles/425838-getting-started-with-the-calendar",
    )


@hookimpl
async def journeyhub_authenticate(
    connection: Connection, credentials: Mapping[str, Any], http: VendorHttp, refused: bool
) -> Mapping[str, Any] | None:
    gcal = load_config(connection).gcal()
    if refused:  # Google answered 401 to this token: refresh now, whatever its expiry says
        return await refresh_access_token(http, gcal, credentials)
    return await authenticate(http, gcal, credentials)


@hookimpl
async def journeyhub_pull(
    connection: Connection,
    credentials: Mapping[str, Any],
    cursor: str | None,
    http: VendorHttp,
) -> PullPage:
    return await pull_page(http, load_config(connection), credentials, cursor)


@hookimpl
async def journeyhub_push(
    task: DeliveryTask, connection: Connection, http: VendorHttp
) -> PushResult:
    event = task.event
    if event is None or event.type not in PUSH_EVENT_TYPES:
        kind = event.type if event is not None else task.kind
        return PushResult(status="skipped", detail=f"Studio Ninja's enquiry form takes no {kind}")
    config = load_config(connection)
    if config.enquiry_form_url is None:
        raise PermanentError("no enquiry_form_url in the connection's config: cannot send leads")
    mapped = task.mapped or apply_mappings(
        merge_defaults(DEFAULT_FIELD_MAPPINGS, connection.field_mappings), event
    )
    fields = form_fields(event, mapped, config)
    enquiry = submission_id(event)
    ids = {"enquiry": enquiry}
    state = LEDGER.begin(connection.id, enquiry)
    if state == SENT:
        return PushResult(
            status="already_delivered",
            external_ids=ids,
            detail="this enquiry was already posted to the form",
        )
    if state is not None:
        raise RetryableError("this enquiry is being posted by another delivery; retry later")
    form = form_client.EnquiryForm(
        http, config.enquiry_form_url, config.enquiry_encoding, config.timeout_seconds
    )
    try:
        answer = await form.submit(fields)
    except BaseException:
        LEDGER.release(connection.id, enquiry)
        raise
    LEDGER.sent(connection.id, enquiry)
    return PushResult(
        vendor_status=answer.status,
        external_ids=ids,
        detail=f"Studio Ninja's enquiry form answered {answer.status}: a new lead",
    )


@hookimpl
async def journeyhub_check_connection(
    connection: Connection, credentials: Mapping[str, Any], http: VendorHttp
) -> str:
    config = load_config(connection)
    gcal = config.gcal()
    # The check may get stored credentials with a stale token: refresh for this call only.
    fresh = await authenticate(http, gcal, credentials) or credentials
    cal = GcalClient(http, gcal, fresh)
    calendar = await cal.calendar()
    name = calendar.get("summary") or calendar.get("id")
    said = f"Google Calendar answered {cal.last_status}: calendar {name!r}"
    if config.enquiry_form_url is None:
        return said + "; no enquiry form configured (no push)"
    form = form_client.EnquiryForm(
        http, config.enquiry_form_url, config.enquiry_encoding, config.timeout_seconds
    )
    page = await form.check()
    return said + f"; the enquiry form answered {page.status}"
