"""Connecting a vendor account in a browser: the OAuth 2.0 authorization-code flow with PKCE
(S256) and a one-time state, run with authlib's client.

- :func:`start` keeps a new request in the store (``store/oauth.py``: one-time, expiring in
  :data:`STATE_TTL`, bound to the tenant's connection, the PKCE verifier encrypted and never
  sent anywhere but the token endpoint) and gives the vendor's consent URL.
- :func:`finish` takes the request back by the state the vendor's redirect carries, exchanges
  the code at the token endpoint, stores the tokens in the connection's credentials
  (encrypted), takes the connection out of ``needs_reauth`` and audits it.

The kernel knows no vendor: the connector says where its endpoints are and which client,
scopes and parameters to use (``journeyhub_oauth_client``). Every refusal is an
:class:`OAuthFailed` with a sentence for the person at the browser; nothing changes on one.
"""

from __future__ import annotations

import secrets
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from authlib.deprecate import AuthlibDeprecationWarning
from authlib.integrations.base_client.errors import OAuthError

from journeyhub.errors import ConnectorNotFound
from journeyhub.hub import Hub
from journeyhub.logs import get_logger
from journeyhub.model import Connection, OAuthClient
from journeyhub.services.errors import InvalidInput
from journeyhub.store.oauth import OAuthRepo, StateRefused

# authlib 1.9 prefers the httpx2 fork and warns, once per process, when it falls back to httpx,
# which is what the hub ships (and what the client runs on either way).
with warnings.catch_warnings():
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.httpx_client import AsyncOAuth2Client

log = get_logger(__name__)

STATE_TTL = timedelta(minutes=10)
CALLBACK_PATH = "/oauth/callback"
TOKEN_TIMEOUT_SECONDS = 15.0
AGAIN = "Start again from the connection's page in the dashboard."
STATE_REFUSALS = {
    "unknown": "This authorization is not one the hub started, or it is too old. " + AGAIN,
    "used": "This authorization was already used: each one works once. " + AGAIN,
    "expired": "This authorization expired: it lasts 10 minutes. " + AGAIN,
}


