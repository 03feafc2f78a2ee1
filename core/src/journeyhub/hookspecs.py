# mypy: disable-error-code="empty-body"
"""The hook contract between the kernel and connector plugins.

Every hook name carries the ``journeyhub_`` prefix. Parameters are opt-in: an implementation may
accept fewer arguments than the spec lists, so specs can grow without breaking plugins.

Vendor hooks (``authenticate``, ``push``, ``pull``, ``verify_webhook``, ``handle_webhook``,
``check_connection``, ``oauth_client``) are never broadcast: the kernel routes each call to the
one plugin registered under the connection's vendor name (see :mod:`journeyhub.plugins`). Their
implementations may be ``async def``. Observer hooks are broadcast to every plugin and must be
cheap and synchronous; an exception in one is logged and does not stop the others.

Every vendor hook may take ``config`` and ``creds``: the connection's config and credentials
decoded once by the kernel into the connector's ``config_schema`` and ``credentials_schema``
Structs (``None`` when the connector declares no schema). ``connection.config`` and
``credentials`` stay the raw mappings.

Every hook is documented in ``docs/hooks.md``; a test fails when one is not.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from journeyhub.model import (
        Connection,
        ConnectorInfo,
        DeliveryTask,
        Known,
        OAuthClient,
        PullPage,
        PushResult,
        StoredWebhook,
        Trigger,
        TriggerDraft,
        WebhookReceipt,
    )
    from journeyhub.vendor_http import VendorHttp

PROJECT = "journeyhub"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# ---------------------------------------------------------------------------------------------
# Describe: called once at load, and by `plugins list` / `GET /v1/plugins`
# ---------------------------------------------------------------------------------------------


@hookspec
def journeyhub_connector() -> ConnectorInfo:
    """Describe the connector this plugin provides.

    Returns a :class:`~journeyhub.model.ConnectorInfo`: vendor name (must equal the entry-point
    name), display name, capabilities (``push``, ``pull``, ``webhook``, ``operations``: incident
    notices by push, see ``journeyhub_takes_incidents``), auth kind, the config
    and credentials schemas as msgspec Struct types, the vendor's rate limits, and the webhook
    event types it understands. Called once when the plugin manager loads the plugin.
    """


# ---------------------------------------------------------------------------------------------
# Vendor calls: routed to the plugin that owns ``connection.vendor``
# ---------------------------------------------------------------------------------------------


@hookspec
def journeyhub_authenticate(
    connection: Connection,
    config: Any,
    creds: Any,
    credentials: Mapping[str, Any],
    http: VendorHttp,
    refused: bool,
) -> Mapping[str, Any] | None:
    """Make sure the credentials can be used for the next vendor call.

    For API-key vendors return ``None`` (nothing to do). For OAuth2 vendors refresh the access
    token when it is about to expire, or at once when ``refused`` is true (the vendor answered
    401 to it), and return the new credentials mapping, which the kernel stores encrypted; raise
    :class:`~journeyhub.errors.ReauthRequired` when the refresh token is revoked. Called by
    workers before ``push``, ``pull`` and ``check_connection``, one call at a time per
    connection across every worker, and again with ``refused=True`` after an ``AuthExpired``.
    """


@hookspec
def journeyhub_push(
    task: DeliveryTask,
    connection: Connection,
    config: Any,
    creds: Any,
    credentials: Mapping[str, Any],
    idempotency_key: str,
    http: VendorHttp,
    suppressed: frozenset[str],
    known: Known,
) -> PushResult:
    """Deliver one task to the vendor.

    ``task.event`` (or ``task.trigger``) is what happened, ``task.mapped`` the connection's field
    mappings applied to it (the plugin's default mappings merged with the connection's). Send
    ``idempotency_key`` as the vendor's idempotency header, or use it as a deterministic
    external id, so a repeated call makes one effect. ``suppressed`` holds the addresses among
    the event's client email and ``mapped`` ``to``/``cc``/``bcc`` that are on the tenant's
    suppression list (lower-case): a mailer must not send to them and should return
    ``PushResult(status="skipped")`` when no recipient is left. ``known`` is the vendor id map:
    the records the hub knows for the task's client at this connection (what earlier pushes
    wrote or found, what the pull saw with the client's email) and the task's ``attempt``; use a
    known id directly; when the map is complete (``known.first_attempt``) a record that is not
    known does not exist at the vendor and is created without a lookup; otherwise (a later
    attempt, or an earlier task of the client dead-lettered) look up before creating. Return a
    :class:`~journeyhub.model.PushResult` with the vendor's ids and, in ``records``, every
    record written or found (with its ``ref``); raise a
    :class:`~journeyhub.errors.ConnectorError` subclass on failure, with the records written
    so far in its ``records``. The kernel loads ``suppressed`` and ``known`` only for
    implementations that take them. Called by the push worker, at least once per task.
    """


@hookspec
def journeyhub_push_batch(
    tasks: list[DeliveryTask],
    connection: Connection,
    config: Any,
    creds: Any,
    credentials: Mapping[str, Any],
    idempotency_key: str,
    http: VendorHttp,
    suppressed: frozenset[str],
) -> list[PushResult | Exception]:
    """Optional: deliver several tasks of one connection in one vendor call.

    Implement it when the vendor has a batch endpoint (Resend ``/emails/batch``). Called by the
    push worker for bursts, with at most ``ConnectorInfo.max_batch`` tasks. Return one
    entry per task, in order: a :class:`~journeyhub.model.PushResult`, or the
    :class:`~journeyhub.errors.ConnectorError` for that task. Raise instead when the whole call
    failed. ``idempotency_key`` is deterministic from the task ids; ``suppressed`` as in push.
    """


@hookspec
def journeyhub_pull(
    connection: Connection,
    config: Any,
    creds: Any,
    credentials: Mapping[str, Any],
    cursor: str | None,
    http: VendorHttp,
) -> PullPage:
    """Fetch one page of records changed since ``cursor`` (``None``: from the beginning).

    Return a :class:`~journeyhub.model.PullPage` with the records, the cursor for the next call
    and whether more pages follow. The kernel saves the cursor only after the page's effects are
    stored, so a page may be asked for twice. Called by the sync worker on schedule and on demand.
    """


@hookspec
def journeyhub_verify_webhook(
    connection: Connection,
    config: Any,
    creds: Any,
    credentials: Mapping[str, Any],
    headers: Mapping[str, str],
    body: bytes,
    now: datetime,
    query: Mapping[str, str],
) -> WebhookReceipt:
    """Verify an inbound webhook's signature (or token) and name the vendor's event id.

    ``headers`` have lower-case names; ``query`` is the URL's query string (for senders that
    can only put a token in the URL); ``now`` is the time to check timestamps against. Return a
    :class:`~journeyhub.model.WebhookReceipt`; raise :class:`~journeyhub.errors.WebhookRejected`
    with ``reason`` ``bad_signature``, ``stale`` or ``missing_signature`` otherwise. Called by
    the gateway before anything is acknowledged; it must not call the vendor.
    """


@hookspec
def journeyhub_handle_webhook(
    connection: Connection,
    config: Any,
    creds: Any,
    credentials: Mapping[str, Any],
    webhook: StoredWebhook,
    http: VendorHttp,
) -> list[TriggerDraft] | None:
    """Turn a stored, verified webhook into zero or more trigger drafts.

    The kernel gives each draft its deterministic id, resolves ``client_id`` and publishes it.
    Return ``None`` for an event type the connector does not know (acknowledged and counted,
    not dead-lettered). Vendors whose webhooks are unsigned pings re-fetch the record here.
    Called by the inbound worker, at least once per stored webhook.
    """


@hookspec
def journeyhub_import_csv(
    connection: Connection, config: Any, creds: Any, credentials: Mapping[str, Any], text: str
) -> list[TriggerDraft]:
    """Turn an export file from the vendor (a CSV report) into trigger drafts.

    For vendors without an API for some records (HoneyBook's payments report). Each draft's
    ``source_event_id`` must be deterministic from the row, so importing the same file twice
    makes no second trigger. Raise ``ValueError`` naming the line for a malformed file.
    Called by ``journeyhub connections import-csv``.
    """


@hookspec
def journeyhub_maintain(
    connection: Connection,
    config: Any,
    creds: Any,
    credentials: Mapping[str, Any],
    http: VendorHttp,
    webhook_url: str,
    state: Mapping[str, Any],
) -> Mapping[str, Any] | None:
    """Keep vendor-side resources of a connection alive, such as notification channels.

    ``state`` is what the last call returned (empty the first time); return the new state to
    store, or ``None`` to keep it. ``webhook_url`` is the connection's public webhook address.
    Called by the scheduler every few minutes per connection, by one worker at a time.
    """


@hookspec
def journeyhub_check_connection(
    connection: Connection,
    config: Any,
    creds: Any,
    credentials: Mapping[str, Any],
    http: VendorHttp,
) -> str:
    """Make one cheap authenticated call to the vendor and return what it answered, in words.

    Raise a :class:`~journeyhub.errors.ConnectorError` when the vendor refuses. Called by
    ``POST /v1/connections/{id}/test`` and ``journeyhub connections test``.
    """


@hookspec
def journeyhub_oauth_client(
    connection: Connection, config: Any, credentials: Mapping[str, Any]
) -> OAuthClient:
    """Say how a person connects this connection's vendor account in a browser.

    For connectors with ``auth_kind="oauth2"``: return a :class:`~journeyhub.model.OAuthClient`
    with the vendor's authorization and token endpoints, the OAuth client id and secret (from
    ``credentials`` or the connector's own), the scopes, and extra authorization parameters.
    Raise ``ValueError`` with a sentence for the person when the connection lacks what the
    flow needs (no client id yet). The kernel runs the flow (PKCE S256, one-time state) and
    stores the token answer in the credentials as ``access_token``, ``refresh_token`` (the old
    one kept when none comes back) and ``expires_at`` (epoch seconds), encrypted. Called by the
    gateway when an admin starts the flow (``GET /v1/connections/{id}/oauth/start``, the
    dashboard's Connect button) and again at the callback, before the code is exchanged.
    """


@hookspec
def journeyhub_takes_incidents(connection: Connection, config: Any) -> bool:
    """Whether this connection tells the tenant's operators of incidents.

    Only for connectors whose ``ConnectorInfo.capabilities`` has ``operations``: their push
    then also gets tasks of kind ``incident`` (``task.incident``, an
    :class:`~journeyhub.model.IncidentNotice`). Return True when the connection is set up for
    it (a mailer: an operations address is configured). A connector with the capability and
    no implementation takes every incident. Called by the incident evaluator for each notice,
    before it makes the notice's delivery task; it must not call the vendor.
    """


# ---------------------------------------------------------------------------------------------
# Observers: broadcast to every plugin
# ---------------------------------------------------------------------------------------------


@hookspec
def journeyhub_delivery_finished(
    task: DeliveryTask, result: PushResult | None, error: str | None, attempt: int
) -> None:
    """Observe one push attempt after it is recorded.

    ``result`` is set on success, ``error`` on failure; ``attempt`` counts from 1. Called by the
    push worker for every attempt, successful or not.
    """


@hookspec
def journeyhub_trigger_emitted(trigger: Trigger) -> None:
    """Observe a trigger after it is durably published to ``jh.triggers.<tenant_id>``.

    Called once per new trigger (a repeated source does not call it again).
    """
