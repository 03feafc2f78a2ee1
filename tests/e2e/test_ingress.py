"""``POST /v1/events`` is answered in front of Litestar (``gateway/ingress.py``); Litestar still
serves the same route for what the fast path leaves to it (here: a trailing slash). Both must
answer every request alike: same status, same body, same headers that matter."""

from __future__ import annotations

from typing import Any

import pytest
from journeyhub.hub import Hub
from journeyhub.testing.fixtures import Gateway, TenantKeys

from ..conftest import event

FAST, LITESTAR = "/v1/events", "/v1/events/"


async def both(
    gateway: Gateway,
    content: bytes | None = None,
    json: Any = None,
    headers: dict[str, str] | None = None,
) -> list[Any]:
    answers = []
    for path in (FAST, LITESTAR):
        kwargs: dict[str, Any] = {"headers": headers or {}}
        if json is not None:
            kwargs["json"] = json(path) if callable(json) else json
        elif content is not None:
            kwargs["content"] = content
        answers.append(await gateway.client.post(path, **kwargs))
    return answers


def same(fast: Any, slow: Any) -> None:
    assert fast.status_code == slow.status_code, (fast.text, slow.text)
    assert fast.json() == slow.json()
    assert fast.headers.get("retry-after") == slow.headers.get("retry-after")
    assert fast.headers["x-request-id"]  # (Litestar's 401s, from its middleware, have none)


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"authorization": "Basic abc"}, 401),
        ({"authorization": "Bearer jh_nope_0123456789abcdefghij"}, 401),
    ],
)
async def test_keys_are_refused_alike(
    gateway: Gateway, headers: dict[str, str], status: int
) -> None:
    fast, slow = await both(gateway, json=event("k-1"), headers=headers)
    assert fast.status_code == status
    same(fast, slow)


async def test_a_key_without_the_role_is_refused_alike(
    gateway: Gateway, tenant: TenantKeys
) -> None:
    fast, slow = await both(gateway, json=event("r-1"), headers=tenant.headers("read"))
    assert fast.status_code == 403
    same(fast, slow)


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"null",
        b"{nope",
        b"[]",
        b'{"id": "x", "type": "journey_started"}',
        b'{"id": "x", "type": "nope", "occurred_at": "2026-03-01T12:00:00Z"}',
        b'[{"id": 1}]',
    ],
)
async def test_bad_bodies_are_refused_alike(
    gateway: Gateway, tenant: TenantKeys, content: bytes
) -> None:
    headers = {**tenant.headers("ingest"), "content-type": "application/json"}
    fast, slow = await both(gateway, content=content, headers=headers)
    assert fast.status_code == 422, fast.text
    same(fast, slow)


async def test_too_many_and_too_large_are_refused_alike(
    gateway: Gateway, tenant: TenantKeys, hub: Hub
) -> None:
    many = [event(f"m-{n}") for n in range(501)]
    fast, slow = await both(gateway, json=many, headers=tenant.headers("ingest"))
    assert fast.status_code == 422
    same(fast, slow)
    huge = b'{"id": "' + b"x" * (gateway_limit(hub) + 10) + b'"}'
    headers = {**tenant.headers("ingest"), "content-type": "application/json"}
    fast, slow = await both(gateway, content=huge, headers=headers)
    assert fast.status_code == 413
    assert slow.status_code == 413


def gateway_limit(hub: Hub) -> int:
    """Litestar's body limit for the API: eight webhook sizes (``gateway/app.py``)."""
    return hub.settings.webhook_max_bytes * 8


async def test_events_are_accepted_alike(gateway: Gateway, tenant: TenantKeys) -> None:
    def body(path: str) -> list[dict[str, Any]]:
        return [event(f"ok-{path.strip('/').replace('/', '-')}-{n}") for n in range(2)]

    fast, slow = await both(gateway, json=body, headers=tenant.headers("ingest"))
    assert fast.status_code == slow.status_code == 202
    assert [len(a.json()["accepted"]) for a in (fast, slow)] == [2, 2]
    again, _ = await both(gateway, json=body, headers=tenant.headers("ingest"))
    assert again.status_code == 202 and len(again.json()["duplicates"]) == 2
