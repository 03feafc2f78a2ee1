"""The dashboard's routes: its pages, signing in and out, replaying dead letters, and its two
static files. :func:`dashboard_handlers` puts the pages behind the session and CSRF
middleware (``sessions``) and leaves the static files out of them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import msgspec
from litestar import Controller, Request, Response, Router, get, post
from litestar.datastructures import Cookie, ResponseHeader
from litestar.di import NamedDependency
from litestar.exceptions import PermissionDeniedException
from litestar.params import FromPath
from litestar.response import Redirect, Template
from litestar.types import ControllerRouterHandler

from journeyhub.gateway.dashboard import oauth, sessions
from journeyhub.gateway.dashboard.clients import ClientPagesController
from journeyhub.gateway.dashboard.formatting import ago
from journeyhub.gateway.dashboard.sessions import to_login, viewer_of
from journeyhub.gateway.dashboard.views import Page, build_page, summarize
from journeyhub.hub import Hub
from journeyhub.logs import get_logger
from journeyhub.services import redelivery
from journeyhub.services.connections import get_connection, list_connections
from journeyhub.services.errors import InvalidInput
from journeyhub.services.keys import authenticate
from journeyhub.workers.deadletter import replay

log = get_logger(__name__)

STATIC = Path(__file__).parent / "static"

# Paths the Bearer middleware leaves alone: the dashboard authenticates with its session.
DASHBOARD_PATHS = [
    "^/$",
    "^/login$",
    "^/logout$",
    "^/connections/[^/]+$",
    "^/connections/[^/]+/redeliver$",
    "^/connections/[^/]+/oauth/start$",
    "^/dead-letters/",
    "^/static/dashboard",
    "^/clients$",
    "^/clients/.+$",
]

REFRESH_SECONDS = 30

SECURITY_HEADERS = [
    ResponseHeader(name="Cache-Control", value="no-store"),
    ResponseHeader(
        name="Content-Security-Policy",
        value="default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    ResponseHeader(name="X-Frame-Options", value="DENY"),
    ResponseHeader(name="X-Content-Type-Options", value="nosniff"),
    ResponseHeader(name="Referrer-Policy", value="same-origin"),
]
# The same, for the answers made outside a handler (a form the CSRF middleware refused).
_SECURITY_HEADER_VALUES = {header.name: header.value or "" for header in SECURITY_HEADERS}

FORM_EXPIRED = (
    "The form expired or did not come from this dashboard. Go back, reload and try again."
)
SIGN_IN_EXPIRED = "The sign-in form expired. Please try again."


class DashboardController(Controller):
    path = "/"
    include_in_schema = False
    response_headers = SECURITY_HEADERS

    @get("/")
    async def home(self, request: Request, hub: NamedDependency[Hub]) -> Template | Redirect:
        viewer = await viewer_of(request, hub)
        if viewer is None:
            return to_login(request)
        connections = await list_connections(hub.store, viewer.principal.tenant_id)
        page = await build_page(hub, viewer, connections, flash=sessions.take_flash(request))
        return _render(request, "dashboard.html", page)

    @get("/connections/{connection_id:str}")
    async def connection(
        self, request: Request, hub: NamedDependency[Hub], connection_id: FromPath[str]
    ) -> Template | Redirect:
        viewer = await viewer_of(request, hub)
        if viewer is None:
            return to_login(request)
        found = await get_connection(hub.store, connection_id, viewer.principal.tenant_id)
        if found is None:
            return Template(
                template_name="not_found.html",
                context={"viewer": viewer, "what": "connection"},
                status_code=404,
            )
        flash = sessions.take_flash(request)
        page = await build_page(hub, viewer, [found], one=True, flash=flash)
        button = await oauth.oauth_button(hub, found)
        return _render(request, "connection.html", page, oauth=button)

    @post("/connections/{connection_id:str}/oauth/start", status_code=200)
    async def oauth_start(
        self, request: Request, hub: NamedDependency[Hub], connection_id: FromPath[str]
    ) -> Template | Redirect:
        """The Connect / Reconnect button: on to the vendor's consent screen."""
        viewer = await viewer_of(request, hub)
        if viewer is None:
            return to_login(request)
        return await oauth.start(request, hub, viewer, connection_id)

    # --- signing in and out ---------------------------------------------------------------------

    @get("/login")
    async def login_form(self, request: Request, hub: NamedDependency[Hub]) -> Template | Redirect:
        if await viewer_of(request, hub) is not None:
            return Redirect(path="/", status_code=303)
        return login_page(error=None, flash=sessions.take_flash(request), status_code=200)

    @post("/login", status_code=303)
    async def login(self, request: Request, hub: NamedDependency[Hub]) -> Template | Redirect:
        form = await request.form()
        key = str(form.get("api_key") or "").strip()
        principal = await authenticate(hub.store, key) if key else None
        if principal is None:
            return login_page(
                error="That key was not recognised: it is unknown or has been revoked.",
                flash=None,
                status_code=401,
            )
        if not principal.may(sessions.SIGN_IN_ROLE):
            return login_page(
                error="That key may only send events: sign in with a read or admin key.",
                flash=None,
                status_code=403,
            )
        sessions.sign_in(request, key)
        log.info("dashboard_sign_in", tenant_id=principal.tenant_id, key_id=principal.key_id)
        return Redirect(path="/", status_code=303, cookies=[sessions.expired_csrf(hub)])

    @post("/logout", status_code=303)
    async def logout(self, request: Request, hub: NamedDependency[Hub]) -> Redirect:
        sessions.sign_out(request, "Signed out.")
        return Redirect(path="/login", status_code=303, cookies=[sessions.expired_csrf(hub)])

    # --- replaying dead letters -----------------------------------------------------------------

    @post("/dead-letters/{dead_letter_id:str}/replay", status_code=303)
    async def replay_one(
        self, request: Request, hub: NamedDependency[Hub], dead_letter_id: FromPath[str]
    ) -> Redirect:
        return await _replay(request, hub, [dead_letter_id])

    @post("/dead-letters/replay", status_code=303)
    async def replay_shown(self, request: Request, hub: NamedDependency[Hub]) -> Redirect:
        form = await request.form()
        return await _replay(request, hub, [str(v) for v in form.getall("id", [])][:500])

    @post("/connections/{connection_id:str}/redeliver", status_code=303)
    async def redeliver(
        self, request: Request, hub: NamedDependency[Hub], connection_id: FromPath[str]
    ) -> Redirect:
        """The connection page's resend and backfill form (``services/redelivery.py``)."""
        viewer = await viewer_of(request, hub)
        if viewer is None:
            return to_login(request)
        back = f"/connections/{connection_id}"
        if not viewer.can_replay:
            sessions.flash(request, "error", "Resending needs an admin key.")
            return Redirect(path=back, status_code=303)
        form = await request.form()
        kind: redelivery.Kind = "backfill" if form.get("kind") == "backfill" else "resend"
        fields: dict[str, str | list[str]] = {
            name: value
            for name in ("client_id", "since", "until")
            if (value := str(form.get(name) or "").strip())
        }
        if type_ := str(form.get("type") or "").strip():
            fields["types"] = [type_]
        try:
            wanted = msgspec.convert(fields, redelivery.RedeliveryFilter)
            done = await redelivery.redeliver(
                hub, viewer.principal.tenant_id, connection_id, kind, wanted, viewer.principal.actor
            )
        except (msgspec.ValidationError, InvalidInput, LookupError) as exc:
            sessions.flash(request, "error", f"Nothing sent: {getattr(exc, 'message', exc)}")
            return Redirect(path=back, status_code=303)
        sessions.flash(
            request,
            "ok",
            f"{kind.capitalize()} {done.id}: {done.matched} kept event(s) matched, "
            f"{done.queued} queued.",
        )
        return Redirect(path=back, status_code=303)