class OAuthFailed(Exception):
    """The flow stopped; ``message`` says why to the person at the browser. ``connection_id``
    is set when the request was ours (the page links back to the connection)."""

    def __init__(self, message: str, *, reason: str, connection_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason  # access_denied, state_used, token_refused, …: for tests and logs
        self.connection_id = connection_id


@dataclass(frozen=True)
class Authorization:
    url: str  # the vendor's consent screen, with the state and the PKCE challenge
    expires_at: datetime


def callback_url(hub: Hub) -> str:
    """The redirect URI to register with the vendor's OAuth client."""
    return hub.settings.effective_public_url + CALLBACK_PATH


def uses_oauth(hub: Hub, connection: Connection) -> bool:
    """Whether the connection's connector connects accounts through this flow."""
    loaded = hub.registry.connectors.get(connection.vendor)
    return (
        loaded is not None
        and loaded.info.auth_kind == "oauth2"
        and hub.registry.implements(connection.vendor, "journeyhub_oauth_client")
    )


async def _client(hub: Hub, connection: Connection, credentials: Mapping[str, Any]) -> OAuthClient:
    if not uses_oauth(hub, connection):
        raise InvalidInput(f"the {connection.vendor} connector does not connect through OAuth")
    try:
        client: OAuthClient = await hub.registry.call(
            connection.vendor,
            "journeyhub_oauth_client",
            connection=connection,
            credentials=credentials,
        )
    except (ValueError, ConnectorNotFound) as exc:
        raise InvalidInput(str(exc)) from None
    if not client.client_id:
        raise InvalidInput("the connection has no OAuth client id yet")
    return client


def _session(client: OAuthClient, redirect_uri: str) -> AsyncOAuth2Client:
    return AsyncOAuth2Client(
        client_id=client.client_id,
        client_secret=client.client_secret,
        token_endpoint_auth_method="client_secret_post",  # noqa: S106 (a method's name)
        scope=" ".join(client.scopes) or None,
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
        timeout=TOKEN_TIMEOUT_SECONDS,
    )


async def start(hub: Hub, connection_id: str, tenant_id: str, actor: str) -> Authorization:
    """A new authorization request for the tenant's connection, and its consent URL. Raises
    ``LookupError`` for no such connection, :class:`InvalidInput` when it cannot use OAuth."""
    found = await hub.store.connections.get_with_credentials(connection_id)
    if found is None or found[0].tenant_id != tenant_id:
        raise LookupError(f"no connection {connection_id!r}")
    connection, credentials = found
    client = await _client(hub, connection, credentials)
    state, verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(64)  # 43, 86 chars
    redirect_uri = callback_url(hub)
    async with _session(client, redirect_uri) as oauth:
        url, _ = oauth.create_authorization_url(
            client.authorization_url, state=state, code_verifier=verifier, **client.extra_params
        )
    expires_at = await OAuthRepo(hub.store).add(
        state=state,
        tenant_id=tenant_id,
        connection_id=connection_id,
        verifier=verifier,
        redirect_uri=redirect_uri,
        actor=actor,
        ttl=STATE_TTL,
    )
    log.info("oauth_started", connection_id=connection_id, vendor=connection.vendor)
    return Authorization(url=url, expires_at=expires_at)


async def finish(hub: Hub, answer: Mapping[str, str]) -> Connection:
    """Finish the request named by ``answer['state']`` (the vendor's redirect's query): the
    connection, connected. Raises :class:`OAuthFailed`; the state is used up either way."""
    state = answer.get("state") or ""
    if not state:
        raise OAuthFailed("The answer carries no state, so it cannot be ours.", reason="no_state")
    try:
        pending = await OAuthRepo(hub.store).take(state)
    except StateRefused as refused:
        reason = f"state_{refused.reason}"
        raise OAuthFailed(STATE_REFUSALS[refused.reason], reason=reason) from None
    connection_id = pending.connection_id
    found = await hub.store.connections.get_with_credentials(connection_id)
    if found is None or found[0].tenant_id != pending.tenant_id:
        raise OAuthFailed("The connection was deleted meanwhile.", reason="connection_gone")
    connection, credentials = found
    loaded = hub.registry.connectors.get(connection.vendor)
    vendor = loaded.info.display_name if loaded is not None else connection.vendor

    def failed(message: str, reason: str) -> OAuthFailed:
        log.warning("oauth_failed", connection_id=connection_id, reason=reason)
        return OAuthFailed(message, reason=reason, connection_id=connection_id)

    error = answer.get("error")
    if error == "access_denied":
        raise failed(f"Access was not granted at {vendor}. Nothing was changed.", "access_denied")
    if error:
        said = _said(error, answer.get("error_description"))
        raise failed(f"{vendor} answered {said}. Nothing was changed. {AGAIN}", "vendor_error")
    code = answer.get("code")
    if not code:
        raise failed(f"{vendor} sent no authorization code. {AGAIN}", "no_code")
    try:
        client = await _client(hub, connection, credentials)
    except InvalidInput as exc:
        raise failed(exc.message, "not_oauth") from None
    try:
        async with _session(client, pending.redirect_uri) as oauth:
            token = await oauth.fetch_token(
                client.token_url,
                grant_type="authorization_code",
                code=code,
                code_verifier=pending.verifier,
            )
    except OAuthError as exc:
        said = _said(str(exc.error), exc.description)
        message = f"{vendor} refused the authorization code ({said}). Nothing was changed. {AGAIN}"
        raise failed(message, "token_refused") from None
    except httpx.HTTPStatusError as exc:
        message = f"{vendor}'s token endpoint answered HTTP {exc.response.status_code}. {AGAIN}"
        raise failed(message, "token_error") from None
    except httpx.HTTPError as exc:
        message = f"{vendor}'s token endpoint could not be reached ({type(exc).__name__}). {AGAIN}"
        raise failed(message, "token_unreachable") from None
    connected = await _store_tokens(hub, connection, credentials, token, pending.actor)
    if connected is None:
        raise failed("The connection was deleted meanwhile.", "connection_gone")
    return connected


async def _store_tokens(
    hub: Hub,
    connection: Connection,
    credentials: dict[str, Any],
    token: Mapping[str, Any],
    actor: str,
) -> Connection | None:
    lasts, refresh = token.get("expires_in"), token.get("refresh_token")
    fresh = {
        **credentials,
        "access_token": token["access_token"],
        "expires_at": time.time() + (float(lasts) if isinstance(lasts, int | float) else 3600.0),
    }
    if isinstance(refresh, str) and refresh:
        fresh["refresh_token"] = refresh  # else the one held before, if any, stays
    connected = await OAuthRepo(hub.store).save_tokens(connection.id, connection.tenant_id, fresh)
    if connected is None:
        return None
    hub.connection_cache.invalidate(connection.id, connection.tenant_id)
    scope = token.get("scope")
    await hub.store.audit.record(
        tenant_id=connection.tenant_id,
        actor=actor,
        action="connection.oauth_connected",
        connection_id=connection.id,
        before={"status": connection.status},
        after={
            "status": connected.status,
            "scope": scope if isinstance(scope, str) else None,
            "refresh": "received" if refresh else "kept",
        },
    )
    log.info("connection_oauth_connected", connection_id=connection.id, actor=actor)
    return connected


def _said(error: str, description: Any) -> str:
    """The vendor's error code and description, short and printable (they are shown)."""
    text = error[:80]
    if isinstance(description, str) and description.strip():
        text += ": " + description.strip()[:200]
    return "".join(c for c in text if c.isprintable())
