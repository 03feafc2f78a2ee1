"""The ``lightblue`` connector: enquiries into a Light Blue studio's Inbox.

Light Blue's only API is inbound: a form POST to ``api.php`` that drops a "contact form"
message into the studio's Inbox, answered by a status code. There is no read API, so the
connector pushes only (no pull, no webhooks), and its form key needs no ``authenticate``.
"""

from __future__ import annotations

from journeyhub.kit import (
    ConnectorInfo,
    DeliveryTask,
    PushResult,
    RateLimit,
    VendorHttp,
    hookimpl,
    sets_client_fields,
)

from journeyhub_lightblue import client as api
from journeyhub_lightblue.config import (
    DEFAULT_FIELD_MAPPINGS,
    LightBlueConfig,
    LightBlueCredentials,
)

# journey_started: a new enquiry. client_updated: the client's new details, which the studio
# applies to the existing contact from the Inbox. Every request carries the contact and the
# shoot (its date), so only these events, the ones that may set a client's fields, are sent: a
# later event's snapshot would ask the studio to undo a change made in Light Blue.
PUSH_EVENT_TYPES = ("journey_started", "client_updated")


@hookimpl
def journeyhub_connector() -> ConnectorInfo:
    return ConnectorInfo(
        vendor="lightblue",
        display_name="Light Blue",
        capabilities=frozenset({"push"}),
        auth_kind="form_key",
        config_schema=LightBlueConfig,
        credentials_schema=LightBlueCredentials,
        # ASSUMED: no quota is published; a studio's web form sends a few enquiries a day.
        rate_limit=RateLimit(requests=1.0),
        push_event_types=PUSH_EVENT_TYPES,
        default_field_mappings=DEFAULT_FIELD_MAPPINGS,
        docs_url="https://www.lightbluesoftware.com/api/",
    )


@hookimpl
async def journeyhub_push(
    task: DeliveryTask, config: LightBlueConfig, creds: LightBlueCredentials, http: VendorHttp
) -> PushResult:
    event = task.event
    if event is None or not sets_client_fields(event):
        kind = event.type if event is not None else task.kind
        return PushResult(status="skipped", detail=f"Light Blue takes no {kind}")
    fields = api.enquiry(event, task.mapped, config)
    answer = await api.submit(http, config, creds.api_key, fields)
    if answer.code == api.BAD_PARAMETERS:
        raise answer.refused(
            "bad parameters: no parameter Light Blue knows, or a wrong request type; "
            "check the connection's field mappings"
        )
    if answer.code not in (api.OK, api.DUPLICATE):
        raise answer.refused(
            "check the API key on the My Account page and the subscription to Light Blue's "
            "online services"
        )
    # -4: Light Blue already holds this ID from this Source, so this is a retry or replay of a
    # delivery that succeeded; the enquiry is there once.
    stored = answer.code == api.OK
    return PushResult(
        status="delivered" if stored else "already_delivered",
        vendor_status=answer.http_status,
        external_ids={"id": fields[api.ID], "source": config.source},
        detail=f"{answer} (in the studio's Inbox)" if stored else str(answer),
    )


@hookimpl
async def journeyhub_check_connection(
    config: LightBlueConfig, creds: LightBlueCredentials, http: VendorHttp
) -> str:
    """Ask apiCheck.php about the key, as Light Blue's own plug-ins do; nothing is created."""
    answer = await api.check(http, config, creds.api_key)
    if answer.code != api.OK:
        raise answer.refused("the API key was refused")
    return (
        f"{answer}. The key is valid; enquiries go to the studio's Inbox "
        f"(Source {config.source!r}). Light Blue has no read API, so nothing can be listed."
    )
