"""The ``lightblue`` connector: enquiries into a Light Blue studio's Inbox.

Light Blue's only API is inbound: a form POST to ``api.php`` that drops a "contact form"
message into the studio's Inbox, answered by a status code. There is no read API, so the
connector pushes only (no pull, no webhooks).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from journeyhub.errors import PermanentError
from journeyhub.hookspecs import hookimpl
from journeyhub.mapping import apply_mappings, merge_defaults
from journeyhub.model import Connection, ConnectorInfo, DeliveryTask, PushResult, RateLimit
from journeyhub.vendor_http import VendorHttp

from journeyhub_lightblue import client as api
from journeyhub_lightblue.config import (
    DEFAULT_FIELD_MAPPINGS,
    LightBlueConfig,
    LightBlueCredentials,
    api_key,
    load_config,
)
from journeyhub_lightblue.enquiry import PUSH_EVENT_TYPES, form_fields, submission_id

VENDOR = "lightblue"


@hookimpl
def journeyhub_connector() -> ConnectorInfo:
    return ConnectorInfo(
        vendor=VENDOR,
        display_name="Light Blue",
        capabilities=frozenset({"push"}),
        auth_kind="form_key",
        config_schema=LightBlueConfig,
        credentials_schema=LightBlueCredentials,
        rate_limit=RateLimit(requests=api.RATE_LIMIT_PER_SECOND),  # none published
        push_event_types=PUSH_EVENT_TYPES,
        default_field_mappings=DEFAULT_FIELD_MAPPINGS,
        docs_url="https://www.lightbluesoftware.com/api/",
    )


@hookimpl
def journeyhub_authenticate() -> None:
    return None  # a form key: nothing to refresh


@hookimpl
async def journeyhub_push(
    task: DeliveryTask,
    connection: Connection,
    credentials: Mapping[str, Any],
    http: VendorHttp,
) -> PushResult:
    event = task.event
    if event is None or event.type not in PUSH_EVENT_TYPES:
        kind = event.type if event is not None else task.kind
        return PushResult(status="skipped", detail=f"Light Blue takes no {kind}")
    config = load_config(connection)
    lightblue = api.LightBlueClient(
        http, api_key(credentials), config.api_url, config.timeout_seconds
    )
    mapped = task.mapped or apply_mappings(
        merge_defaults(DEFAULT_FIELD_MAPPINGS, connection.field_mappings), event
    )
    answer = await lightblue.submit(form_fields(event, mapped, config))
    ids = {"id": submission_id(event), "source": config.source}
    said = f"Light Blue answered {answer.code}" + (f": {answer.summary}" if answer.summary else "")
    if answer.code == api.OK:
        return PushResult(
            vendor_status=answer.http_status,
            external_ids=ids,
            detail=f"{said} (in the studio's Inbox)",
        )
    if answer.code == api.DUPLICATE:
        # Light Blue already holds this ID from this Source: a retry or replay of a delivery
        # that succeeded; it is there once.
        return PushResult(
            status="already_delivered",
            vendor_status=answer.http_status,
            external_ids=ids,
            detail=said,
        )
    if answer.code == api.BAD_PARAMETERS:
        raise PermanentError(
            f"{said} (bad parameters: no parameter Light Blue knows, or a wrong request type; "
            "check the connection's field mappings)",
            vendor_status=answer.http_status,
        )
    if answer.code == api.HTTPS_REQUIRED:
        raise PermanentError(
            f"configuration error: api_url must be https ({said})",
            vendor_status=answer.http_status,
        )
    raise PermanentError(
        f"{said} (check the API key on the My Account page and the subscription to "
        "Light Blue's online services)",
        vendor_status=answer.http_status,
    )


@hookimpl
async def journeyhub_check_connection(
    connection: Connection, credentials: Mapping[str, Any], http: VendorHttp
) -> str:
    """Ask apiCheck.php about the key, as Light Blue's own plug-ins do; nothing is created."""
    config = load_config(connection)
    lightblue = api.LightBlueClient(
        http, api_key(credentials), config.api_url, config.timeout_seconds
    )
    answer = await lightblue.check()
    said = f"Light Blue answered {answer.code}" + (f": {answer.summary}" if answer.summary else "")
    if answer.code != api.OK:
        if answer.code == api.HTTPS_REQUIRED:
            raise PermanentError(f"configuration error: api_url must be https ({said})")
        raise PermanentError(f"{said} (the API key was refused)", vendor_status=answer.http_status)
    return (
        f"{said}. The key is valid; enquiries go to the studio's Inbox "
        f"(Source {config.source!r}). Light Blue has no read API, so nothing can be listed."
    )
