"""The sandbox answers like Google for the subset used: raw HTTP, no plugin code."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from journeyhub.vendor_http import VendorResponse
from journeyhub_gcal.sandbox import CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN, USER


@pytest.fixture
async def api(sandbox, http) -> Any:
    token = (
        await http.post(
            sandbox.token_url,
            data={
                "grant_type": "refresh_token",
                "refresh_token": REFRESH_TOKEN,
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
            },
        )
    ).json()["access_token"]

    async def call(method: str, path: str, **kwargs: Any) -> VendorResponse:
        headers = {"authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
        return await http.request(method, sandbox.api_base + path, headers=headers, **kwargs)

    return call


def reason(response: VendorResponse) -> str:
    return response.json()["error"]["errors"][0]["reason"]


ALL_DAY = {"start": {"date": "2026-06-20"}, "end": {"date": "2026-06-21"}}


async def test_token_endpoint_answers_like_google(sandbox, http):
    basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    ok = await http.post(
        sandbox.token_url,
        headers={"authorization": f"Basic {basic}"},
        data={"grant_type": "refresh_token", "refresh_token": REFRESH_TOKEN},
    )
    assert ok.status_code == 200
    assert set(ok.json()) == {"access_token", "expires_in", "scope", "token_type"}
    assert ok.json()["token_type"] == "Bearer" and ok.json()["expires_in"] == 3599
    assert "no-store" in ok.headers["cache-control"]
    bad = await http.post(
        sandbox.token_url,
        data={
            "grant_type": "refresh_token",
            "refresh_token": "1//nope",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        },
    )
    assert (bad.status_code, bad.json()["error"]) == (400, "invalid_grant")
    grant = await http.post(sandbox.token_url, data={"grant_type": "password"})
    assert grant.json()["error"] == "unsupported_grant_type"


async def test_auth_errors_have_googles_shape(sandbox, http, api):
    missing = await http.get(f"{sandbox.api_base}/calendars/primary")
    assert missing.status_code == 401 and reason(missing) == "required"
    sandbox.expire_access_tokens()
    expired = await api("GET", "/calendars/primary")
    body = expired.json()["error"]
    assert (expired.status_code, body["code"], body["status"]) == (401, 401, "UNAUTHENTICATED")
    assert body["errors"][0]["reason"] == "authError"
    assert "invalid_token" in expired.headers["www-authenticate"]


async def test_insert_rules(api, sandbox):
    bad_id = await api("POST", "/calendars/primary/events", json={"id": "UPPER-case", **ALL_DAY})
    assert bad_id.status_code == 400 and reason(bad_id) == "invalid"
    short = await api("POST", "/calendars/primary/events", json={"id": "abcd", **ALL_DAY})
    assert short.status_code == 400
    created = await api("POST", "/calendars/primary/events", json={"id": "abcde", **ALL_DAY})
    assert created.status_code == 200 and created.json()["kind"] == "calendar#event"
    assert created.json()["organizer"] == {"email": USER, "self": True}
    await api("DELETE", "/calendars/primary/events/abcde")
    again = await api("POST", "/calendars/primary/events", json={"id": "abcde", **ALL_DAY})
    assert again.status_code == 409 and reason(again) == "duplicate"  # deleted ids stay taken
    gone = await api("GET", "/calendars/primary/events/abcde")
    assert gone.json()["status"] == "cancelled"  # get returns deleted events
    no_end = await api("POST", "/calendars/primary/events", json={"start": ALL_DAY["start"]})
    assert no_end.status_code == 400 and reason(no_end) == "required"
    mixed = await api(
        "POST",
        "/calendars/primary/events",
        json={"start": {"date": "2026-06-20"}, "end": {"dateTime": "2026-06-21T10:00:00Z"}},
    )
    assert mixed.status_code == 400
    no_zone = await api(
        "POST",
        "/calendars/primary/events",
        json={
            "start": {"dateTime": "2026-06-20T10:00:00"},
            "end": {"dateTime": "2026-06-20T11:00:00"},
        },
    )
    assert no_zone.status_code == 400 and "time zone" in no_zone.json()["error"]["message"]
    backwards = await api(
        "POST",
        "/calendars/primary/events",
        json={"start": {"date": "2026-06-21"}, "end": {"date": "2026-06-20"}},
    )
    assert reason(backwards) == "timeRangeEmpty"


async def test_patch_merges_and_nulls_remove(api, sandbox):
    await api(
        "POST",
        "/calendars/primary/events",
        json={
            "id": "abcdef",
            "summary": "a",
            "extendedProperties": {"private": {"x": "1"}},
            **ALL_DAY,
        },
    )
    patched = await api(
        "PATCH",
        "/calendars/primary/events/abcdef",
        json={
            "extendedProperties": {"private": {"y": "2"}},
            "start": {"date": None, "dateTime": "2026-06-20T10:00:00Z"},
            "end": {"date": None, "dateTime": "2026-06-20T12:00:00Z"},
        },
    )
    assert patched.status_code == 200
    event = patched.json()
    assert event["extendedProperties"]["private"] == {"x": "1", "y": "2"}
    assert event["start"] == {"dateTime": "2026-06-20T10:00:00Z"}
    assert event["summary"] == "a" and event["sequence"] == 1
    missing = await api("PATCH", "/calendars/primary/events/zzzzzz", json={"summary": "b"})
    assert missing.status_code == 404 and reason(missing) == "notFound"


async def test_list_refuses_restrictions_with_a_sync_token_and_expires_tokens(api, sandbox):
    await api("POST", "/calendars/primary/events", json={"id": "abcdef", **ALL_DAY})
    full = (await api("GET", "/calendars/primary/events")).json()
    assert "nextSyncToken" in full and "nextPageToken" not in full
    token = full["nextSyncToken"]
    for extra in (
        {"timeMin": "2026-01-01T00:00:00Z"},
        {"showDeleted": "false"},
        {"q": "x"},
        {"orderBy": "updated"},
        {"privateExtendedProperty": "a=b"},
    ):
        refused = await api(
            "GET", "/calendars/primary/events", params={"syncToken": token, **extra}
        )
        assert refused.status_code == 400, extra
    allowed = await api(
        "GET",
        "/calendars/primary/events",
        params={"syncToken": token, "singleEvents": "true", "maxResults": "5"},
    )
    assert allowed.status_code == 200 and allowed.json()["items"] == []
    sandbox.invalidate_sync_tokens()
    gone = await api("GET", "/calendars/primary/events", params={"syncToken": token})
    assert gone.status_code == 410 and reason(gone) == "fullSyncRequired"


async def test_private_property_filter_and_paging(api, sandbox):
    for n in range(3):
        await api(
            "POST",
            "/calendars/primary/events",
            json={
                "id": f"evt{n}abc",
                "extendedProperties": {"private": {"who": "us" if n else "them"}},
                **ALL_DAY,
            },
        )
    ours = await api(
        "GET", "/calendars/primary/events", params={"privateExtendedProperty": "who=us"}
    )
    assert [e["id"] for e in ours.json()["items"]] == ["evt1abc", "evt2abc"]
    first = (await api("GET", "/calendars/primary/events", params={"maxResults": "2"})).json()
    assert len(first["items"]) == 2 and "nextSyncToken" not in first
    rest = (
        await api(
            "GET",
            "/calendars/primary/events",
            params={"maxResults": "2", "pageToken": first["nextPageToken"]},
        )
    ).json()
    assert [e["id"] for e in rest["items"]] == ["evt2abc"] and "nextSyncToken" in rest


async def test_rate_limit_answers_403_or_429(api, sandbox):
    sandbox.rate_limit = 1
    assert (await api("GET", "/calendars/primary")).status_code == 200
    limited = await api("GET", "/calendars/primary")
    assert limited.status_code == 403 and reason(limited) == "rateLimitExceeded"
    assert limited.json()["error"]["errors"][0]["domain"] == "usageLimits"
    sandbox.rate_limit_status = 429
    assert (await api("GET", "/calendars/primary")).status_code == 429


async def test_requests_are_checked_against_the_discovery_document(api, sandbox):
    """Unknown body fields, unknown or ill-typed parameters: 400 INVALID_ARGUMENT, as Google."""
    cases = [
        ("POST", "/calendars/primary/events", {"json": {**ALL_DAY, "colour": "red"}}, "colour"),
        ("POST", "/calendars/primary/events", {"json": {**ALL_DAY, "start": {"day": "x"}}}, "day"),
        ("POST", "/calendars/primary/events", {"json": {**ALL_DAY, "summary": 5}}, "summary"),
        (
            "POST",
            "/calendars/primary/events",
            {"json": ALL_DAY, "params": {"notify": "1"}},
            "notify",
        ),
        (
            "POST",
            "/calendars/primary/events",
            {"json": ALL_DAY, "params": {"sendUpdates": "some"}},
            "sendUpdates",
        ),
        ("GET", "/calendars/primary/events", {"params": {"showDeleted": "yes"}}, "showDeleted"),
        (
            "GET",
            "/calendars/primary/events",
            {"params": {"timeMin": "2026-01-01T00:00:00"}},
            "timeMin",
        ),
        (
            "POST",
            "/channels/stop",
            {"json": {"id": "c1", "resourceId": "r", "kind2": "x"}},
            "kind2",
        ),
        (
            "PATCH",
            "/calendars/primary/events/abcde",
            {"json": {"attendees": [{"mail": "a@b.c"}]}},
            "mail",
        ),
    ]
    for method, path, kwargs, name in cases:
        answer = await api(method, path, **kwargs)
        error = answer.json()["error"]
        assert answer.status_code == 400, (name, answer.text)
        assert error["status"] == "INVALID_ARGUMENT" and error["code"] == 400, error
        assert name in error["message"] and reason(answer) == "invalid", error
    assert sandbox.events() == [] and sandbox.refusals == len(cases)
    # Nulls (a patch clearing a field), known parameters and read-only fields pass.
    fine = {**ALL_DAY, "id": "abcde", "kind": "calendar#event", "description": None}
    made = await api("POST", "/calendars/primary/events", json=fine, params={"sendUpdates": "all"})
    assert made.status_code == 200, made.text
    sandbox.refusals = 0
