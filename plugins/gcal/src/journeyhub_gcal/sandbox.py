"""A local fake of Google's OAuth2 token endpoint and the Calendar API v3 subset journeyhub uses,
for tests, benchmarks and the demo.

Served on a loopback port by the kernel's ``SandboxServer``:

- ``GET /o/oauth2/v2/auth``: the consent screen (Allow / Deny), and ``POST /token`` with the
  ``authorization_code`` grant (PKCE, single-use codes): ``sandbox_oauth``. Redirect URIs must be
  registered first (``allow_redirect_uri``).
- ``POST /token``: the ``refresh_token`` grant, client credentials in the form or as HTTP
  Basic; answers ``{access_token, expires_in, scope, token_type}`` (plus a new
  ``refresh_token`` when ``rotate_refresh_tokens``), or RFC 6749 errors (``invalid_grant`` 400
  for a revoked refresh token, ``invalid_client`` 401, ...). Access tokens expire after
  ``access_token_ttl`` seconds.
- ``/calendar/v3``: ``calendars.get``, ``events.insert/get/update/patch/delete/list/watch`` and
  ``channels.stop``, ``Authorization: Bearer``; errors in Google's shape
  ``{"error": {"errors": [{domain, reason, message}], "code", "message", "status"}}``. Every
  request is first checked against ``calendar_v3.json`` (``sandbox_contract``). Event ids
  follow Google's rule (base32hex, 5-1024); an id that exists, deleted or purged, is a 409
  ``duplicate``. ``events.list`` pages with
  ``maxResults``/``pageToken`` and syncs with ``syncToken``/``nextSyncToken`` (only on the
  last page; 410 ``fullSyncRequired`` once invalidated; the parameters Google forbids with a
  sync token are refused). Deleted events are ``status: "cancelled"``.
- Watch channels: ``sync`` on opening and ``exists`` on each change are POSTed to the channel
  address with Google's headers and no body, when ``deliver_notifications`` is on; ``notify``
  sends one on demand.

Options: ``rate_limit`` (calls/s per access token, then 403 ``rateLimitExceeded`` or, with
``rate_limit_status=429``, a 429), ``faults`` (``Faults``, applied to every call),
``require_https`` for channel addresses. Inspection: ``events()``, ``event(id)``,
``inserts[id]`` (events created per id) and ``insert_attempts[id]``, ``token_calls``,
``requests``, ``channels``, ``notifications``. Actions as a user would: ``user_add``,
``user_edit`` (bumps ``updated`` and ``sequence``), ``user_delete`` (→ cancelled), and
Google's ``purge`` (a deleted event gone for good, its id still taken); ``guest_emails``;
``revoke_refresh_token``, ``expire_access_tokens``, ``invalidate_sync_tokens``, ``advance``
(the token clock), ``lose_response`` (the call is carried out, its answer lost).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import secrets
import threading
import time
from collections import Counter, deque
from collections.abc import Mapping
from copy import deepcopy
from datetime import UTC, date, datetime, timedelta
from email.utils import formatdate
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import aiohttp
from journeyhub.testing.sandbox import Faults, SandboxServer
from litestar import Request, Response

PREFIX = "/calendar/v3"
CLIENT_ID = "sandbox-client.apps.googleusercontent.com"
CLIENT_SECRET = "GOCSPX-sandbox-client-secret"  # noqa: S105 (the fake vendor's own)
REFRESH_TOKEN = "1//sandbox-refresh-token"  # noqa: S105 (the fake vendor's own)
USER = "sandbox@example.com"
SCOPE = "https://www.googleapis.com/auth/calendar"
PROJECT = "123456789012"
EVENT_ID = re.compile(r"^[0-9a-v]{5,1024}$")
CHANNEL_ID = re.compile(r"^[A-Za-z0-9\-_+/=]{1,64}$")
MAX_RESULTS = 2500
CHANNEL_TTL_DEFAULT = 7 * 24 * 3600  # ASSUMED: Google's default/maximum channel lifetime
WRITABLE = {
    "summary",
    "description",
    "location",
    "start",
    "end",
    "status",
    "extendedProperties",
    "colorId",
    "transparency",
    "visibility",
    "reminders",
    "attendees",
    "recurrence",
    "source",
    "guestsCanInviteOthers",
    "guestsCanModify",
    "guestsCanSeeOtherGuests",
    "anyoneCanAddSelf",
    "endTimeUnspecified",
    "sequence",
    "attachments",
}
# google.rpc codes by HTTP status (Google's API design guide, "Errors"), the error's "status".
STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}
# Parameters that events.list refuses with a syncToken (discovery document, syncToken).
NOT_WITH_SYNC = (
    "iCalUID",
    "orderBy",
    "privateExtendedProperty",
    "q",
    "sharedExtendedProperty",
    "timeMin",
    "timeMax",
    "updatedMin",
)


def google_error(
    code: int, reason: str, message: str, domain: str = "global", **extra: str
) -> dict[str, Any]:
    """Google's JSON error body (Calendar "Handle API errors" guide)."""
    error: dict[str, Any] = {
        "errors": [{"domain": domain, "reason": reason, "message": message, **extra}],
        "code": code,
        "message": message,
    }
    if code in STATUS:
        error["status"] = STATUS[code]
    return {"error": error}


