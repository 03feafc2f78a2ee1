"""OAuth2 access tokens kept fresh, and the Calendar API v3 calls made with them (the subset
journeyhub uses; calendar.v3 discovery document and guides, see the README).

An access token lasts about an hour, a refresh token until it is revoked: then the token
endpoint answers ``400 invalid_grant``, and only a person can fix that (``ReauthRequired``).
The kernel serialises refreshes per connection. API errors are ``{"error": {"message",
"errors": [{"reason", ...}], "status", ...}}``.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from journeyhub.kit import (
    AuthExpired,
    ConnectorError,
    OAuthClient,
    PermanentError,
    RateLimited,
    ReauthRequired,
    RetryableError,
    VendorHttp,
    VendorResponse,
)

from journeyhub_gcal.config import OAUTH_SCOPES, GcalConfig, GcalCredentials, known_zone

REFRESH_MARGIN_SECONDS = 120.0  # refresh a token that would expire within this
# Token endpoint errors (RFC 6749 §5.2) that a retry cannot fix, only a person.
REAUTH_HINTS = {
    "invalid_grant": "the refresh token was revoked or has expired",
    "invalid_client": "the OAuth client id or secret is wrong or was deleted",
    "unauthorized_client": "the OAuth client id or secret is wrong or was deleted",
}
# 403s that are quota, not permission (Calendar "Handle API errors" guide): wait and retry.
RATE_REASONS = {"rateLimitExceeded", "userRateLimitExceeded", "quotaExceeded"}
# Google sends no Retry-After with these; its guide says "exponential backoff". The per-user
# quota is counted per minute in a sliding window, so half a minute clears most of it.
DEFAULT_RATE_BACKOFF_SECONDS = 30.0

# The calendars' own time zones by (connection, calendar id): (zone, monotonic time read).
# A calendar's zone seldom changes; it is read again after this long.
ZONE_TTL_SECONDS = 6 * 3600.0
time_zones: dict[tuple[str, str], tuple[str, float]] = {}

# Access tokens Google refused with a 401 before their expires_at (revoked, or a clock off):
# the next authenticate refreshes them whatever their expiry says. Digests, never the tokens.
_refused: set[str] = set()


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _json_object(response: VendorResponse) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _token_error(response: VendorResponse, credentials: Mapping[str, Any]) -> ConnectorError:
    body, status = _json_object(response), response.status_code
    error: Any = body.get("error")
    description: Any = body.get("error_description")
    if isinstance(error, dict):  # some Google front ends answer in the API error shape
        error, description = error.get("status"), error.get("message")
    error = error if isinstance(error, str) else ""
    description = description[:200] if isinstance(description, str) else ""
    said = f"{error}: {description}" if description else error or "no error code"
    message = f"Google token endpoint answered {status} ({said})"
    for name in ("client_secret", "refresh_token", "access_token"):
        secret = credentials.get(name)
        if isinstance(secret, str) and len(secret) >= 4:
            message = message.replace(secret, "***")
    if error in REAUTH_HINTS:
        hint = f"{REAUTH_HINTS[error]}; reconnect the Google account"
        return ReauthRequired(f"{message}: {hint}", vendor_status=status)
    if status in (408, 429) or status >= 500:
        return response.error(message)  # the kernel's reading: 429 waits, 408 and 5xx retry
    # Any other refusal (a 401 or a 409 included) is not fixed by refreshing again.
    return PermanentError(message, vendor_status=status)


def oauth_client(config: GcalConfig, credentials: Mapping[str, Any]) -> OAuthClient:
    """Google's flow for web server apps with the connection's own OAuth client (its Google
    Cloud project's). ``access_type=offline`` asks for a refresh token, and ``prompt=consent``
    shows the consent screen every time, because Google sends a refresh token only at a
    consent: a reconnect without one would get none."""
    client_id, client_secret = credentials.get("client_id"), credentials.get("client_secret")
    if not (isinstance(client_id, str) and client_id.strip()):
        raise ValueError("set the connection's credentials client_id and client_secret first")
    if not (isinstance(client_secret, str) and client_secret.strip()):
        raise ValueError("set the connection's credentials client_secret first")
    return OAuthClient(
        authorization_url=config.auth_url,
        token_url=config.token_url,
        client_id=client_id,
        client_secret=client_secret,
        scopes=OAUTH_SCOPES,
        extra_params={"access_type": "offline", "prompt": "consent"},
    )


async def refresh_access_token(
    http: VendorHttp, config: GcalConfig, credentials: Mapping[str, Any]
) -> dict[str, Any]:
    """Trade the refresh token for a new access token; return the whole new credentials. Google
    may send a new refresh token (rotation); without one, the old one is kept."""
    refresh_token = credentials.get("refresh_token")
    client_id, client_secret = credentials.get("client_id"), credentials.get("client_secret")
    if not (isinstance(refresh_token, str) and refresh_token):
        raise ReauthRequired("the connection has no Google refresh_token: connect the account")
    if not (isinstance(client_id, str) and client_id and isinstance(client_secret, str)):
        raise ReauthRequired("the connection has no OAuth client_id/client_secret")
    # The client credentials go in the form (client_secret_post). No answer raises
    # VendorUnreachable or OutcomeUnknown as it is: they name the host, never the form.
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": client_id}
    response = await http.post(
        config.token_url,
        data={**form, "client_secret": client_secret},
        headers={"accept": "application/json"},
        timeout=config.timeout_seconds,
    )
    if response.status_code != 200:
        raise _token_error(response, credentials)
    payload = _json_object(response)
    if not isinstance(payload.get("access_token"), str):
        raise RetryableError("Google token endpoint answered 200 without an access_token")
    lasts, rotated = payload.get("expires_in"), payload.get("refresh_token")
    return {
        **credentials,
        "access_token": payload["access_token"],
        # No expiry given: assume Google's hour rather than "never".
        "expires_at": time.time() + (float(lasts) if isinstance(lasts, int | float) else 3600.0),
        "refresh_token": rotated if isinstance(rotated, str) and rotated else refresh_token,
    }


async def authenticate(
    http: VendorHttp, config: GcalConfig, credentials: Mapping[str, Any], refused: bool = False
) -> dict[str, Any] | None:
    """New credentials when the access token is missing, expires within 120 s or was refused
    (now, or by an earlier 401); ``None`` when it is still good."""
    token, expires_at = credentials.get("access_token"), credentials.get("expires_at")
    if not refused and isinstance(token, str) and token and isinstance(expires_at, int | float):
        left = float(expires_at) - time.time()
        if left >= REFRESH_MARGIN_SECONDS and _digest(token) not in _refused:
            return None
    return await refresh_access_token(http, config, credentials)


def classify(response: VendorResponse, where: str) -> ConnectorError:
    """The kernel error for a Google API error answer: Google's own rules first (a quota 403
    waits, another 403 is permission), then the kernel's reading of the status."""
    error = _json_object(response).get("error")
    error = error if isinstance(error, dict) else {}
    errors = error.get("errors")
    first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else {}
    reason = str(first.get("reason") or error.get("status") or "")
    said = str(error.get("message") or "")[:300]
    said = f"{reason}: {said}" if reason else said
    status = response.status_code
    message = f"Google Calendar answered {status} to {where}" + (f" ({said})" if said else "")
    if status == 429 or (status == 403 and reason in RATE_REASONS):
        wait = response.retry_after()
        backoff = DEFAULT_RATE_BACKOFF_SECONDS if wait is None else wait
        return RateLimited(message, retry_after=backoff, vendor_status=status)
    if status == 403:
        hint = " (the Google account needs write access to this calendar)"
        return PermanentError(message + hint, vendor_status=403)
    return response.error(message)


