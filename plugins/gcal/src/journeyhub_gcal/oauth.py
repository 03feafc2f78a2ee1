"""OAuth2 access tokens for Google: refresh with the refresh token, before they run out.

The token request is built with authlib's RFC 6749 helpers and sent through the hub's own
``VendorHttp`` (its pool and timeouts), so no second HTTP client is opened per refresh.
Google access tokens last about an hour (``expires_in`` 3599); a refresh token lives until the
user or Google revokes it, and then the token endpoint answers ``400 {"error":
"invalid_grant"}``: only a person can fix that, so it raises ``ReauthRequired``.

The kernel serialises refreshes per connection across workers around ``journeyhub_authenticate``;
nothing here locks.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from typing import Any

from authlib.oauth2.rfc6749.parameters import prepare_token_request
from authlib.oauth2.rfc6749.wrappers import OAuth2Token
from journeyhub.errors import (
    ConnectorError,
    PermanentError,
    ReauthRequired,
    RetryableError,
)
from journeyhub.vendor_http import VendorHttp, VendorResponse

from journeyhub_gcal.config import GcalConfig

REFRESH_MARGIN_SECONDS = 120.0  # refresh a token that would expire within this
# Errors of the token endpoint (RFC 6749 §5.2) that a retry cannot fix, only a person.
REAUTH_ERRORS = {"invalid_grant", "invalid_client", "unauthorized_client"}

# Access tokens Google refused with a 401 before their expires_at (revoked, or a clock off):
# the next authenticate refreshes them whatever their expiry says. Digests, never the tokens.
_refused: set[str] = set()


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def mark_refused(access_token: str) -> None:
    """Remember that Google answered 401 to this token (called by the client)."""
    if len(_refused) > 10_000:  # a bound, not a cache policy: stale digests are harmless
        _refused.clear()
    _refused.add(_digest(access_token))


def needs_refresh(
    credentials: Mapping[str, Any], now: float | None = None, margin: float = REFRESH_MARGIN_SECONDS
) -> bool:
    token = credentials.get("access_token")
    expires_at = credentials.get("expires_at")
    if not isinstance(token, str) or not token or not isinstance(expires_at, int | float):
        return True
    if _digest(token) in _refused:
        return True
    return float(expires_at) - (time.time() if now is None else now) < margin


def _scrub(text: str, credentials: Mapping[str, Any]) -> str:
    for name in ("client_secret", "refresh_token", "access_token"):
        secret = credentials.get(name)
        if isinstance(secret, str) and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


def _error_of(response: VendorResponse) -> tuple[str, str]:
    """``(error, error_description)`` of a token endpoint error answer, short."""
    try:
        body = response.json()
    except ValueError:
        return "", ""
    if not isinstance(body, dict):
        return "", ""
    error, description = body.get("error"), body.get("error_description")
    if isinstance(error, dict):  # some Google front ends answer in the API error shape
        error, description = error.get("status"), error.get("message")
    return (
        error if isinstance(error, str) else "",
        description[:200] if isinstance(description, str) else "",
    )


def _token_error(response: VendorResponse, credentials: Mapping[str, Any]) -> ConnectorError:
    status = response.status_code
    error, description = _error_of(response)
    said = f"{error}: {description}" if description else error or "no error code"
    message = _scrub(f"Google token endpoint answered {status} ({said})", credentials)
    if error in REAUTH_ERRORS:
        hint = (
            "the refresh token was revoked or has expired"
            if error == "invalid_grant"
            else "the OAuth client id or secret is wrong or was deleted"
        )
        return ReauthRequired(
            f"{message}: {hint}; reconnect the Google account", vendor_status=status
        )
    if status in (408, 429) or status >= 500:
        # The kernel's reading: 429 waits its Retry-After, 408 and 5xx retry.
        return response.error(message)
    # Any other refusal (a 401 or a 409 included) is not fixed by refreshing again.
    return PermanentError(message, vendor_status=status)


async def refresh_access_token(
    http: VendorHttp, config: GcalConfig, credentials: Mapping[str, Any]
) -> dict[str, Any]:
    """Trade the refresh token for a new access token; return the whole new credentials.

    Google may send a new refresh token (rotation); without one, the old one is kept.
    """
    refresh_token = credentials.get("refresh_token")
    client_id, client_secret = credentials.get("client_id"), credentials.get("client_secret")
    if not (isinstance(refresh_token, str) and refresh_token):
        raise ReauthRequired("the connection has no Google refresh_token: connect the account")
    if not (isinstance(client_id, str) and client_id and isinstance(client_secret, str)):
        raise ReauthRequired("the connection has no OAuth client_id/client_secret")
    # client_secret_post: Google's token endpoint takes the client credentials in the form.
    body = prepare_token_request(
        "refresh_token",
        refresh_token=refresh_token,
        client_id=client_id,
        client_secret=client_secret,
    )
    # No answer raises the kernel's VendorUnreachable or OutcomeUnknown as it is (their
    # messages name the host only, never the form with the secrets).
    response = await http.post(
        config.token_url,
        content=body.encode(),
        headers={
            "content-type": "application/x-www-form-urlencoded",
            "accept": "application/json",
        },
        timeout=config.timeout_seconds,
    )
    if response.status_code != 200:
        raise _token_error(response, credentials)
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if not isinstance(payload, dict) or not isinstance(payload.get("access_token"), str):
        raise RetryableError("Google token endpoint answered 200 without an access_token")
    token = OAuth2Token.from_dict(dict(payload))  # turns expires_in into expires_at
    expires_at = token.get("expires_at")
    new_refresh = token.get("refresh_token")
    return {
        **credentials,
        "access_token": token["access_token"],
        # No expiry given: assume Google's hour rather than "never".
        "expires_at": float(expires_at) if expires_at is not None else time.time() + 3600.0,
        "refresh_token": new_refresh
        if isinstance(new_refresh, str) and new_refresh
        else refresh_token,
    }


async def authenticate(
    http: VendorHttp,
    config: GcalConfig,
    credentials: Mapping[str, Any],
    now: float | None = None,
) -> dict[str, Any] | None:
    """New credentials when the access token is missing, refused or expires within 120 s;
    ``None`` when it is still good."""
    if not needs_refresh(credentials, now):
        return None
    return await refresh_access_token(http, config, credentials)
