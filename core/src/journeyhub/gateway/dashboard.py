"""The operations dashboard at ``/``: server-rendered pages for the people who keep the hub
running. One tenant at a time, signed in with one of its API keys.

- ``GET /`` connections with their health, dead letters (replay), recent failures with the
  vendor's answer, recent deliveries and the last triggers; ``GET /connections/{id}`` one
  connection in detail. Any role may look; replaying needs an ``admin`` key.
- Sign-in (``/login``): the key is checked like a Bearer key, then kept in an HttpOnly,
  ``SameSite=Strict`` cookie *encrypted* with the hub's secret keys (so the browser never holds
  it in clear and nobody can forge one); every request authenticates it again, so a revoked
  key signs the session out. A session lasts :data:`SESSION_SECONDS`.
- Forms carry a CSRF token derived from the session cookie (the login form a double-submit
  token), on top of ``SameSite=Strict``. Pages send a strict Content-Security-Policy (no inline
  script or style, nothing from another origin) and are never cached.

These paths are outside the Bearer middleware (:data:`DASHBOARD_PATHS`, added to the app's
public paths); they authenticate with the cookie instead.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import Cookie, ResponseHeader
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Redirect, Template
from litestar.template.config import TemplateConfig

from journeyhub.health import ERROR_STATUSES, ConnectionHealth, connection_health
from journeyhub.hub import Hub
from journeyhub.logs import get_logger
from journeyhub.model import Connection, utcnow
from journeyhub.settings import SettingsError
from journeyhub.store.keys import Principal
from journeyhub.store.tables import DeadLetter, Delivery, TriggerRow
from journeyhub.workers.deadletter import replay

log = get_logger(__name__)

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

# Paths the Bearer middleware leaves alone: the dashboard authenticates with its cookie.
DASHBOARD_PATHS = [
    "^/$",
    "^/login$",
    "^/logout$",
    "^/connections/[^/]+$",
    "^/dead-letters/",
    "^/static/dashboard",
]

SESSION_COOKIE = "jh_session"
LOGIN_CSRF_COOKIE = "jh_login_csrf"
FLASH_COOKIE = "jh_flash"
SESSION_SECONDS = 12 * 3600
REFRESH_SECONDS = 30

LIST_DEAD = 50  # pending dead letters on the page
LIST_REPLAYED = 10  # recently replayed ones under them
LIST_FAILURES = 20
LIST_DELIVERIES = 15
LIST_TRIGGERS = 15

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

ROLE_NAMES = {"admin": "admin", "ingest": "ingest", "read": "read-only"}

# --- formatting ---------------------------------------------------------------------------------


def ago(moment: datetime | None, now: datetime | None = None) -> str:
    """``"4 min ago"``; ``"never"`` for None."""
    if moment is None:
        return "never"
    seconds = ((now or utcnow()) - moment).total_seconds()
    if seconds < 0:
        return "in " + ago(now or utcnow(), moment).removesuffix(" ago")
    if seconds < 10:
        return "just now"
    if seconds < 60:
        return f"{int(seconds)} s ago"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 48 * 3600:
        return f"{int(seconds // 3600)} h ago"
    return f"{int(seconds // 86400)} d ago"


def utc_text(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else ""


def percent(rate: float | None) -> str:
    if rate is None:
        return "—"
    value = rate * 100
    return f"{value:.0f}%" if value in (0, 100) or value >= 10 else f"{value:.1f}%"


def millis(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.0f} ms" if value < 1000 else f"{value / 1000:.1f} s"


def humanize(name: str) -> str:
    return name.replace("_", " ").capitalize()


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    def setup(engine: JinjaTemplateEngine) -> None:
        env = engine.engine
        env.filters.update(utc=utc_text, percent=percent, ms=millis, humanize=humanize)
        env.trim_blocks = True
        env.lstrip_blocks = True

    return TemplateConfig(directory=TEMPLATES, engine=JinjaTemplateEngine, engine_callback=setup)


# --- sessions -----------------------------------------------------------------------------------


@dataclass
class Viewer:
    principal: Principal
    tenant_name: str
    csrf: str

    @property
    def can_replay(self) -> bool:
        return self.principal.role == "admin"

    @property
    def role_name(self) -> str:
        return ROLE_NAMES.get(self.principal.role, self.principal.role)


def csrf_for(session_cookie: str) -> str:
    """The forms' token: bound to the session, unknowable without its HttpOnly cookie."""
    return hashlib.sha256(b"journeyhub-dashboard-csrf:" + session_cookie.encode()).hexdigest()[:40]


