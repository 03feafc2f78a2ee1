"""The sandbox's authorization endpoint and ``authorization_code`` grant, over HTTP, as Google's
"OAuth 2.0 for Web Server Applications" describes them; and the connector's OAuth client."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from journeyhub_gcal.client import oauth_client
from journeyhub_gcal.config import GcalConfig
from journeyhub_gcal.sandbox import CLIENT_ID, CLIENT_SECRET, SCOPE, GcalSandbox

REDIRECT_URI = "https://hub.example/oauth/callback"


@pytest.fixture
def google(sandbox: GcalSandbox) -> GcalSandbox:
    sandbox.allow_redirect_uri(REDIRECT_URI)
    return sandbox


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(64)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def authorization(sb: GcalSandbox, challenge: str | None = None, **params: str) -> str:
    query: dict[str, str] = {
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "response_type": "code",
        "scope": SCOPE,
        "state": "st-1",
        "access_type": "offline",
        "prompt": "consent",
    }
    if challenge is not None:
        query |= {"code_challenge": challenge, "code_challenge_method": "S256"}
    query |= params
    return f"{sb.auth_url}?{urlencode({k: v for k, v in query.items() if v})}"


async def decide(sb: GcalSandbox, url: str, decision: str) -> dict[str, str]:
    async with httpx.AsyncClient() as client:
        page = await client.get(url)
        assert page.status_code == 200, page.text
        assert "Allow" in page.text and "Deny" in page.text
        found = re.search(r"name='consent' value='([^']+)'", page.text)
        assert found is not None
        answer = await client.post(
            sb.auth_url + "/decision", data={"consent": found.group(1), "decision": decision}
        )
    assert answer.status_code == 302
    location = answer.headers["location"]
    assert location.startswith(REDIRECT_URI + "?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


async def exchange(sb: GcalSandbox, code: str, verifier: str | None, **form: str) -> httpx.Response:
    body = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        **({"code_verifier": verifier} if verifier else {}),
        **form,
    }
    async with httpx.AsyncClient() as client:
        return await client.post(sb.token_url, data=body)


@pytest.mark.parametrize(
    ("change", "status", "error"),
    [
        ({"client_id": ""}, 400, "invalid_request"),
        ({"client_id": "nobody.apps.googleusercontent.com"}, 401, "invalid_client"),
        ({"redirect_uri": "https://evil.example/cb"}, 400, "redirect_uri_mismatch"),
        ({"response_type": "token"}, 400, "unsupported_response_type"),
        ({"scope": "https://www.googleapis.com/auth/nope"}, 400, "invalid_scope"),
        ({"access_type": "forever"}, 400, "invalid_request"),
        ({"code_challenge": "short", "code_challenge_method": "S256"}, 400, "invalid_request"),
        ({"code_challenge": "x" * 43, "code_challenge_method": "S512"}, 400, "invalid_request"),
    ],
)
async def test_a_bad_request_gets_googles_error_page_never_a_redirect(
    google: GcalSandbox, change: dict[str, str], status: int, error: str
) -> None:
    async with httpx.AsyncClient() as client:
        page = await client.get(authorization(google, **change))
    assert page.status_code == status and "location" not in page.headers
    assert f"Error {status}: {error}" in page.text
    assert not google.consents


async def test_deny_redirects_with_access_denied_and_the_state(google: GcalSandbox) -> None:
    answer = await decide(google, authorization(google, pkce()[1]), "deny")
    assert answer == {"error": "access_denied", "state": "st-1"}
    assert google.denials == 1 and not google.codes


async def test_allow_gives_a_single_use_code_bound_to_its_pkce_verifier(
    google: GcalSandbox,
) -> None:
    verifier, challenge = pkce()
    answer = await decide(google, authorization(google, challenge), "allow")
    assert answer["state"] == "st-1" and answer["scope"] == SCOPE
    tokens = await exchange(google, answer["code"], verifier)
    assert tokens.status_code == 200, tokens.text
    body = tokens.json()
    assert body["token_type"] == "Bearer" and body["access_token"] in google.access_tokens
    assert body["refresh_token"] in google.refresh_tokens and body["scope"] == SCOPE
    # Reused: 400 invalid_grant, as Google answers a code exchanged already.
    again = await exchange(google, answer["code"], verifier)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    assert google.exchanges == 1
    # The refresh grant works with the refresh token the consent gave.
    async with httpx.AsyncClient() as client:
        refreshed = await client.post(
            google.token_url,
            data={
                "grant_type": "refresh_token",
                "refresh_token": body["refresh_token"],
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
            },
        )
    assert refreshed.status_code == 200 and "access_token" in refreshed.json()


@pytest.mark.parametrize(
    ("verifier", "form", "error", "description"),
    [
        (None, {}, "invalid_grant", "Missing code verifier."),
        ("wrong-" * 10, {}, "invalid_grant", "Invalid code verifier."),
        ("ok", {"redirect_uri": "https://hub.example/other"}, "redirect_uri_mismatch", None),
        ("ok", {"client_secret": "wrong"}, "invalid_client", None),
    ],
)
async def test_the_code_exchange_checks_verifier_redirect_uri_and_client(
    google: GcalSandbox,
    verifier: str | None,
    form: dict[str, str],
    error: str,
    description: str | None,
) -> None:
    good, challenge = pkce()
    answer = await decide(google, authorization(google, challenge), "allow")
    refused = await exchange(google, answer["code"], good if verifier == "ok" else verifier, **form)
    assert refused.status_code in (400, 401) and refused.json()["error"] == error
    if description:
        assert refused.json()["error_description"] == description
    assert google.exchanges == 0


async def test_a_refresh_token_only_offline_and_at_a_consent(google: GcalSandbox) -> None:
    async def tokens(**params: str) -> dict[str, Any]:
        verifier, challenge = pkce()
        answer = await decide(google, authorization(google, challenge, **params), "allow")
        response = await exchange(google, answer["code"], verifier)
        assert response.status_code == 200, response.text
        return response.json()

    assert "refresh_token" not in await tokens(access_type="online", prompt="")
    # The client's first offline consent gives one; a later one without prompt=consent none.
    google.consented.clear()
    assert "refresh_token" in await tokens(prompt="")
    assert "refresh_token" not in await tokens(prompt="")
    assert "refresh_token" in await tokens(prompt="consent")


def test_the_connector_asks_for_offline_access_with_the_connections_client() -> None:
    config = GcalConfig(auth_url="https://accounts.example/auth")
    client = oauth_client(config, {"client_id": "cid", "client_secret": "sec"})
    assert client.authorization_url == "https://accounts.example/auth"
    assert client.token_url == config.token_url and client.scopes == (SCOPE,)
    assert client.extra_params == {"access_type": "offline", "prompt": "consent"}
    with pytest.raises(ValueError, match="client_id"):
        oauth_client(config, {"client_secret": "sec"})
