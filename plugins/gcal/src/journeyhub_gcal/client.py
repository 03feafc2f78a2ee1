"""A small client for the Google Calendar API v3 (the subset journeyhub uses).

Checked against the API's discovery document (google-api-python-client,
``discovery_cache/documents/calendar.v3.json``) and the Calendar guides (errors, sync, push,
quota); see the README. Errors are Google's JSON shape ``{"error": {"code", "message",
"errors": [{"domain", "reason", "message"}], "status"}}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from journeyhub.errors import (
    AuthExpired,
    ConnectorError,
    PermanentError,
    RateLimited,
    RetryableError,
)
from journeyhub.vendor_http import VendorHttp, VendorResponse

from journeyhub_gcal import oauth
from journeyhub_gcal.config import GcalConfig

# 403s that are quota, not permission (Calendar "Handle API errors" guide): wait and retry.
RATE_REASONS = {"rateLimitExceeded", "userRateLimitExceeded", "quotaExceeded"}
# Google sends no Retry-After with these; its guide says "exponential backoff". The per-user
# quota is counted per minute in a sliding window, so half a minute clears most of it.
DEFAULT_RATE_BACKOFF_SECONDS = 30.0


@dataclass(frozen=True)
class GoogleError:
    status: int
    reason: str
    message: str


def google_error(response: VendorResponse) -> GoogleError:
    """The status, first ``errors[].reason`` and message of a Google API error answer."""
    reason, message = "", ""
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        message = str(error.get("message") or "")[:300]
        errors = error.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            reason = str(errors[0].get("reason") or "")
        reason = reason or str(error.get("status") or "")
    return GoogleError(response.status_code, reason, message)


def classify(response: VendorResponse, where: str) -> ConnectorError:
    """The kernel error for a Google API error answer (never containing a credential).

    Google's own rules first (a quota 403 waits, another 403 is permission); the rest is the
    kernel's reading of the status (401 refreshes, 408/409/5xx retry, other 4xx permanent)."""
    err = google_error(response)
    said = f"{err.reason}: {err.message}" if err.reason else err.message
    message = f"Google Calendar answered {err.status} to {where}" + (f" ({said})" if said else "")
    if err.status == 429 or (err.status == 403 and err.reason in RATE_REASONS):
        wait = response.retry_after()
        return RateLimited(
            message,
            retry_after=DEFAULT_RATE_BACKOFF_SECONDS if wait is None else wait,
            vendor_status=err.status,
        )
    if err.status == 403:
        return PermanentError(
            message + " (the Google account needs write access to this calendar)",
            vendor_status=403,
        )
    return response.error(message)


@dataclass
class Answer:
    status: int
    body: Any


class GcalClient:
    """One connection's calls, authenticated with its current access token."""

    def __init__(
        self, http: VendorHttp, config: GcalConfig, credentials: Mapping[str, Any]
    ) -> None:
        token = credentials.get("access_token")
        if not isinstance(token, str) or not token:
            # The kernel authenticates before push/pull; AuthExpired makes it refresh and retry.
            raise AuthExpired("no Google access token yet: refresh first")
        self.http = http
        self.config = config
        self._token = token
        self.last_status: int | None = None

    @property
    def calendar_path(self) -> str:
        return f"/calendars/{quote(self.config.calendar_id, safe='')}"

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        allow: tuple[int, ...] = (),
    ) -> Answer:
        """Call the API; a status in ``allow`` is returned, not raised. No answer raises the
        kernel's ``VendorUnreachable`` or ``OutcomeUnknown`` as it is."""
        where = f"{method} {path}"
        response = await self.http.request(
            method,
            self.config.api_base.rstrip("/") + path,
            params=params,
            json=json,
            headers={"authorization": f"Bearer {self._token}", "accept": "application/json"},
            timeout=self.config.timeout_seconds,
        )
        self.last_status = response.status_code
        if response.status_code in allow:
            return Answer(response.status_code, _json(response))
        if response.status_code >= 300:
            if response.status_code == 401:
                oauth.mark_refused(self._token)
            raise classify(response, where)
        return Answer(response.status_code, _json(response))

    # --- resources ------------------------------------------------------------------------------

    async def calendar(self) -> dict[str, Any]:
        return _object(await self.request("GET", self.calendar_path), "calendars.get")

    def event_path(self, event_id: str) -> str:
        return f"{self.calendar_path}/events/{quote(event_id, safe='')}"

    async def patch_event(self, event_id: str, body: Mapping[str, Any]) -> Answer:
        """events.patch; 404 (no such event) and 410 (gone for good) come back as answers."""
        return await self.request("PATCH", self.event_path(event_id), json=body, allow=(404, 410))

    async def insert_event(self, body: Mapping[str, Any]) -> Answer:
        """events.insert; 409 (the id exists, maybe as a deleted event) comes back as an answer."""
        return await self.request("POST", f"{self.calendar_path}/events", json=body, allow=(409,))

    async def get_event(self, event_id: str) -> dict[str, Any] | None:
        answer = await self.request("GET", self.event_path(event_id), allow=(404,))
        return None if answer.status == 404 else _object(answer, "events.get")

    async def list_events(self, params: Mapping[str, str]) -> Answer:
        """events.list; 410 (the sync token expired) comes back as an answer."""
        return await self.request(
            "GET", f"{self.calendar_path}/events", params=params, allow=(410,)
        )

    async def watch(self, body: Mapping[str, Any]) -> dict[str, Any]:
        answer = await self.request("POST", f"{self.calendar_path}/events/watch", json=body)
        return _object(answer, "events.watch")

    async def stop_channel(self, channel_id: str, resource_id: str) -> bool:
        """channels.stop; False when Google no longer knows the channel (404)."""
        answer = await self.request(
            "POST",
            "/channels/stop",
            json={"id": channel_id, "resourceId": resource_id},
            allow=(404,),
        )
        return answer.status != 404


def _json(response: VendorResponse) -> Any:
    if response.status_code == 204 or not response.content:
        return None
    try:
        return response.json()
    except ValueError as exc:
        if response.status_code >= 300:  # an allowed error status: its body is only detail
            return None
        raise RetryableError(
            f"Google Calendar answered {response.status_code} with non-JSON"
        ) from exc


def _object(answer: Answer, what: str) -> dict[str, Any]:
    if not isinstance(answer.body, dict):
        raise RetryableError(f"Google Calendar answered {what} without a JSON object")
    return answer.body