def fail(
    code: int, reason: str, message: str, domain: str = "global", **extra: str
) -> Response[Any]:
    headers = {}
    if code == 401:
        headers["www-authenticate"] = (
            'Bearer realm="https://accounts.google.com/", error="invalid_token"'
        )
    return Response(
        google_error(code, reason, message, domain, **extra), status_code=code, headers=headers
    )


def oauth_fail(code: int, error: str, description: str) -> Response[Any]:
    return Response(
        {"error": error, "error_description": description},
        status_code=code,
        headers={"cache-control": "no-cache, no-store, max-age=0, must-revalidate"},
    )


def rfc3339(moment: datetime) -> str:
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )


def merge_patch(target: dict[str, Any], patch_body: Mapping[str, Any]) -> dict[str, Any]:
    """Patch semantics: objects merge, a null removes the field, anything else replaces."""
    out = dict(target)
    for key, value in patch_body.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge_patch(dict(out[key]), value)
        elif isinstance(value, Mapping):
            out[key] = merge_patch({}, value)
        else:
            out[key] = deepcopy(value)
    return out


class GcalSandbox:
    def __init__(
        self,
        *,
        access_token_ttl: int = 3599,
        rate_limit: float | None = None,
        rate_limit_status: int = 403,
        require_https: bool = True,
        deliver_notifications: bool = False,
        time_zone: str = "UTC",
        port: int | None = None,
    ) -> None:
        self.access_token_ttl = access_token_ttl
        self.rate_limit = rate_limit
        self.rate_limit_status = rate_limit_status
        self.require_https = require_https
        self.deliver_notifications = deliver_notifications
        self.time_zone = time_zone
        self.faults = Faults()
        self._lock = threading.RLock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sending: asyncio.Lock | None = None  # notifications go out one at a time
        self.reset()
        # A late import: sandbox_app imports this module for its constants and helpers.
        from journeyhub_gcal.sandbox_app import LoseResponses, create_app

        self.app = LoseResponses(create_app(self), self)
        self.server = SandboxServer(self.app, port=port)

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> GcalSandbox:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def __enter__(self) -> GcalSandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def api_base(self) -> str:
        return self.url + PREFIX

    @property
    def token_url(self) -> str:
        return self.url + "/token"

    @property
    def auth_url(self) -> str:
        return self.url + "/o/oauth2/v2/auth"

    def config(self, **overrides: Any) -> dict[str, Any]:
        """A connection config pointing at this sandbox."""
        return {
            "api_base": self.api_base,
            "token_url": self.token_url,
            "auth_url": self.auth_url,
            **overrides,
        }

    def credentials(self, **overrides: Any) -> dict[str, Any]:
        """Connection credentials for this sandbox's OAuth client (no access token yet)."""
        return {
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "refresh_token": REFRESH_TOKEN,
            **overrides,
        }

    def reset(self) -> None:
        with self._lock:
            self.clients = {CLIENT_ID: CLIENT_SECRET}
            # The OAuth consent: registered redirect URIs per client, consent pages shown and
            # not yet answered, codes given (sandbox_oauth), clients consented to at least once.
            self.redirect_uris: dict[str, set[str]] = {CLIENT_ID: set()}
            self.consents: dict[str, dict[str, str]] = {}
            self.codes: dict[str, dict[str, Any]] = {}
            self.consented: set[str] = set()
            self.exchanges = 0  # codes exchanged for tokens
            self.denials = 0  # consents refused
            self.refresh_tokens: set[str] = {REFRESH_TOKEN}
            self.access_tokens: dict[str, float] = {}  # token -> expiry (sandbox clock)
            self.rotate_refresh_tokens = False
            self.token_calls = 0
            self.refusals = 0  # requests refused by the discovery-derived contract
            self.refreshes = 0
            self.calendars: dict[str, dict[str, Any]] = {
                USER: {"summary": "Sandbox Studio", "timeZone": self.time_zone}
            }
            self.store: dict[str, dict[str, dict[str, Any]]] = {USER: {}}
            self.purged: set[tuple[str, str]] = set()  # (calendar, event id): gone, id taken
            self.guest_emails: list[tuple[str, str]] = []  # (event id, address) Google mailed
            self.versions: dict[tuple[str, str], int] = {}
            self.version = 0
            self.inserts: Counter[str] = Counter()
            self.insert_attempts: Counter[str] = Counter()
            self.requests: Counter[str] = Counter()
            self.sync_tokens: dict[str, tuple[str, int]] = {}
            self.pages: dict[str, tuple[str, list[str], int, int]] = {}
            self.channels: dict[str, dict[str, Any]] = {}
            self.notifications: list[dict[str, Any]] = []
            self._hits: dict[str, deque[float]] = {}
            self._lost: list[tuple[str, str]] = []
            self._last_stamp: datetime | None = None
            self._skew = 0.0
        self.faults.clear()

    # --- clocks ---------------------------------------------------------------------------------

    def now(self) -> float:
        """The token clock: wall time plus what ``advance`` added."""
        return time.time() + self._skew

    def advance(self, seconds: float) -> None:
        self._skew += seconds

    def _next_stamp(self) -> str:
        """``updated`` times strictly increase, as a server's commit order does."""
        moment = datetime.now(UTC)
        if self._last_stamp is not None and moment <= self._last_stamp:
            moment = self._last_stamp + timedelta(milliseconds=1)
        self._last_stamp = moment
        return rfc3339(moment)

    # --- OAuth ----------------------------------------------------------------------------------

    def allow_redirect_uri(self, uri: str, client_id: str = CLIENT_ID) -> None:
        """Register a redirect URI with the OAuth client, as in Google Cloud's console."""
        with self._lock:
            self.redirect_uris.setdefault(client_id, set()).add(uri)

    def issue_refresh_token(self) -> str:
        token = "1//sandbox-" + secrets.token_urlsafe(24)
        with self._lock:
            self.refresh_tokens.add(token)
        return token

    def revoke_refresh_token(self, token: str = REFRESH_TOKEN) -> None:
        """As a user removing the app's access in their Google account."""
        with self._lock:
            self.refresh_tokens.discard(token)

    def issue_access_token(self) -> str:
        token = "ya29.sandbox-" + secrets.token_urlsafe(32)
        with self._lock:
            self.access_tokens[token] = self.now() + self.access_token_ttl
        return token

    def expire_access_tokens(self) -> None:
        with self._lock:
            self.access_tokens = dict.fromkeys(self.access_tokens, 0.0)

    # --- inspection -----------------------------------------------------------------------------

    def calendar_of(self, calendar_id: str) -> str | None:
        cal = USER if calendar_id == "primary" else calendar_id
        return cal if cal in self.calendars else None

    def events(self, calendar_id: str = USER) -> list[dict[str, Any]]:
        """Every stored event, deleted (cancelled) ones included."""
        with self._lock:
            return deepcopy(list(self.store.get(self.calendar_of(calendar_id) or "", {}).values()))

    def event(self, event_id: str, calendar_id: str = USER) -> dict[str, Any] | None:
        with self._lock:
            found = self.store.get(self.calendar_of(calendar_id) or "", {}).get(event_id)
            return deepcopy(found)

    # --- the user's own changes ------------------------------------------------------------------

    def user_add(self, calendar_id: str = USER, **fields: Any) -> dict[str, Any]:
        """An event the user makes in the Google Calendar UI (a server-made id)."""
        cal = self.calendar_of(calendar_id) or USER
        with self._lock:
            event = self._create(cal, random_id(), fields)
        self._changed(cal)
        return deepcopy(event)

    def user_edit(self, event_id: str, calendar_id: str = USER, **changes: Any) -> dict[str, Any]:
        """Change an event as the user would: patch semantics, ``updated`` and ``sequence``
        move on. Sync tokens stay valid (the change shows in the next incremental sync)."""
        cal = self.calendar_of(calendar_id) or USER
        with self._lock:
            current = self.store[cal][event_id]
            edited = merge_patch(current, changes)
            edited["sequence"] = int(current.get("sequence", 0)) + 1
            self._touch(cal, edited)
        self._changed(cal)
        return deepcopy(edited)

    def user_delete(self, event_id: str, calendar_id: str = USER) -> None:
        """Delete as the user would: the event stays, ``status: "cancelled"``."""
        self.user_edit(event_id, calendar_id, status="cancelled")

    def purge(self, event_id: str, calendar_id: str = USER) -> None:
        """Google drops a deleted event for good ("cancelled events will eventually
        disappear"): get and patch answer 404, and the id stays taken (insert: 409)."""
        cal = self.calendar_of(calendar_id) or USER
        with self._lock:
            self.store[cal].pop(event_id, None)
            self.purged.add((cal, event_id))

    def mail_guests(self, event: Mapping[str, Any], send_updates: str | None) -> None:
        """Google emails the guests of a written event when ``sendUpdates`` asks for it."""
        if send_updates in ("all", "externalOnly"):
            for guest in event.get("attendees") or []:
                self.guest_emails.append((event["id"], str(guest.get("email"))))

    def invalidate_sync_tokens(self) -> None:
        """Every sync token given so far now answers 410 (Google expires them at will)."""
        with self._lock:
            self.sync_tokens.clear()
            self.pages = {k: v for k, v in self.pages.items() if v[0] != "sync"}

    def lose_response(self, method: str, path_suffix: str = "") -> None:
        """The next matching call does its work, but its answer is lost (a 502 instead)."""
        with self._lock:
            self._lost.append((method.upper(), path_suffix))

    def _take_lost(self, method: str, path: str) -> bool:
        with self._lock:
            for index, (m, suffix) in enumerate(self._lost):
                if m == method and path.endswith(suffix):
                    del self._lost[index]
                    return True
        return False

    # --- storage ----------------------------------------------------------------------------------

    def _touch(self, cal: str, event: dict[str, Any]) -> None:
        """Store a changed event: new ``updated``, ``etag`` and sync version."""
        self.version += 1
        event["updated"] = self._next_stamp()
        event["etag"] = f'"{int(time.time() * 1_000_000)}{self.version:06d}"'
        self.store[cal][event["id"]] = event
        self.versions[(cal, event["id"])] = self.version

    def _create(self, cal: str, event_id: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        created = self._next_stamp()
        event: dict[str, Any] = {
            "kind": "calendar#event",
            "id": event_id,
            "status": "confirmed",
            "htmlLink": f"https://www.google.com/calendar/event?eid={event_id}",
            "created": created,
            **{k: deepcopy(v) for k, v in fields.items() if k in WRITABLE and v is not None},
            "creator": {"email": USER, "self": True},
            "organizer": {"email": cal, "self": True},
            "iCalUID": f"{event_id}@google.com",
            "sequence": 0,
            "reminders": {"useDefault": True},
            "eventType": "default",
        }
        for key in ("start", "end"):
            if isinstance(event.get(key), dict):
                event[key] = self._normal_time(event[key], cal)
        self._touch(cal, event)
        return event

    def _normal_time(self, value: Mapping[str, Any], cal: str) -> dict[str, Any]:
        """An EventDateTime as Google gives it back: nulls gone, a dateTime written in its
        time zone's offset (``Z`` for UTC)."""
        out = {k: v for k, v in value.items() if v is not None}
        if isinstance(out.get("dateTime"), str):
            moment = parse_dt(out["dateTime"], out.get("timeZone"))
            if moment is not None:
                zone = ZoneInfo(out.get("timeZone") or self.calendars[cal]["timeZone"])
                text = moment.astimezone(zone).isoformat()
                out["dateTime"] = text.replace("+00:00", "Z")
        return out

    # --- notifications ----------------------------------------------------------------------------

    def resource_id(self, cal: str) -> str:
        """Google's opaque id of a watched resource: stable per calendar's events."""
        digest = hashlib.sha1(f"events:{cal}".encode(), usedforsecurity=False).digest()[:20]
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def notification_headers(self, channel_id: str, state: str) -> dict[str, str]:
        """The headers of the next notification on a channel (its message number moves on)."""
        with self._lock:
            channel = self.channels[channel_id]
            channel["number"] = 1 if state == "sync" else max(channel["number"], 1) + 1
            headers = {
                "X-Goog-Channel-ID": channel["id"],
                "X-Goog-Channel-Expiration": formatdate(channel["expiration"] / 1000, usegmt=True),
                "X-Goog-Resource-ID": channel["resourceId"],
                "X-Goog-Resource-URI": channel["resourceUri"],
                "X-Goog-Resource-State": state,
                "X-Goog-Message-Number": str(channel["number"]),
            }
            if channel.get("token"):
                headers["X-Goog-Channel-Token"] = channel["token"]
        return headers

    async def notify(self, channel_id: str, state: str = "exists") -> int | None:
        """POST one notification to the channel's address; its status (None: unreachable).
        Notifications go out one at a time, in the order they were made (the sync message
        first), as Google's message numbers say they do."""
        if self._sending is None:  # made in the loop that sends
            self._sending = asyncio.Lock()
        async with self._sending:
            return await self._notify(channel_id, state)

    async def _notify(self, channel_id: str, state: str) -> int | None:
        headers = self.notification_headers(channel_id, state)
        address = self.channels[channel_id]["address"]
        status: int | None = None
        try:
            # Google's side of the wire, not a connector's call: a plain client, not VendorHttp.
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5.0)) as client,
                client.post(address, data=b"", headers=headers) as answer,
            ):
                status = answer.status
        except (aiohttp.ClientError, TimeoutError):
            status = None
        with self._lock:
            self.notifications.append(
                {
                    "channel_id": channel_id,
                    "state": state,
                    "number": headers["X-Goog-Message-Number"],
                    "status": status,
                }
            )
        return status

    def _send_later(self, channel_id: str, state: str) -> None:
        if self.deliver_notifications and self._loop is not None and self._loop.is_running():
            asyncio.run_coroutine_threadsafe(self.notify(channel_id, state), self._loop)

    def _changed(self, cal: str) -> None:
        now_ms = self.now() * 1000
        with self._lock:
            watching = [
                c["id"]
                for c in self.channels.values()
                if c["calendar"] == cal and c["expiration"] > now_ms
            ]
        for channel_id in watching:
            self._send_later(channel_id, "exists")

    # --- request checks ---------------------------------------------------------------------------

    def _authorize(self, request: Request[Any, Any, Any]) -> Response[Any] | None:
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("bearer "):
            return fail(
                401,
                "required",
                "Request is missing required authentication credential. "
                "Expected OAuth 2 access token, login cookie or other valid authentication "
                "credential.",
                location="Authorization",
                locationType="header",
            )
        token = header[7:].strip()
        with self._lock:
            expiry = self.access_tokens.get(token)
        if expiry is None or expiry <= self.now():
            return fail(
                401,
                "authError",
                "Request had invalid authentication credentials. "
                "Expected OAuth 2 access token, login cookie or other valid authentication "
                "credential.",
                location="Authorization",
                locationType="header",
            )
        if self.rate_limit is not None:
            moment = time.monotonic()
            with self._lock:
                hits = self._hits.setdefault(token, deque())
                while hits and moment - hits[0] > 1.0:
                    hits.popleft()
                if len(hits) >= self.rate_limit:
                    return fail(
                        self.rate_limit_status,
                        "rateLimitExceeded",
                        "Rate Limit Exceeded",
                        "usageLimits",
                    )
                hits.append(moment)
        return None

    def _validate(self, event: Mapping[str, Any]) -> Response[Any] | None:
        """The checks Google makes on an event it stores (insert, update, patch result)."""
        if event.get("status", "confirmed") not in ("confirmed", "tentative", "cancelled"):
            return fail(400, "invalid", "Invalid value for: status")
        kinds = []
        for key in ("start", "end"):
            value = event.get(key)
            if not isinstance(value, Mapping) or not (value.get("date") or value.get("dateTime")):
                return fail(400, "required", f"Missing {key} time.")
            if value.get("date") and value.get("dateTime"):
                return fail(400, "invalid", f"Invalid {key} time.")
            zone = value.get("timeZone")
            if zone is not None:
                try:
                    ZoneInfo(str(zone))
                except (ZoneInfoNotFoundError, ValueError):
                    return fail(400, "invalid", f"Invalid time zone definition for {key} time.")
            if value.get("date"):
                try:
                    date.fromisoformat(str(value["date"]))
                except ValueError:
                    return fail(400, "invalid", f"Invalid {key} time.")
                kinds.append("date")
                continue
            text = str(value["dateTime"])
            if parse_dt(text, "UTC") is None:
                return fail(400, "invalid", f"Invalid {key} time.")
            if parse_dt(text, None) is None and not zone:  # no offset and no time zone
                return fail(400, "required", f"Missing time zone definition for {key} time.")
            kinds.append("dateTime")
        if kinds[0] != kinds[1]:
            return fail(
                400, "invalid", "Start and end times must either both be date or both be dateTime."
            )
        if starts_at(event["end"], self.time_zone) <= starts_at(event["start"], self.time_zone):
            return fail(400, "timeRangeEmpty", "The specified time range is empty.", "calendar")
        props = event.get("extendedProperties")
        if props is not None:
            for scope in ("private", "shared"):
                values = props.get(scope) if isinstance(props, Mapping) else None
                if values is not None and (
                    not isinstance(values, Mapping)
                    or not all(isinstance(v, str) for v in values.values())
                ):
                    return fail(400, "invalid", f"Invalid value for: extendedProperties.{scope}")
        return None