class GcalClient:
    """One connection's calls, with its current access token (raw or decoded credentials)."""

    def __init__(
        self, http: VendorHttp, config: GcalConfig, creds: Mapping[str, Any] | GcalCredentials
    ) -> None:
        token = creds.get("access_token") if isinstance(creds, Mapping) else creds.access_token
        if not isinstance(token, str) or not token:
            # The kernel authenticates before push/pull; AuthExpired makes it refresh and retry.
            raise AuthExpired("no Google access token yet: refresh first")
        self.http, self.config, self._token = http, config, token
        self.last_status: int | None = None
        self.calendar_path = f"/calendars/{quote(config.calendar_id, safe='')}"
        self.events_path = f"{self.calendar_path}/events"

    def event_path(self, event_id: str) -> str:
        return f"{self.events_path}/{quote(event_id, safe='')}"

    async def call(
        self, method: str, path: str, *, allow: tuple[int, ...] = (), **request: Any
    ) -> tuple[int, Any]:
        """``(status, JSON body or None)``; an error status in ``allow`` is returned, any other
        raised. No answer raises the kernel's ``VendorUnreachable`` or ``OutcomeUnknown``."""
        response = await self.http.request(
            method,
            self.config.api_base.rstrip("/") + path,
            headers={"authorization": f"Bearer {self._token}", "accept": "application/json"},
            timeout=self.config.timeout_seconds,
            **request,
        )
        status = self.last_status = response.status_code
        if status >= 300 and status not in allow:
            if status == 401:
                if len(_refused) > 10_000:  # a bound, not a cache policy: stale ones are harmless
                    _refused.clear()
                _refused.add(_digest(self._token))
            raise classify(response, f"{method} {path}")
        if status >= 300 or status == 204 or not response.content:
            return status, None  # an allowed error status: its body is only detail
        try:
            return status, response.json()
        except ValueError:
            raise RetryableError(f"Google Calendar answered {status} with non-JSON") from None

    async def time_zone(self, connection_id: str) -> str:
        """The zone of times without an offset: the config's, else the calendar's own
        (``calendars.get`` ``timeZone``, "UTC" when it has none), cached per connection."""
        if self.config.time_zone:
            return self.config.time_zone
        key = (connection_id, self.config.calendar_id)
        cached = time_zones.get(key)
        if cached is None or time.monotonic() - cached[1] > ZONE_TTL_SECONDS:
            zone = (await self.calendar()).get("timeZone")
            name = zone if isinstance(zone, str) and known_zone(zone) else "UTC"
            cached = time_zones[key] = (name, time.monotonic())
        return cached[0]

    async def calendar(self) -> dict[str, Any]:
        _, body = await self.call("GET", self.calendar_path)
        if not isinstance(body, dict):
            raise RetryableError("Google Calendar answered calendars.get without a JSON object")
        return body
