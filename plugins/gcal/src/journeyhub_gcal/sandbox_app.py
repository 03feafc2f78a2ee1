"""The HTTP side of the Google sandbox: the Litestar routes of the token endpoint and the
Calendar API v3 subset, over the state that :class:`journeyhub_gcal.sandbox.GcalSandbox` holds.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
from collections.abc import Callable, Mapping
from copy import deepcopy
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import parse_qsl, quote

import msgspec
from litestar import Litestar, Request, Response, delete, get, patch, post, put
from litestar.params import PathParameter

from journeyhub_gcal import sandbox_contract as contract
from journeyhub_gcal import sandbox_oauth
from journeyhub_gcal.sandbox import (
    CHANNEL_ID,
    CHANNEL_TTL_DEFAULT,
    EVENT_ID,
    MAX_RESULTS,
    NOT_WITH_SYNC,
    PREFIX,
    PROJECT,
    SCOPE,
    WRITABLE,
    fail,
    google_error,
    merge_patch,
    oauth_fail,
    parse_dt,
    random_id,
    rfc3339,
    starts_at,
)

if TYPE_CHECKING:
    from journeyhub_gcal.sandbox import GcalSandbox

PathStr = Annotated[str, PathParameter()]


def _flag(raw: str | None) -> bool | None:
    return None if raw is None else raw.lower() == "true"


def create_app(sb: GcalSandbox) -> Litestar:
    async def before(request: Request[Any, Any, Any]) -> Response[Any] | None:
        sb._loop = asyncio.get_running_loop()
        with sb._lock:
            sb.requests[f"{request.method} {request.url.path}"] += 1
        if (faulty := await sb.faults.apply()) is not None:
            return faulty
        return await refused_by_contract(request)

    async def refused_by_contract(request: Request[Any, Any, Any]) -> Response[Any] | None:
        """Every Calendar API call is checked against the discovery-derived contract."""
        path = request.url.path
        if not path.startswith(PREFIX + "/"):
            return None  # the OAuth token endpoint is not in the discovery document
        method = contract.method_of(request.method, path.removeprefix(PREFIX + "/"))
        if method is None:
            return fail(404, "notFound", "Not Found")
        try:
            body = msgspec.json.decode(await request.body()) if method in contract.BODIES else None
        except msgspec.DecodeError:
            body = None  # the route answers parseError
        why = contract.check(method, list(request.query_params.multi_items()), body)
        with sb._lock:
            sb.refusals += why is not None
        return None if why is None else fail(400, "invalid", why)

    async def json_body(request: Request[Any, Any, Any]) -> dict[str, Any] | Response[Any]:
        try:
            body = msgspec.json.decode(await request.body())
        except msgspec.DecodeError:
            return fail(400, "parseError", "Parse Error")
        if not isinstance(body, dict):
            return fail(400, "parseError", "Parse Error")
        return body

    def calendar(calendar_id: str) -> str | Response[Any]:
        cal = sb.calendar_of(calendar_id)
        return cal if cal is not None else fail(404, "notFound", "Not Found")

    # --- OAuth 2.0 token endpoint ---------------------------------------------------------------

    @post("/token", status_code=200)
    async def token(request: Request[Any, Any, Any]) -> Response[Any]:
        with sb._lock:
            sb.token_calls += 1
        form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        basic = request.headers.get("authorization", "")
        if basic.lower().startswith("basic "):
            try:
                pair = base64.b64decode(basic[6:]).decode()
                client_id, _, client_secret = pair.partition(":")
            except ValueError:
                return oauth_fail(401, "invalid_client", "Unauthorized")
        grant = form.get("grant_type", "")
        if grant not in ("refresh_token", "authorization_code"):
            return oauth_fail(400, "unsupported_grant_type", f"Invalid grant_type: {grant}")
        if client_id not in sb.clients:
            return oauth_fail(401, "invalid_client", "The OAuth client was not found.")
        if client_secret != sb.clients[client_id]:
            return oauth_fail(401, "invalid_client", "Unauthorized")
        if grant == "authorization_code":
            return sandbox_oauth.exchange_code(sb, form, client_id)
        refresh = form.get("refresh_token")
        if not refresh:
            return oauth_fail(400, "invalid_request", "Missing required parameter: refresh_token")
        with sb._lock:
            valid = refresh in sb.refresh_tokens
        if not valid:
            return oauth_fail(400, "invalid_grant", "Token has been expired or revoked.")
        answer: dict[str, Any] = {
            "access_token": sb.issue_access_token(),
            "expires_in": sb.access_token_ttl,
            "scope": SCOPE,
            "token_type": "Bearer",
        }
        if sb.rotate_refresh_tokens:
            answer["refresh_token"] = sb.issue_refresh_token()
        with sb._lock:
            sb.refreshes += 1
        return Response(
            answer,
            headers={
                "cache-control": "no-cache, no-store, max-age=0, must-revalidate",
                "pragma": "no-cache",
            },
        )

    # --- calendars --------------------------------------------------------------------------------

    @get(PREFIX + "/calendars/{calendar_id:str}")
    async def calendars_get(calendar_id: PathStr, request: Request[Any, Any, Any]) -> Response[Any]:
        if (refused := sb._authorize(request)) is not None:
            return refused
        cal = calendar(calendar_id)
        if isinstance(cal, Response):
            return cal
        info = sb.calendars[cal]
        return Response(
            {
                "kind": "calendar#calendar",
                "etag": '"sandbox"',
                "id": cal,
                "summary": info["summary"],
                "timeZone": info["timeZone"],
                "conferenceProperties": {"allowedConferenceSolutionTypes": ["hangoutsMeet"]},
            }
        )

    # --- events -----------------------------------------------------------------------------------

    @post(PREFIX + "/calendars/{calendar_id:str}/events", status_code=200)
    async def events_insert(calendar_id: PathStr, request: Request[Any, Any, Any]) -> Response[Any]:
        if (refused := sb._authorize(request)) is not None:
            return refused
        cal = calendar(calendar_id)
        if isinstance(cal, Response):
            return cal
        body = await json_body(request)
        if isinstance(body, Response):
            return body
        event_id = body.get("id")
        if event_id is not None and (not isinstance(event_id, str) or not EVENT_ID.match(event_id)):
            return fail(400, "invalid", "Invalid resource id value.")
        event_id = event_id or random_id()
        with sb._lock:
            sb.insert_attempts[event_id] += 1
            if event_id in sb.store[cal] or (cal, event_id) in sb.purged:  # ids stay taken
                return fail(409, "duplicate", "The requested identifier already exists.")
            candidate = {k: v for k, v in body.items() if k in WRITABLE}
            candidate = {k: v for k, v in candidate.items() if v is not None}
            if (invalid := sb._validate(candidate)) is not None:
                return invalid
            event = sb._create(cal, event_id, candidate)
            sb.inserts[event_id] += 1
            sb.mail_guests(event, request.query_params.get("sendUpdates"))
        sb._changed(cal)
        return Response(deepcopy(event))

    @get(PREFIX + "/calendars/{calendar_id:str}/events/{event_id:str}")
    async def events_get(
        calendar_id: PathStr, event_id: PathStr, request: Request[Any, Any, Any]
    ) -> Response[Any]:
        if (refused := sb._authorize(request)) is not None:
            return refused
        cal = calendar(calendar_id)
        if isinstance(cal, Response):
            return cal
        found = sb.event(event_id, cal)
        return Response(found) if found else fail(404, "notFound", "Not Found")

    async def _write(
        calendar_id: str, event_id: str, request: Request[Any, Any, Any], replace: bool
    ) -> Response[Any]:
        if (refused := sb._authorize(request)) is not None:
            return refused
        cal = calendar(calendar_id)
        if isinstance(cal, Response):
            return cal
        body = await json_body(request)
        if isinstance(body, Response):
            return body
        with sb._lock:
            current = sb.store[cal].get(event_id)
            if current is None:
                return fail(404, "notFound", "Not Found")
            writable = {k: v for k, v in body.items() if k in WRITABLE}
            if replace:  # update: the body is the whole event
                kept = {k: v for k, v in current.items() if k not in WRITABLE}
                edited = {**kept, **{k: v for k, v in writable.items() if v is not None}}
            else:
                edited = merge_patch(current, writable)
            if (invalid := sb._validate(edited)) is not None:
                return invalid
            for key in ("start", "end"):
                edited[key] = sb._normal_time(edited[key], cal)
            if any(edited.get(k) != current.get(k) for k in ("start", "end", "location")):
                edited["sequence"] = int(current.get("sequence", 0)) + 1
            sb._touch(cal, edited)
            sb.mail_guests(edited, request.query_params.get("sendUpdates"))
        sb._changed(cal)
        return Response(deepcopy(edited))

    @put(PREFIX + "/calendars/{calendar_id:str}/events/{event_id:str}")
    async def events_update(
        calendar_id: PathStr, event_id: PathStr, request: Request[Any, Any, Any]
    ) -> Response[Any]:
        return await _write(calendar_id, event_id, request, replace=True)

    @patch(PREFIX + "/calendars/{calendar_id:str}/events/{event_id:str}")
    async def events_patch(
        calendar_id: PathStr, event_id: PathStr, request: Request[Any, Any, Any]
    ) -> Response[Any]:
        return await _write(calendar_id, event_id, request, replace=False)

    @delete(PREFIX + "/calendars/{calendar_id:str}/events/{event_id:str}", status_code=200)
    async def events_delete(
        calendar_id: PathStr, event_id: PathStr, request: Request[Any, Any, Any]
    ) -> Response[Any]:
        if (refused := sb._authorize(request)) is not None:
            return refused
        cal = calendar(calendar_id)
        if isinstance(cal, Response):
            return cal
        with sb._lock:
            current = sb.store[cal].get(event_id)
            if current is None:
                return fail(404, "notFound", "Not Found")
            if current.get("status") == "cancelled":
                return fail(410, "deleted", "Resource has been deleted")
            sb._touch(cal, {**current, "status": "cancelled"})
        sb._changed(cal)
        return Response(b"", status_code=204)

    @get(PREFIX + "/calendars/{calendar_id:str}/events")
    async def events_list(calendar_id: PathStr, request: Request[Any, Any, Any]) -> Response[Any]:
        if (refused := sb._authorize(request)) is not None:
            return refused
        cal = calendar(calendar_id)
        if isinstance(cal, Response):
            return cal
        query = request.query_params
        try:
            size = min(int(query.get("maxResults", "250")), MAX_RESULTS)
        except ValueError:
            return fail(400, "invalid", "Invalid value for: maxResults")
        if size < 1:
            return fail(400, "invalid", "Invalid value for: maxResults")
        sync_token, page_token = query.get("syncToken"), query.get("pageToken")
        show_deleted = _flag(query.get("showDeleted"))
        if sync_token is not None and (
            any(name in query for name in NOT_WITH_SYNC) or show_deleted is False
        ):
            return fail(
                400,
                "syncTokenWithRequestRestrictions",
                "Sync token cannot be used with other request restrictions.",
            )
        with sb._lock:
            if page_token is not None:
                state = sb.pages.get(page_token)
                if state is None or (state[0] == "sync" and sync_token not in sb.sync_tokens):
                    if sync_token is not None:
                        return fail(
                            410,
                            "fullSyncRequired",
                            "Sync token is no longer valid, a full sync is required.",
                            "calendar",
                        )
                    return fail(400, "invalid", "Invalid page token value.")
                _, ids, offset, at_version = state
            else:
                if sync_token is not None:
                    known = sb.sync_tokens.get(sync_token)
                    if known is None or known[0] != cal:
                        return fail(
                            410,
                            "fullSyncRequired",
                            "Sync token is no longer valid, a full sync is required.",
                            "calendar",
                        )
                    changed = [
                        (v, i) for (c, i), v in sb.versions.items() if c == cal and v > known[1]
                    ]
                    ids = [i for _, i in sorted(changed)]
                else:
                    filtered = _filter(sb, cal, query, show_deleted)
                    if isinstance(filtered, Response):
                        return filtered
                    ids = filtered
                offset, at_version = 0, sb.version
            chunk = ids[offset : offset + size]
            items = [deepcopy(sb.store[cal][i]) for i in chunk if i in sb.store[cal]]
            answer: dict[str, Any] = {
                "kind": "calendar#events",
                "etag": f'"p{at_version}"',
                "summary": sb.calendars[cal]["summary"],
                "description": "",
                "updated": rfc3339(sb._last_stamp or datetime.now(UTC)),
                "timeZone": sb.calendars[cal]["timeZone"],
                "accessRole": "owner",
                "defaultReminders": [{"method": "popup", "minutes": 30}],
            }
            if offset + size < len(ids):
                following = secrets.token_urlsafe(18)
                kind = "sync" if sync_token is not None else "full"
                sb.pages[following] = (kind, ids, offset + size, at_version)
                answer["nextPageToken"] = following
            else:
                token_value = "CP" + secrets.token_urlsafe(18)
                sb.sync_tokens[token_value] = (cal, at_version)
                answer["nextSyncToken"] = token_value
            answer["items"] = items
        return Response(answer)

    # --- push notifications -----------------------------------------------------------------------

    @post(PREFIX + "/calendars/{calendar_id:str}/events/watch", status_code=200)
    async def events_watch(calendar_id: PathStr, request: Request[Any, Any, Any]) -> Response[Any]:
        if (refused := sb._authorize(request)) is not None:
            return refused
        cal = calendar(calendar_id)
        if isinstance(cal, Response):
            return cal
        body = await json_body(request)
        if isinstance(body, Response):
            return body
        channel_id, address = body.get("id"), body.get("address")
        if not isinstance(channel_id, str) or not CHANNEL_ID.match(channel_id):
            return fail(
                400,
                "required" if not channel_id else "invalid",
                "Channel id must be a non-empty string of at most 64 characters.",
            )
        if body.get("type") not in ("web_hook", "webhook"):
            return fail(400, "invalid", "Invalid value for: type")
        if not isinstance(address, str) or not address.startswith(("https://", "http://")):
            return fail(400, "required", "Required address")
        if sb.require_https and not address.startswith("https://"):
            return fail(
                400, "push.webhookUrlNotHttps", f"WebHook callback must be HTTPS: {address}", "push"
            )
        now_ms = int(sb.now() * 1000)
        longest = now_ms + CHANNEL_TTL_DEFAULT * 1000
        wanted: int | None = None
        try:
            if body.get("expiration") is not None:
                wanted = int(body["expiration"])
            elif isinstance(body.get("params"), dict) and body["params"].get("ttl") is not None:
                wanted = now_ms + int(body["params"]["ttl"]) * 1000
        except (TypeError, ValueError):
            return fail(400, "invalid", "Invalid value for: expiration")
        expiration = min(wanted or longest, longest)
        with sb._lock:
            if channel_id in sb.channels:
                return fail(400, "channelIdNotUnique", "Channel id not unique", "push")
            channel = {
                "id": channel_id,
                "resourceId": sb.resource_id(cal),
                "resourceUri": f"{sb.api_base}/calendars/{quote(cal, safe='')}/events?alt=json",
                "token": body.get("token") if isinstance(body.get("token"), str) else None,
                "expiration": expiration,
                "address": address,
                "calendar": cal,
                "number": 0,
            }
            sb.channels[channel_id] = channel
        sb._send_later(channel_id, "sync")
        answer = {
            "kind": "api#channel",
            "id": channel_id,
            "resourceId": channel["resourceId"],
            "resourceUri": channel["resourceUri"],
            "expiration": str(expiration),
        }
        if channel["token"]:
            answer["token"] = channel["token"]
        return Response(answer)

    @post(PREFIX + "/channels/stop", status_code=200)
    async def channels_stop(request: Request[Any, Any, Any]) -> Response[Any]:
        if (refused := sb._authorize(request)) is not None:
            return refused
        body = await json_body(request)
        if isinstance(body, Response):
            return body
        channel_id, resource_id = body.get("id"), body.get("resourceId")
        with sb._lock:
            channel = sb.channels.get(channel_id) if isinstance(channel_id, str) else None
            if channel is None or channel["resourceId"] != resource_id:
                return fail(
                    404, "notFound", f"Channel '{channel_id}' not found for project '{PROJECT}'"
                )
            del sb.channels[channel_id]
        return Response(b"", status_code=204)

    return Litestar(
        route_handlers=[
            *sandbox_oauth.routes(sb),
            token,
            calendars_get,
            events_insert,
            events_get,
            events_update,
            events_patch,
            events_delete,
            events_list,
            events_watch,
            channels_stop,
        ],
        before_request=before,
        openapi_config=None,
    )


def _filter(
    sb: GcalSandbox, cal: str, query: Any, show_deleted: bool | None
) -> list[str] | Response[Any]:
    """A full (non-sync) listing's event ids, in a stable order (creation)."""
    zone = sb.calendars[cal]["timeZone"]
    bounds: dict[str, datetime] = {}
    for name in ("timeMin", "timeMax", "updatedMin"):
        raw = query.get(name)
        if raw is not None:
            moment = parse_dt(raw, None)
            if moment is None:  # RFC 3339 with a mandatory offset
                return fail(400, "invalid", f"Bad Request: {name}")
            bounds[name] = moment
    if "timeMin" in bounds and "timeMax" in bounds and bounds["timeMax"] <= bounds["timeMin"]:
        return fail(
            400,
            "timeRangeEmpty",
            "The specified time range is empty.",
            "calendar",
            location="timeMax",
            locationType="parameter",
        )
    include_deleted = bool(show_deleted) or "updatedMin" in bounds
    wanted_props = [p.partition("=") for p in query.getall("privateExtendedProperty", [])]
    text = (query.get("q") or "").casefold()
    picked = []
    for event in sb.store[cal].values():
        if event.get("status") == "cancelled" and not include_deleted:
            continue
        start, end = event.get("start"), event.get("end")
        if isinstance(start, Mapping) and isinstance(end, Mapping):
            if "timeMin" in bounds and starts_at(end, zone) <= bounds["timeMin"]:
                continue
            if "timeMax" in bounds and starts_at(start, zone) >= bounds["timeMax"]:
                continue
        if "updatedMin" in bounds:
            updated = parse_dt(str(event.get("updated")), "UTC")
            if updated is None or updated < bounds["updatedMin"]:
                continue
        private = (event.get("extendedProperties") or {}).get("private") or {}
        if any(private.get(key) != value for key, _, value in wanted_props):
            continue
        if text and not any(
            text in str(event.get(f) or "").casefold()
            for f in ("summary", "description", "location")
        ):
            continue
        picked.append(event)
    if query.get("orderBy") == "updated":
        picked.sort(key=lambda e: str(e.get("updated")))
    elif query.get("orderBy") == "startTime":
        if _flag(query.get("singleEvents")) is not True:
            return fail(
                400,
                "badRequest",
                "The requested ordering is not available for the particular query.",
            )
        picked.sort(
            key=lambda e: (
                starts_at(e["start"], zone)
                if isinstance(e.get("start"), Mapping)
                else datetime.min.replace(tzinfo=UTC)
            )
        )
    return [e["id"] for e in picked]


class LoseResponses:
    """ASGI wrapper: run the request, then drop its answer for a 502 (see ``lose_response``)."""

    def __init__(self, app: Callable[..., Any], sb: GcalSandbox) -> None:
        self.inner = app
        self.sb = sb

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not self.sb._take_lost(scope["method"], scope["path"]):
            await self.inner(scope, receive, send)
            return

        async def swallow(message: Any) -> None:
            return None

        await self.inner(scope, receive, swallow)
        body = msgspec.json.encode(google_error(502, "backendError", "Bad Gateway"))
        await send(
            {
                "type": "http.response.start",
                "status": 502,
                "headers": [(b"content-type", b"application/json; charset=UTF-8")],
            }
        )
        await send({"type": "http.response.body", "body": body})
