"""The Google sandbox's authorization endpoint and the token endpoint's ``authorization_code``
grant, as Google's "OAuth 2.0 for Web Server Applications" describes them.

- ``GET /o/oauth2/v2/auth``: ``client_id``, ``redirect_uri`` (exactly one registered for the
  client: :meth:`GcalSandbox.allow_redirect_uri`), ``response_type=code``, ``scope``,
  ``state``, ``access_type`` (``online``/``offline``), ``prompt``, ``code_challenge`` and
  ``code_challenge_method`` (``S256`` or ``plain``). A request that cannot be trusted to go
  back (an unknown client, a redirect URI not registered, a missing or bad parameter) gets
  Google's error page ("Error 400: redirect_uri_mismatch"), never a redirect. Otherwise a
  consent page with Allow and Deny buttons: Allow redirects with ``code``, ``scope`` and
  ``state``; Deny with ``error=access_denied`` and ``state``.
- ``POST /token`` with ``grant_type=authorization_code``: the code is single-use (a second
  exchange is ``400 invalid_grant``), expires after 10 minutes, is bound to its client and
  redirect URI (``400 redirect_uri_mismatch``) and to its PKCE challenge (``400
  invalid_grant`` "Missing code verifier." / "Invalid code verifier."). Google sends a refresh
  token only for ``access_type=offline``, and only at the client's first consent or with
  ``prompt=consent``.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from litestar import Request, Response, get, post
from litestar.handlers import HTTPRouteHandler

from journeyhub_gcal.sandbox import SCOPE, USER, oauth_fail

if TYPE_CHECKING:
    from journeyhub_gcal.sandbox import GcalSandbox

AUTH_PATH = "/o/oauth2/v2/auth"
CODE_TTL = 600.0
KNOWN_SCOPES = {
    SCOPE,
    "https://www.googleapis.com/auth/calendar.readonly",
    "https://www.googleapis.com/auth/calendar.events",
    "openid",
    "email",
    "profile",
}
PROMPTS = {"none", "consent", "select_account"}
# RFC 7636 §4.2: S256 challenges are 43 base64url characters; a plain one is the verifier.
CHALLENGE = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
VERIFIER = CHALLENGE


def error_page(code: int, error: str, detail: str) -> Response[Any]:
    """Google's "Authorization Error" page: shown, never redirected to the client."""
    body = (
        "<!doctype html><html><head><meta charset='utf-8'><title>Error "
        f"{code} ({html.escape(error)})</title></head><body><h1>Authorization Error</h1>"
        f"<p id='error-code'>Error {code}: {html.escape(error)}</p>"
        f"<p id='error-detail'>{html.escape(detail)}</p></body></html>"
    )
    return Response(body, status_code=code, media_type="text/html")


def _check(sb: GcalSandbox, query: Mapping[str, str]) -> Response[Any] | None:
    """Google's checks of an authorization request, in its order; None when it is fine."""
    client_id = query.get("client_id")
    if not client_id:
        return error_page(400, "invalid_request", "Missing required parameter: client_id")
    if client_id not in sb.clients:
        return error_page(401, "invalid_client", "The OAuth client was not found.")
    redirect_uri = query.get("redirect_uri")
    if not redirect_uri:
        return error_page(400, "invalid_request", "Missing required parameter: redirect_uri")
    if redirect_uri not in sb.redirect_uris.get(client_id, set()):
        return error_page(
            400,
            "redirect_uri_mismatch",
            "You can't sign in to this app because it doesn't comply with Google's OAuth 2.0 "
            f"policy. redirect_uri: {redirect_uri}",
        )
    response_type = query.get("response_type")
    if not response_type:
        return error_page(400, "invalid_request", "Missing required parameter: response_type")
    if response_type != "code":
        why = f"Invalid response_type: {response_type}"
        return error_page(400, "unsupported_response_type", why)
    scopes = (query.get("scope") or "").split()
    if not scopes:
        return error_page(400, "invalid_request", "Missing required parameter: scope")
    if unknown := [s for s in scopes if s not in KNOWN_SCOPES]:
        return error_page(
            400, "invalid_scope", f"Some requested scopes were invalid. {{invalid={unknown}}}"
        )
    if query.get("access_type", "online") not in ("online", "offline"):
        return error_page(400, "invalid_request", f"Invalid access_type: {query['access_type']}")
    if not set((query.get("prompt") or "consent").split()) <= PROMPTS:
        return error_page(400, "invalid_request", f"Invalid prompt: {query['prompt']}")
    challenge, method = query.get("code_challenge"), query.get("code_challenge_method")
    if method is not None and challenge is None:
        return error_page(400, "invalid_request", "Missing code_challenge.")
    if challenge is not None:
        if (method or "plain") not in ("plain", "S256"):
            return error_page(400, "invalid_request", "Invalid code_challenge_method.")
        if not CHALLENGE.match(challenge) or (method == "S256" and len(challenge) != 43):
            return error_page(400, "invalid_request", "Invalid code_challenge.")
    return None