def _cookie(request: Request, key: str, value: str, max_age: int, path: str = "/") -> Cookie:
    return Cookie(
        key=key,
        value=value,
        max_age=max_age,
        path=path,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def _expired(request: Request, key: str) -> Cookie:
    return _cookie(request, key, "", 0)


async def viewer_of(request: Request, hub: Hub) -> Viewer | None:
    """Who is signed in, from the session cookie; None when nobody (or the key was revoked)."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    try:
        data = hub.store.secret_box.decrypt(token.encode())
    except (SettingsError, ValueError, msgspec.DecodeError):
        return None
    issued = data.get("iat")
    key = data.get("key")
    if not isinstance(issued, int) or not isinstance(key, str):
        return None
    if not 0 <= time.time() - issued <= SESSION_SECONDS:
        return None
    principal = await hub.store.tenants.authenticate(key)
    if principal is None:
        return None
    tenant = await hub.store.tenants.get(principal.tenant_id)
    name = tenant.name if tenant is not None else principal.tenant_id
    return Viewer(principal=principal, tenant_name=name, csrf=csrf_for(token))


def _flash(request: Request) -> dict[str, str] | None:
    """The message left by the last form (shown once, escaped like any text)."""
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return None
    kind, _, encoded = raw.partition(".")
    try:
        text = base64.urlsafe_b64decode(encoded.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    if kind not in ("ok", "error") or not text:
        return None
    return {"kind": kind, "text": text[:300]}


def _flash_cookie(request: Request, kind: str, text: str) -> Cookie:
    # base64url: a cookie value may hold neither spaces nor commas.
    encoded = base64.urlsafe_b64encode(text[:300].encode()).decode()
    return _cookie(request, FLASH_COOKIE, f"{kind}.{encoded}", 60)


def _back(target: str | None) -> str:
    """Where a form returns to: the dashboard or a connection's page, nothing else."""
    if target and re.fullmatch(r"/connections/[A-Za-z0-9_-]{1,60}", target):
        return target
    return "/"


# --- what the page shows ------------------------------------------------------------------------

# Worst first: the connections that need someone come to the top of the table.
SEVERITY = {
    key: rank
    for rank, key in enumerate(
        ("breaker", "reauth", "failing", "degraded", "idle", "disabled", "healthy")
    )
}


@dataclass
class Assessment:
    key: str  # healthy | degraded | failing | reauth | breaker | disabled | idle
    label: str
    reason: str


def assess(health: ConnectionHealth) -> Assessment:
    """One word for a connection's state, and the reason in a few words."""
    hour, day = health.last_hour, health.last_24h
    breaker = health.breaker
    if not health.enabled:
        return Assessment("disabled", "Disabled", "turned off: nothing is sent or synced")
    if health.needs_reauth:
        return Assessment(
            "reauth", "Needs re-auth", "the vendor refused the credentials: update them"
        )
    if breaker.state == "open":
        until = f" until {utc_text(breaker.reopens_at)}" if breaker.reopens_at else ""
        return Assessment(
            "breaker", "Breaker open", f"{breaker.failures} failures in a row; paused{until}"
        )
    latest_is_error = health.last_error_at is not None and (
        health.last_success_at is None or health.last_error_at > health.last_success_at
    )
    if hour.errors and (latest_is_error or (hour.success_rate or 0) < 0.5):
        return Assessment(
            "failing",
            "Failing",
            ("the latest call failed; " if latest_is_error else "")
            + f"{hour.errors} of {hour.attempts} calls failed in the last hour",
        )
    reasons = []
    if health.dead_letters:
        reasons.append(f"{health.dead_letters} dead letter{'s' if health.dead_letters > 1 else ''}")
    if hour.errors:
        failed = f"{hour.errors} failed call{'s' if hour.errors > 1 else ''} in 1 h"
        reasons.append(failed + ("" if latest_is_error else ", latest ok"))
    if breaker.paused_until:
        reasons.append("vendor asked to slow down")
    elif breaker.state == "half_open":
        reasons.append("breaker probing")
    if health.last_sync is not None and not health.last_sync.ok:
        reasons.append("last sync failed")
    if reasons:
        return Assessment("degraded", "Degraded", ", ".join(reasons))
    if health.last_success_at is None and not day.attempts:
        return Assessment("idle", "No traffic yet", "no call to the vendor yet")
    if day.attempts:
        return Assessment(
            "healthy", "Healthy", f"{day.succeeded} of {day.attempts} calls ok in 24 h"
        )
    return Assessment("healthy", "Healthy", "no calls in 24 h")


@dataclass
class ConnectionView:
    connection: Connection
    health: ConnectionHealth
    state: Assessment
    vendor_name: str


@dataclass
class EventSummary:
    what: str  # "journey started", "payment received trigger", "inbound webhook"
    event_id: str | None = None
    client: str | None = None


@dataclass
class DeadView:
    row: DeadLetter
    reason: str  # "Permanent error", "Gave up after 4 attempts"
    message: str  # the vendor's error
    vendor_status: int | None
    summary: EventSummary
    after_replay: Delivery | None  # the newest attempt since it was replayed

    @property
    def replayed(self) -> bool:
        return self.row.replayed_at is not None


@dataclass
class Page:
    viewer: Viewer
    now: datetime
    connections: list[ConnectionView]
    dead: list[DeadView]
    replayed: list[DeadView]
    failures: list[Delivery]
    deliveries: list[Delivery]
    triggers: list[TriggerRow]
    names: dict[str, str] = field(default_factory=dict)  # connection id -> its name
    vendors: dict[str, str] = field(default_factory=dict)  # connection id -> vendor's name
    flash: dict[str, str] | None = None


def summarize(row: DeadLetter) -> EventSummary:
    try:
        payload = msgspec.json.decode(row.payload)
    except msgspec.DecodeError:
        payload = None
    if row.stage != "push" or not isinstance(payload, dict):
        return EventSummary(what=f"webhook from {row.vendor}")
    event = payload.get("event")
    if isinstance(event, dict):
        client = event.get("client") if isinstance(event.get("client"), dict) else {}
        who = client.get("name") or client.get("email") or client.get("id")
        if client.get("name") and client.get("email"):
            who = f"{client['name']} <{client['email']}>"
        return EventSummary(
            what=humanize(str(event.get("type", "event"))),
            event_id=str(event.get("id")) if event.get("id") else None,
            client=who,
        )
    trigger = payload.get("trigger")
    if isinstance(trigger, dict):
        return EventSummary(
            what=f"{humanize(str(trigger.get('type', 'trigger')))} trigger",
            event_id=str(trigger.get("id")) if trigger.get("id") else None,
            client=trigger.get("client_id"),
        )
    return EventSummary(what="delivery task")


_REASON = re.compile(r"^(permanent error|\d+ failed attempts): ", re.IGNORECASE)


def replayed_since(row: DeadLetter, attempt: Delivery | None) -> bool:
    """Whether ``attempt`` was made after the dead letter was (last) replayed."""
    return (
        attempt is not None
        and row.replayed_at is not None
        and attempt.created_at >= row.replayed_at
    )


def dead_view(row: DeadLetter, failed: Delivery | None, latest: Delivery | None) -> DeadView:
    match = _REASON.match(row.error)
    if match is None:
        reason, message = "Failed", row.error
    else:
        head = match.group(1)
        reason = "Permanent error" if head.lower() == "permanent error" else f"Gave up after {head}"
        message = row.error[match.end() :]
    return DeadView(
        row=row,
        reason=reason,
        message=message,
        vendor_status=failed.vendor_status if failed is not None else None,
        summary=summarize(row),
        after_replay=latest if replayed_since(row, latest) else None,
    )


def vendor_name(hub: Hub, vendor: str) -> str:
    loaded = hub.registry.connectors.get(vendor)
    return loaded.info.display_name if loaded is not None else vendor


async def connection_views(hub: Hub, connections: list[Connection]) -> list[ConnectionView]:
    now = utcnow()
    semaphore = asyncio.Semaphore(8)

    async def one(connection: Connection) -> ConnectionView:
        async with semaphore:
            health = await connection_health(hub, connection, now=now)
        return ConnectionView(
            connection, health, assess(health), vendor_name(hub, connection.vendor)
        )

    views = list(await asyncio.gather(*(one(c) for c in connections)))
    views.sort(key=lambda v: (SEVERITY[v.state.key], v.connection.name.lower()))
    return views


async def dead_views(
    hub: Hub, tenant_id: str, connection_id: str | None = None
) -> tuple[list[DeadView], list[DeadView]]:
    deliveries = hub.store.deliveries
    pending = await deliveries.list_dead(
        tenant_id, limit=LIST_DEAD, connection_id=connection_id, pending_only=True
    )
    recent = await deliveries.list_dead(
        tenant_id, limit=LIST_DEAD + LIST_REPLAYED, connection_id=connection_id
    )
    replayed = [r for r in recent if r.replayed_at is not None][:LIST_REPLAYED]
    replayed.sort(key=lambda r: r.replayed_at or r.created_at, reverse=True)
    tasks = [r.msg_id for r in pending + replayed]
    failed = await deliveries.last_attempts(tenant_id, tasks, ERROR_STATUSES)
    latest = await deliveries.last_attempts(tenant_id, [r.msg_id for r in replayed])
    return (
        [dead_view(r, failed.get(r.msg_id), None) for r in pending],
        [dead_view(r, failed.get(r.msg_id), latest.get(r.msg_id)) for r in replayed],
    )


async def build_page(
    request: Request, hub: Hub, viewer: Viewer, connections: list[Connection], *, one: bool = False
) -> Page:
    """What a page shows: the tenant's connections, or one connection (``one``) and only its
    dead letters, failures, deliveries and triggers."""
    tenant_id = viewer.principal.tenant_id
    only = connections[0].id if one else None
    store = hub.store
    views = await connection_views(hub, connections)
    dead, replayed = await dead_views(hub, tenant_id, connection_id=only)
    failures = await store.deliveries.list_statuses(
        tenant_id, ERROR_STATUSES, connection_id=only, limit=LIST_FAILURES
    )
    deliveries = await store.deliveries.list(
        tenant_id, connection_id=only, limit=LIST_DELIVERIES * (2 if one else 1)
    )
    triggers = await store.triggers.list(tenant_id, connection_id=only, limit=LIST_TRIGGERS)
    return Page(
        viewer=viewer,
        now=utcnow(),
        connections=views,
        dead=dead,
        replayed=replayed,
        failures=failures,
        deliveries=deliveries,
        triggers=triggers,
        names={c.id: c.name for c in connections},
        vendors={c.id: vendor_name(hub, c.vendor) for c in connections},
        flash=_flash(request),
    )


def _page_response(template: str, context: dict[str, Any], **kwargs: Any) -> Template:
    return Template(template_name=template, context=context, **kwargs)


# --- the controller -----------------------------------------------------------------------------


class DashboardController(Controller):
    path = "/"
    include_in_schema = False
    response_headers = SECURITY_HEADERS

    @get("/")
    async def home(self, request: Request, hub: NamedDependency[Hub]) -> Template | Redirect:
        viewer = await viewer_of(request, hub)
        if viewer is None:
            return _to_login(request)
        connections = await hub.store.connections.list(viewer.principal.tenant_id)
        page = await build_page(request, hub, viewer, connections)
        return self._render(request, "dashboard.html", page)

    @get("/connections/{connection_id:str}")
    async def connection(
        self, request: Request, hub: NamedDependency[Hub], connection_id: FromPath[str]
    ) -> Template | Redirect:
        viewer = await viewer_of(request, hub)
        if viewer is None:
            return _to_login(request)
        found = await hub.store.connections.get(connection_id, viewer.principal.tenant_id)
        if found is None:
            return _page_response(
                "not_found.html", {"viewer": viewer, "what": "connection"}, status_code=404
            )
        page = await build_page(request, hub, viewer, [found], one=True)
        return self._render(request, "connection.html", page)

    @staticmethod
    def _render(request: Request, template: str, page: Page) -> Template:
        cookies = [_expired(request, FLASH_COOKIE)] if page.flash else []
        context = {
            "page": page,
            "viewer": page.viewer,
            "ago": lambda moment: ago(moment, page.now),
            "refresh_seconds": REFRESH_SECONDS,
            "here": request.url.path,
        }
        return _page_response(template, context, cookies=cookies)

    # --- signing in and out ---------------------------------------------------------------------

    @get("/login")
    async def login_form(self, request: Request, hub: NamedDependency[Hub]) -> Template | Redirect:
        if await viewer_of(request, hub) is not None:
            return Redirect(path="/", status_code=303)
        return self._login_page(request, error=None, status_code=200)

    def _login_page(self, request: Request, *, error: str | None, status_code: int) -> Template:
        token = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        if not re.fullmatch(r"[A-Za-z0-9_-]{32}", token):
            token = secrets.token_urlsafe(24)  # 32 characters
        flash = _flash(request)
        cookies = [_cookie(request, LOGIN_CSRF_COOKIE, token, 3600, path="/login")]
        if flash is not None:
            cookies.append(_expired(request, FLASH_COOKIE))
        return _page_response(
            "login.html",
            {"csrf": token, "error": error, "flash": flash},
            status_code=status_code,
            cookies=cookies,
        )

    @post("/login", status_code=303)
    async def login(self, request: Request, hub: NamedDependency[Hub]) -> Template | Redirect:
        form = await request.form()
        expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        presented = str(form.get("csrf") or "")
        if not expected or not hmac.compare_digest(expected, presented):
            return self._login_page(
                request,
                error="The sign-in form expired. Please try again.",
                status_code=403,
            )
        key = str(form.get("api_key") or "").strip()
        principal = await hub.store.tenants.authenticate(key) if key else None
        if principal is None:
            return self._login_page(
                request,
                error="That key was not recognised: it is unknown or has been revoked.",
                status_code=401,
            )
        token = hub.store.secret_box.encrypt({"key": key, "iat": int(time.time())}).decode()
        log.info("dashboard_sign_in", tenant_id=principal.tenant_id, key_id=principal.key_id)
        return Redirect(
            path="/",
            status_code=303,
            cookies=[
                _cookie(request, SESSION_COOKIE, token, SESSION_SECONDS),
                _cookie(request, LOGIN_CSRF_COOKIE, "", 0, path="/login"),
            ],
        )

    @post("/logout", status_code=303)
    async def logout(self, request: Request, hub: NamedDependency[Hub]) -> Redirect | Response:
        viewer = await viewer_of(request, hub)
        form = await request.form()
        if viewer is not None and not _csrf_ok(viewer, form):
            return _forbidden()
        return Redirect(
            path="/login",
            status_code=303,
            cookies=[
                _expired(request, SESSION_COOKIE),
                _flash_cookie(request, "ok", "Signed out."),
            ],
        )

    # --- replaying dead letters -----------------------------------------------------------------

    @post("/dead-letters/{dead_letter_id:str}/replay", status_code=303)
    async def replay_one(
        self, request: Request, hub: NamedDependency[Hub], dead_letter_id: FromPath[str]
    ) -> Redirect | Response:
        return await self._replay(request, hub, [dead_letter_id])

    @post("/dead-letters/replay", status_code=303)
    async def replay_shown(
        self, request: Request, hub: NamedDependency[Hub]
    ) -> Redirect | Response:
        form = await request.form()
        return await self._replay(request, hub, [str(v) for v in form.getall("id", [])][:500])

    async def _replay(self, request: Request, hub: Hub, ids: list[str]) -> Redirect | Response:
        viewer = await viewer_of(request, hub)
        if viewer is None:
            return _to_login(request)
        form = await request.form()
        back = _back(str(form.get("back") or ""))
        if not _csrf_ok(viewer, form):
            return _forbidden()
        if not viewer.can_replay:
            return Redirect(
                path=back,
                status_code=303,
                cookies=[_flash_cookie(request, "error", "Replaying needs an admin key.")],
            )
        rows = []
        for dead_id in dict.fromkeys(ids):
            row = await hub.store.deliveries.get_dead(dead_id, viewer.principal.tenant_id)
            if row is not None:
                rows.append(row)
        for row in sorted(rows, key=lambda r: r.created_at):  # oldest first
            await replay(hub, row, viewer.principal.actor)
        if not rows:
            flash = _flash_cookie(request, "error", "Nothing to replay: no such dead letter.")
        elif len(rows) == 1:
            what = summarize(rows[0])
            subject = f"{what.what} {what.event_id}" if what.event_id else what.what
            flash = _flash_cookie(
                request,
                "ok",
                f"Replayed {subject}: it is back in the queue and will be sent again.",
            )
        else:
            flash = _flash_cookie(
                request, "ok", f"Replayed {len(rows)} dead letters: they are back in the queue."
            )
        return Redirect(path=back, status_code=303, cookies=[flash])

    # --- static assets --------------------------------------------------------------------------

    @get("/static/dashboard.css", media_type="text/css")
    async def stylesheet(self) -> Response[bytes]:
        return _asset("dashboard.css", "text/css")

    @get("/static/dashboard.js", media_type="text/javascript")
    async def script(self) -> Response[bytes]:
        return _asset("dashboard.js", "text/javascript")


def _to_login(request: Request) -> Redirect:
    """Back to the sign-in form; saying why when a session was there and has ended."""
    if not request.cookies.get(SESSION_COOKIE):
        return Redirect(path="/login", status_code=303)
    return Redirect(
        path="/login",
        status_code=303,
        cookies=[
            _expired(request, SESSION_COOKIE),
            _flash_cookie(
                request, "error", "Your session ended (expired or key revoked): sign in again."
            ),
        ],
    )


def _csrf_ok(viewer: Viewer, form: Any) -> bool:
    return hmac.compare_digest(viewer.csrf, str(form.get("csrf") or ""))


def _forbidden() -> Response[str]:
    return Response(
        "The form expired or did not come from this dashboard. Go back, reload and try again.",
        status_code=403,
        media_type="text/plain",
    )


_ASSETS: dict[str, bytes] = {}


def _asset(name: str, media_type: str) -> Response[bytes]:
    if name not in _ASSETS:
        _ASSETS[name] = (STATIC / name).read_bytes()
    return Response(
        _ASSETS[name],
        media_type=media_type,
        headers={"Cache-Control": "public, max-age=300"},
    )


__all__ = ["DASHBOARD_PATHS", "DashboardController", "ago", "assess", "template_config"]