async def _replay(request: Request, hub: Hub, ids: list[str]) -> Redirect:
    viewer = await viewer_of(request, hub)
    if viewer is None:
        return to_login(request)
    form = await request.form()
    back = _back(str(form.get("back") or ""))
    if not viewer.can_replay:
        sessions.flash(request, "error", "Replaying needs an admin key.")
        return Redirect(path=back, status_code=303)
    rows = []
    for dead_id in dict.fromkeys(ids):
        row = await hub.store.deliveries.get_dead(dead_id, viewer.principal.tenant_id)
        if row is not None:
            rows.append(row)
    for row in sorted(rows, key=lambda r: r.created_at):  # oldest first
        await replay(hub, row, viewer.principal.actor)
    if not rows:
        sessions.flash(request, "error", "Nothing to replay: no such dead letter.")
    elif len(rows) == 1:
        what = summarize(rows[0])
        subject = f"{what.what} {what.event_id}" if what.event_id else what.what
        sessions.flash(
            request, "ok", f"Replayed {subject}: it is back in the queue and will be sent again."
        )
    else:
        sessions.flash(
            request, "ok", f"Replayed {len(rows)} dead letters: they are back in the queue."
        )
    return Redirect(path=back, status_code=303)


def _render(request: Request, template: str, page: Page, **extra: Any) -> Template:
    context = {
        "page": page,
        "viewer": page.viewer,
        "ago": lambda moment: ago(moment, page.now),
        "refresh_seconds": REFRESH_SECONDS,
        "here": request.url.path,
        **extra,
    }
    return Template(template_name=template, context=context)