def back_to_client(redirect_uri: str, **params: str | None) -> Response[Any]:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    separator = "&" if "?" in redirect_uri else "?"
    return Response(b"", status_code=302, headers={"location": f"{redirect_uri}{separator}{query}"})


def consent_page(consent_id: str, client_id: str, scopes: list[str]) -> Response[Any]:
    items = "".join(f"<li>{html.escape(s)}</li>" for s in scopes)
    body = (
        "<!doctype html><html><head><meta charset='utf-8'><title>Sign in - Google Accounts"
        "</title></head><body><h1>Sandbox Studio wants to access your Google Account</h1>"
        f"<p id='account'>{html.escape(USER)}</p>"
        f"<p>Client: <span id='client'>{html.escape(client_id)}</span></p>"
        f"<p>This will allow it to:</p><ul id='scopes'>{items}</ul>"
        f"<form method='post' action='{AUTH_PATH}/decision'>"
        f"<input type='hidden' name='consent' value='{html.escape(consent_id)}'>"
        "<button type='submit' name='decision' value='deny' id='submit_deny_access'>Deny"
        "</button> <button type='submit' name='decision' value='allow' "
        "id='submit_approve_access'>Allow</button></form></body></html>"
    )
    return Response(body, media_type="text/html")


def challenge_of(verifier: str, method: str) -> str:
    if method == "plain":
        return verifier
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def exchange_code(sb: GcalSandbox, form: Mapping[str, str], client_id: str) -> Response[Any]:
    """The ``authorization_code`` grant, for an authenticated ``client_id``."""
    code = form.get("code")
    if not code:
        return oauth_fail(400, "invalid_request", "Missing required parameter: code")
    with sb._lock:
        grant = sb.codes.get(code)
        if grant is None or grant["client_id"] != client_id:
            return oauth_fail(400, "invalid_grant", "Malformed auth code.")
        if grant["used"] or grant["expires"] < sb.now():
            return oauth_fail(400, "invalid_grant", "Bad Request")
        grant["used"] = True  # spent by this attempt, whatever follows
    if form.get("redirect_uri") != grant["redirect_uri"]:
        return oauth_fail(400, "redirect_uri_mismatch", "Bad Request")
    challenge = grant["code_challenge"]
    if challenge is not None:
        verifier = form.get("code_verifier")
        if not verifier:
            return oauth_fail(400, "invalid_grant", "Missing code verifier.")
        if not VERIFIER.match(verifier) or challenge_of(verifier, grant["method"]) != challenge:
            return oauth_fail(400, "invalid_grant", "Invalid code verifier.")
    answer: dict[str, Any] = {
        "access_token": sb.issue_access_token(),
        "expires_in": sb.access_token_ttl,
        "scope": grant["scope"],
        "token_type": "Bearer",
    }
    if grant["refresh"]:
        answer["refresh_token"] = sb.issue_refresh_token()
    with sb._lock:
        sb.exchanges += 1
    return Response(
        answer,
        headers={
            "cache-control": "no-cache, no-store, max-age=0, must-revalidate",
            "pragma": "no-cache",
        },
    )


def routes(sb: GcalSandbox) -> list[HTTPRouteHandler]:
    @get(AUTH_PATH)
    async def authorize(request: Request[Any, Any, Any]) -> Response[Any]:
        query = dict(request.query_params.items())
        if (refused := _check(sb, query)) is not None:
            return refused
        consent_id = secrets.token_urlsafe(16)
        with sb._lock:
            sb.consents[consent_id] = query
        return consent_page(consent_id, query["client_id"], query["scope"].split())

    @post(AUTH_PATH + "/decision", status_code=302)
    async def decide(request: Request[Any, Any, Any]) -> Response[Any]:
        form = await request.form()
        with sb._lock:
            query = sb.consents.pop(str(form.get("consent") or ""), None)
        if query is None:
            return error_page(400, "invalid_request", "This consent has expired or was used.")
        redirect_uri, state = query["redirect_uri"], query.get("state")
        if form.get("decision") != "allow":
            with sb._lock:
                sb.denials += 1
            return back_to_client(redirect_uri, error="access_denied", state=state)
        client_id, offline = query["client_id"], query.get("access_type") == "offline"
        prompts = set((query.get("prompt") or "").split())
        code = "4/0" + secrets.token_urlsafe(40)
        with sb._lock:
            first_consent = client_id not in sb.consented
            sb.consented.add(client_id)
            sb.codes[code] = {
                "client_id": client_id,
                "redirect_uri": redirect_uri,
                "scope": query["scope"],
                "code_challenge": query.get("code_challenge"),
                "method": query.get("code_challenge_method") or "plain",
                "refresh": offline and (first_consent or "consent" in prompts),
                "expires": sb.now() + CODE_TTL,
                "used": False,
            }
        return back_to_client(redirect_uri, state=state, code=code, scope=query["scope"])

    return [authorize, decide]
