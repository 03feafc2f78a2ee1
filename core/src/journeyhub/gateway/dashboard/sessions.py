"""Who is signed in to the dashboard: Litestar's session middleware and CSRF middleware,
configured from the hub's secret keys, on the dashboard's routes only.

- **Session**: Litestar's client-side cookie session (``CookieBackendConfig``). The cookie
  ``jh_session`` holds the session AES-GCM encrypted with a key derived from the hub's first
  secret key (so the browser never holds the API key in clear, nobody can forge one, and every
  gateway process reads every session); HttpOnly, ``SameSite=Strict``, ``Secure`` when the
  hub's public URL is https. It holds the API key the viewer signed in with and when. Every
  request authenticates that key again, so a revoked key signs the session out at the next
  request; a session ends :data:`SESSION_SECONDS` after sign-in, however active. Rotating the
  secret keys signs everyone out.
- **CSRF**: Litestar's CSRF middleware (``CSRFConfig``): a signed token in the cookie
  ``jh_csrf`` (HttpOnly, ``SameSite=Strict``) that every form posts back as ``_csrf_token``
  (double submit), on top of ``SameSite=Strict``. The token changes at sign-in and sign-out.
  The middleware refuses a form before any handler runs; the controller answers the refusal
  (``controller.form_refused``).
- A message for the next page (``flash``) is kept in the session and shown once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from litestar import Request
from litestar.config.csrf import CSRFConfig
from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie
from litestar.exceptions import SerializationException
from litestar.middleware import DefineMiddleware
from litestar.middleware.csrf import CSRFMiddleware, generate_csrf_token
from litestar.middleware.session import SessionMiddleware
from litestar.middleware.session.client_side import ClientSideSessionBackend, CookieBackendConfig
from litestar.response import Redirect
from litestar.types import ASGIApp

from journeyhub.hub import Hub
from journeyhub.services import keys, tenants
from journeyhub.store.tenants import Principal

SESSION_COOKIE = "jh_session"
CSRF_COOKIE = "jh_csrf"
SESSION_SECONDS = 12 * 3600

# Who may sign in: the dashboard shows the tenant's records, so a key that may read them
# (``read``, or ``admin``, which includes it). An ``ingest``-only key may not.
SIGN_IN_ROLE = "read"


@dataclass
class Viewer:
    principal: Principal
    tenant_name: str

    def may(self, role: str) -> bool:
        """Whether the key signed in with grants ``role`` (as the API's guards decide)."""
        return self.principal.may(role)

    @property
    def can_replay(self) -> bool:
        """Replaying, resending: what the API's ``admin`` role allows."""
        return self.may("admin")

    @property
    def role_name(self) -> str:
        """The key's roles for people: ``read-only``, ``admin``, ``admin + ingest``..."""
        roles = [r for r in self.principal.roles if not (r == "read" and self.can_replay)]
        return "read-only" if roles == ["read"] else " + ".join(roles)


# --- the middleware ------------------------------------------------------------------------------


def secure_cookies(hub: Hub) -> bool:
    """Whether the cookies are ``Secure``: when people reach the hub over https."""
    return hub.settings.effective_public_url.startswith("https://")


def session_config(hub: Hub) -> CookieBackendConfig:
    return CookieBackendConfig(
        secret=hub.store.secret_box.derive_key("dashboard-session"),
        key=SESSION_COOKIE,
        max_age=SESSION_SECONDS,
        path="/",
        httponly=True,
        samesite="strict",
        secure=secure_cookies(hub),
    )


def csrf_config(hub: Hub) -> CSRFConfig:
    return CSRFConfig(
        secret=hub.store.secret_box.derive_key("dashboard-csrf").hex(),
        cookie_name=CSRF_COOKIE,
        cookie_path="/",
        cookie_httponly=True,
        cookie_samesite="strict",
        cookie_secure=secure_cookies(hub),
    )


def middleware(hub: Hub) -> list[DefineMiddleware]:
    """The session around the CSRF check: a refused form is answered knowing whether someone
    is signed in, and what the handlers change in the session is saved."""
    return [
        DefineMiddleware(_session_middleware, config=session_config(hub)),
        DefineMiddleware(CSRFMiddleware, config=csrf_config(hub)),
    ]


def _session_middleware(app: ASGIApp, config: CookieBackendConfig) -> SessionMiddleware[Any]:
    """``config.middleware``, with the backend made here: Litestar deep-copies a router when
    it is registered, and the backend's cipher cannot be copied."""
    return SessionMiddleware(app=app, backend=_CookieBackend(config=config))


class _CookieBackend(ClientSideSessionBackend):
    """Litestar's cookie backend, reading a cookie it cannot make sense of as no session. (It
    already does for a bad signature or bad base64; a cookie made up to carry a bad expiry
    would otherwise be a 500.)"""

    async def load_from_connection(self, connection: ASGIConnection[Any, Any, Any, Any]) -> Any:
        try:
            return await super().load_from_connection(connection)
        except (SerializationException, KeyError, TypeError, ValueError):
            return {}


def fresh_csrf(hub: Hub) -> tuple[str, Cookie]:
    """A new CSRF token and its cookie: the sign-in form shown again after a refusal, when the
    middleware gave the request none."""
    config = csrf_config(hub)
    token = generate_csrf_token(secret=config.secret)
    return token, _csrf_cookie(config, token, max_age=None)


def expired_csrf(hub: Hub) -> Cookie:
    """Drop the CSRF cookie: the next page gets a new token (sign-in, sign-out, a refusal)."""
    return _csrf_cookie(csrf_config(hub), "", max_age=0)


def _csrf_cookie(config: CSRFConfig, value: str, max_age: int | None) -> Cookie:
    return Cookie(
        key=config.cookie_name,
        value=value,
        max_age=max_age,
        path=config.cookie_path,
        httponly=config.cookie_httponly,
        samesite=config.cookie_samesite,
        secure=config.cookie_secure,
    )


# --- the session ---------------------------------------------------------------------------------


async def viewer_of(request: Request[Any, Any, Any], hub: Hub) -> Viewer | None:
    """Who is signed in; None when nobody, when the session has ended, or the key was revoked."""
    session = request.session
    key, signed_in_at = session.get("key"), session.get("signed_in_at")
    if not isinstance(key, str) or not isinstance(signed_in_at, int):
        return None
    if not 0 <= time.time() - signed_in_at <= SESSION_SECONDS:
        return None
    principal = await keys.authenticate(hub.store, key)
    if principal is None or not principal.may(SIGN_IN_ROLE):  # revoked, or narrowed since
        return None
    return Viewer(principal, await tenants.tenant_name(hub.store, principal.tenant_id))


def to_login(request: Request[Any, Any, Any]) -> Redirect:
    """Back to the sign-in form; saying why when a session was there and has ended."""
    if signed_in_before(request):
        sign_out(
            request, "Your session ended (expired or key revoked): sign in again.", kind="error"
        )
    return Redirect(path="/login", status_code=303)


def signed_in_before(request: Request[Any, Any, Any]) -> bool:
    """Whether the session holds a sign-in (valid or not: see :func:`viewer_of`)."""
    return bool(request.session.get("key"))


def sign_in(request: Request[Any, Any, Any], key: str) -> None:
    """A new session for ``key`` (nothing of a session before it is kept)."""
    request.set_session({"key": key, "signed_in_at": int(time.time())})


def sign_out(request: Request[Any, Any, Any], message: str, kind: str = "ok") -> None:
    """End the session; ``message`` is shown on the sign-in page."""
    request.set_session({})
    flash(request, kind, message)


def flash(request: Request[Any, Any, Any], kind: str, text: str) -> None:
    """A message for the next page (``ok`` or ``error``), shown once."""
    request.session["flash"] = {"kind": kind, "text": text[:300]}


def take_flash(request: Request[Any, Any, Any]) -> dict[str, str] | None:
    """The message left for this page, removed from the session."""
    message = request.session.pop("flash", None)
    if not isinstance(message, dict) or message.get("kind") not in ("ok", "error"):
        return None
    text = message.get("text")
    return {"kind": message["kind"], "text": text} if isinstance(text, str) and text else None