def login_page(
    *,
    error: str | None,
    flash: dict[str, str] | None,
    status_code: int,
    csrf: str | None = None,
    cookies: list[Cookie] | None = None,
) -> Template:
    """The sign-in form; its CSRF token is the request's (``csrf`` when it has none)."""
    return Template(
        template_name="login.html",
        context={"error": error, "flash": flash, "csrf": csrf},
        status_code=status_code,
        cookies=cookies or [],
        headers=_SECURITY_HEADER_VALUES,
    )


def _back(target: str | None) -> str:
    """Where a form returns to: the dashboard, a connection's or a client's page, nothing else."""
    if target and re.fullmatch(r"/connections/[A-Za-z0-9_-]{1,60}", target):
        return target
    if target and re.fullmatch(r"/clients/[A-Za-z0-9_.~%-]{1,600}", target):
        return target  # ``clients.client_path``: the client id percent-encoded
    return "/"


def form_refused(request: Request, _: PermissionDeniedException) -> Response[Any]:
    """A form the CSRF middleware refused (no token, or not this browser's): the sign-in form
    again; the sign-in page for someone not signed in; a 403 for the others. Nothing was done.
    (Made outside the session middleware: the session is read, not changed.)"""
    hub: Hub = request.app.state.hub
    if request.url.path == "/login":
        token, cookie = sessions.fresh_csrf(hub)
        return login_page(
            error=SIGN_IN_EXPIRED, flash=None, status_code=403, csrf=token, cookies=[cookie]
        )
    session = request.scope.get("session")
    if not (isinstance(session, dict) and session.get("key")):
        return Redirect(path="/login", status_code=303)
    return Response(
        FORM_EXPIRED,
        status_code=403,
        media_type="text/plain",
        headers=_SECURITY_HEADER_VALUES,
        cookies=[sessions.expired_csrf(hub)],
    )


# --- static files --------------------------------------------------------------------------------


class AssetsController(Controller):
    """The stylesheet and the script: no session, no CSRF token, cached for a few minutes."""

    path = "/static"
    include_in_schema = False

    @get("/dashboard.css", media_type="text/css")
    async def stylesheet(self) -> Response[bytes]:
        return _asset("dashboard.css", "text/css")

    @get("/dashboard.js", media_type="text/javascript")
    async def script(self) -> Response[bytes]:
        return _asset("dashboard.js", "text/javascript")


_ASSETS: dict[str, bytes] = {}


def _asset(name: str, media_type: str) -> Response[bytes]:
    if name not in _ASSETS:
        _ASSETS[name] = (STATIC / name).read_bytes()
    return Response(
        _ASSETS[name], media_type=media_type, headers={"Cache-Control": "public, max-age=300"}
    )


def dashboard_handlers(hub: Hub) -> list[ControllerRouterHandler]:
    """The dashboard's route handlers for the app: the pages behind the session and CSRF
    middleware made from ``hub``'s secret keys, and the static files."""
    pages = Router(
        path="/",
        route_handlers=[DashboardController, ClientPagesController],
        middleware=sessions.middleware(hub),
        response_headers=SECURITY_HEADERS,  # every page's, the client pages' too
        exception_handlers={PermissionDeniedException: form_refused},
        include_in_schema=False,
    )
    return [pages, AssetsController]