def random_id() -> str:
    return base64.b32hexencode(secrets.token_bytes(15)).decode().lower()  # 24 chars


def parse_dt(text: str, zone: str | None) -> datetime | None:
    """A dateTime; without an offset it needs ``zone``."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        if not zone:
            return None
        try:
            moment = moment.replace(tzinfo=ZoneInfo(zone))
        except (ZoneInfoNotFoundError, ValueError):
            return None
    return moment


def starts_at(value: Mapping[str, Any], calendar_zone: str) -> datetime:
    """The instant an EventDateTime starts (an all-day date at midnight in the calendar zone)."""
    if value.get("date"):
        day = date.fromisoformat(str(value["date"]))
        return datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(calendar_zone))
    moment = parse_dt(str(value.get("dateTime")), value.get("timeZone") or calendar_zone)
    return moment or datetime.min.replace(tzinfo=UTC)


def demo() -> Any:
    """Entry point ``journeyhub.sandboxes``: this sandbox as ``journeyhub demo`` runs it."""
    from journeyhub.testing.sandbox import SandboxDemo

    return SandboxDemo(
        "Google Calendar",
        GcalSandbox,
        config=lambda sb: sb.config(),
        credentials=lambda sb: sb.credentials(),
        secrets=(CLIENT_SECRET, REFRESH_TOKEN),
    )
