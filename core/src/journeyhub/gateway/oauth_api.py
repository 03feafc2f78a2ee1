"""Connecting a vendor account in a browser (``services/oauth.py``), over HTTP.

- ``GET /v1/connections/{id}/oauth/start`` (``admin``): a 302 to the vendor's consent screen,
  or, asked with ``Accept: application/json``, the consent URL as JSON.
- ``GET /oauth/callback``: where the vendor sends the browser back. It is outside the Bearer
  middleware (a public path): the one-time state authenticates it. It answers a page: on
  success one that takes the browser on to the connection's dashboard page (a navigation that
  starts on our own page, so the dashboard's ``SameSite=Strict`` session cookie goes with it,
  which it would not on a redirect chain that began at the vendor); on a refusal one that says
  why, having changed nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.response import Redirect, Template

from journeyhub.gateway.auth import require
from journeyhub.gateway.dashboard.controller import SECURITY_HEADERS
from journeyhub.gateway.docs import problems
from journeyhub.gateway.errors import UnprocessableInput
from journeyhub.hub import Hub
from journeyhub.services import oauth
from journeyhub.services.errors import InvalidInput
from journeyhub.store.tenants import Principal

NO_STORE = {"Cache-Control": "no-store"}


class OAuthStart(msgspec.Struct):
    authorization_url: str
    expires_at: datetime
    redirect_uri: str  # register it with the vendor's OAuth client


class OAuthStartController(Controller):
    path = "/v1/connections"
    tags = ["connections"]

    @get(
        "/{connection_id:str}/oauth/start",
        operation_id="startConnectionOAuth",
        guards=[require("admin")],
        responses=problems(404, 422),
    )
    async def start(
        self, request: Request, hub: NamedDependency[Hub], connection_id: FromPath[str]
    ) -> Response[Any]:
        """Start connecting the vendor account: 302 to the vendor's consent screen, or the URL
        as JSON (``Accept: application/json``). The request expires in 10 minutes."""
        principal: Principal = request.user
        try:
            started = await oauth.start(hub, connection_id, principal.tenant_id, principal.actor)
        except LookupError:
            raise NotFoundException("no such connection") from None
        except InvalidInput as exc:
            raise UnprocessableInput(exc.message, field=exc.field) from None
        wanted = request.accept.best_match(["text/html", "application/json"], "text/html")
        if wanted == "application/json":
            body = OAuthStart(started.url, started.expires_at, oauth.callback_url(hub))
            return Response(body, headers=NO_STORE)
        return Redirect(path=started.url, status_code=302, headers=NO_STORE)


class OAuthCallbackController(Controller):
    path = oauth.CALLBACK_PATH
    include_in_schema = False
    response_headers = SECURITY_HEADERS

    @get("/")
    async def callback(self, request: Request, hub: NamedDependency[Hub]) -> Template:
        answer = {name: value for name, value in request.query_params.items()}
        try:
            connection = await oauth.finish(hub, answer)
        except oauth.OAuthFailed as exc:
            context = {"ok": False, "message": exc.message, "reason": exc.reason}
            context["connection_id"] = exc.connection_id
            return Template(template_name="oauth_result.html", context=context, status_code=400)
        vendor = hub.registry.connector(connection.vendor).display_name
        context = {
            "ok": True,
            "message": f"{vendor} is connected to {connection.name}.",
            "reason": "connected",
            "connection_id": connection.id,
        }
        # On to the connection's page by itself, in a second.
        back = {"Refresh": f"1; url=/connections/{connection.id}"}
        return Template(template_name="oauth_result.html", context=context, headers=back)
