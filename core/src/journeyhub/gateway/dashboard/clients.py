"""The dashboard's client pages: ``GET /clients?q=…`` finds clients by id, name or email (the
search box in every page's header), ``GET /clients/{client_id}`` one client's timeline
(``services/timeline.py``), newest first, a page at a time, with a Replay button on each dead
letter (the dashboard's own replay form, which comes back here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import quote

from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template

from journeyhub.gateway.dashboard import sessions
from journeyhub.gateway.dashboard.formatting import ago
from journeyhub.gateway.dashboard.sessions import Viewer, to_login, viewer_of
from journeyhub.hub import Hub
from journeyhub.model import utcnow
from journeyhub.services.connections import list_connections
from journeyhub.services.errors import InvalidInput
from journeyhub.services.timeline import ClientTimeline, ClientView, client_timeline, find_clients

PAGE_SIZE = 50
SEARCH_RESULTS = 20


def client_path(client_id: str) -> str:
    """The client page's path: the id quoted whole (an id may hold ``/``, ``?`` or ``#``)."""
    return "/clients/" + quote(client_id, safe="")


@dataclass
class ClientsPage:
    viewer: Viewer
    now: datetime
    query: str = ""
    found: list[ClientView] = field(default_factory=list)
    timeline: ClientTimeline | None = None
    names: dict[str, str] = field(default_factory=dict)  # connection id -> its name
    paged: bool = False  # an older page, not the newest
    error: str | None = None
    flash: dict[str, str] | None = None


class ClientPagesController(Controller):
    path = "/clients"
    include_in_schema = False  # the security headers are the router's (``controller``)

    @get("/")
    async def search(
        self, request: Request, hub: NamedDependency[Hub], q: FromQuery[str] = ""
    ) -> Template | Redirect:
        viewer = await viewer_of(request, hub)
        if viewer is None:
            return to_login(request)
        query = q.strip()
        found = await find_clients(hub, viewer.principal.tenant_id, query, limit=SEARCH_RESULTS)
        page = ClientsPage(viewer=viewer, now=utcnow(), query=query, found=found)
        return _render(request, "clients.html", page)

    @get("/{client_id:path}")
    async def timeline(
        self,
        request: Request,
        hub: NamedDependency[Hub],
        client_id: FromPath[str],
        before: FromQuery[str | None] = None,
    ) -> Template | Redirect:
        viewer = await viewer_of(request, hub)
        if viewer is None:
            return to_login(request)
        client_id = client_id.removeprefix("/")
        tenant_id = viewer.principal.tenant_id
        page = ClientsPage(
            viewer=viewer, now=utcnow(), paged=bool(before), flash=sessions.take_flash(request)
        )
        try:
            page.timeline = await client_timeline(
                hub, tenant_id, client_id, before=before or None, limit=PAGE_SIZE
            )
        except InvalidInput as exc:
            page.error = exc.message
        page.names = {c.id: c.name for c in await list_connections(hub.store, tenant_id)}
        return _render(request, "client.html", page, status_code=422 if page.error else 200)


def _render(request: Request, template: str, page: ClientsPage, status_code: int = 200) -> Template:
    context = {
        "page": page,
        "viewer": page.viewer,
        "ago": lambda moment: ago(moment, page.now),
        "client_path": client_path,
        "here": client_path(page.timeline.client.id) if page.timeline else request.url.path,
    }
    return Template(template_name=template, context=context, status_code=status_code)
