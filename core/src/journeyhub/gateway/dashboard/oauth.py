"""The connection page's Connect / Reconnect button, for connectors that connect accounts
through OAuth (``services/oauth.py``).

The button is a form (CSRF-checked like the dashboard's others) posted under the session; an
``admin`` key may use it. Its answer is a page that sends the browser on to the vendor's
consent screen (a ``Refresh``): a redirect answering the form would be a form submission that
ends at another origin, which the pages' ``form-action 'self'`` policy blocks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar import Request
from litestar.response import Redirect, Template

from journeyhub.gateway.dashboard import sessions
from journeyhub.gateway.dashboard.sessions import Viewer
from journeyhub.hub import Hub
from journeyhub.model import Connection
from journeyhub.services import oauth
from journeyhub.services.errors import InvalidInput


@dataclass(frozen=True)
class OAuthButton:
    label: str  # "Connect" before the account was ever connected, "Reconnect" after
    vendor: str
    needed: bool  # the connection waits for a person to re-authorise it


async def oauth_button(hub: Hub, connection: Connection) -> OAuthButton | None:
    """The button for the connection's page; None for a connector without OAuth."""
    if not oauth.uses_oauth(hub, connection):
        return None
    found = await hub.store.connections.get_with_credentials(connection.id)
    connected = found is not None and bool(found[1].get("refresh_token"))
    vendor = hub.registry.connector(connection.vendor).display_name
    needed = connection.status == "needs_reauth" or not connected
    return OAuthButton("Reconnect" if connected else "Connect", vendor, needed)


async def start(
    request: Request[Any, Any, Any], hub: Hub, viewer: Viewer, connection_id: str
) -> Template | Redirect:
    """Start the flow for the viewer's connection: the page on to the consent screen, or the
    connection's page again with a message saying why not."""
    back = Redirect(path=f"/connections/{connection_id}", status_code=303)
    if not viewer.may("admin"):
        sessions.flash(request, "error", "Connecting an account needs an admin key.")
        return back
    tenant_id = viewer.principal.tenant_id
    try:
        started = await oauth.start(hub, connection_id, tenant_id, viewer.principal.actor)
    except LookupError:
        sessions.flash(request, "error", "No such connection.")
        return Redirect(path="/", status_code=303)
    except InvalidInput as exc:
        sessions.flash(request, "error", f"Cannot connect: {exc.message}.")
        return back
    connection = await hub.store.connections.get(connection_id, tenant_id)
    name = connection.name if connection is not None else connection_id
    vendor = hub.registry.connector(connection.vendor).display_name if connection else "the vendor"
    return Template(
        template_name="oauth_redirect.html",
        context={"url": started.url, "vendor": vendor, "connection_name": name},
        headers={"Refresh": f"0; url={started.url}"},
    )
