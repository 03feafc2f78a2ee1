"""Resend and backfill (``services/redelivery.py``) end to end: journey events through the
gateway, the router (which keeps them), the push worker and the built-in webhook connector to a
receiver over real HTTP, on the real bus and store."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import msgspec
import pytest
from journeyhub.hub import Hub
from journeyhub.store.journey_events import EventQuery
from journeyhub.testing.fixtures import Gateway, TenantKeys, eventually
from journeyhub.testing.sandbox import Fault, Faults, SandboxServer
from litestar import Litestar, Request, Response, post
from litestar.params import FromPath

from ..conftest import create_connection, event, settle

pytestmark = pytest.mark.usefixtures("workers")

SECRET = "whsec_cmVkZWxpdmVyeS10ZXN0LXNlY3JldA=="


class Receiver:
    """A webhook endpoint per path name; records each request's webhook-id and event."""

    def __init__(self) -> None:
        self.faults = Faults()
        self.received: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)

        @post("/hook/{name:str}", status_code=200)
        async def hook(request: Request[Any, Any, Any], name: FromPath[str]) -> Response[Any]:
            injected = await self.faults.apply()
            if injected is not None:
                return injected
            body = msgspec.json.decode(await request.body())
            self.received[name].append((request.headers["webhook-id"], body["data"]))
            return Response({"ok": True})

        self.server = SandboxServer(Litestar([hook]))

    def url(self, name: str) -> str:
        return f"{self.server.url}/hook/{name}"

    def event_ids(self, name: str) -> list[str]:
        return [data["id"] for _, data in self.received[name]]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    with found.server:
        yield found


async def hook_connection(
    gateway: Gateway, tenant: TenantKeys, receiver: Receiver, name: str
) -> dict[str, Any]:
    return await create_connection(
        gateway,
        tenant,
        vendor="webhook",
        name=name,
        direction="outbound",
        config={"url": receiver.url(name)},
        credentials={"secret": SECRET},
    )


async def send(gateway: Gateway, tenant: TenantKeys, events: list[dict[str, Any]]) -> None:
    answer = await gateway.client.post("/v1/events", json=events, headers=tenant.headers("ingest"))
    assert answer.status_code == 202, answer.text


async def kept(hub: Hub, tenant: TenantKeys, count: int) -> None:
    async def check() -> bool:
        return await hub.store.journey_events.count(tenant.id, EventQuery()) >= count

    await eventually(check, timeout=20)


async def received(receiver: Receiver, name: str, count: int) -> list[str]:
    await eventually(lambda: len(receiver.received[name]) >= count, timeout=20)
    await settle(1.0)  # anything more would have come by now
    return receiver.event_ids(name)


# Two clients' events, interleaved; each client's order is its events' order here.
STORY = [
    ("a1", "journey_started", "cl_a"),
    ("b1", "journey_started", "cl_b"),
    ("a2", "step_completed", "cl_a"),
    ("a3", "client_updated", "cl_a"),
    ("b2", "step_completed", "cl_b"),
    ("a4", "journey_completed", "cl_a"),
    ("b3", "client_updated", "cl_b"),
]


def story(prefix: str) -> list[dict[str, Any]]:
    step = {"name": "Questionnaire", "type": "form"}
    return [event(f"{prefix}-{i}", t, client_id=f"{prefix}-{c}", step=step) for i, t, c in STORY]


def per_client(prefix: str, ids: list[str]) -> dict[str, list[str]]:
    clients = {f"{prefix}-{i}": f"{prefix}-{c}" for i, _, c in STORY}
    order: dict[str, list[str]] = defaultdict(list)
    for event_id in ids:
        order[clients[event_id]].append(event_id)
    return dict(order)


async def test_a_backfill_fills_a_new_connection_once_in_each_clients_order(
    gateway: Gateway, tenant: TenantKeys, hub: Hub, receiver: Receiver
) -> None:
    before = datetime.now(UTC) - timedelta(minutes=1)
    await hook_connection(gateway, tenant, receiver, "old")
    await send(gateway, tenant, story("bf"))
    await kept(hub, tenant, len(STORY))
    sent = [e["id"] for e in story("bf")]
    assert sorted(await received(receiver, "old", len(STORY))) == sorted(sent)

    new = await hook_connection(gateway, tenant, receiver, "new")
    # The vendor fails the first push: its retry must not let the client's later events pass.
    receiver.faults.plan(Fault(status=503))
    answer = await backfill(gateway, tenant, new["id"], before)
    assert answer["kind"] == "backfill" and answer["id"].startswith("op_")
    assert answer["matched"] == answer["queued"] == len(STORY)
    ids = await received(receiver, "new", len(STORY))
    assert receiver.faults.injected[503] == 1
    assert sorted(ids) == sorted(sent)  # each kept event once
    assert per_client("bf", ids) == per_client("bf", sent)

    again = await backfill(gateway, tenant, new["id"], before)
    assert again["matched"] == len(STORY) and again["id"] != answer["id"]
    await settle(2.0)
    assert sorted(receiver.event_ids("new")) == sorted(sent)  # still once
    assert len(receiver.received["old"]) == len(STORY)  # the old connection got nothing more


async def backfill(
    gateway: Gateway, tenant: TenantKeys, connection_id: str, since: datetime
) -> dict[str, Any]:
    answer = await gateway.client.post(
        f"/v1/connections/{connection_id}/backfill",
        params={"since": since.isoformat()},
        headers=tenant.headers(),
    )
    assert answer.status_code == 202, answer.text
    return answer.json()


async def resend(
    gateway: Gateway, tenant: TenantKeys, connection_id: str, body: dict[str, Any]
) -> dict[str, Any]:
    answer = await gateway.client.post(
        f"/v1/connections/{connection_id}/resend", json=body, headers=tenant.headers()
    )
    assert answer.status_code == 202, answer.text
    return answer.json()


async def test_a_resend_delivers_exactly_the_filtered_events_again(
    gateway: Gateway, tenant: TenantKeys, hub: Hub, receiver: Receiver
) -> None:
    hook = await hook_connection(gateway, tenant, receiver, "rs")
    await send(gateway, tenant, story("rs"))
    first = await received(receiver, "rs", len(STORY))
    assert sorted(first) == sorted(e["id"] for e in story("rs"))

    # One client's events of two types: rs-a2 (step_completed) and rs-a3 (client_updated).
    wanted = {"client_id": "rs-cl_a", "types": ["step_completed", "client_updated"]}
    answer = await resend(gateway, tenant, hook["id"], {**wanted, "key": "k1"})
    assert answer["kind"] == "resend" and answer["matched"] == answer["queued"] == 2
    ids = await received(receiver, "rs", len(STORY) + 2)
    assert ids[len(STORY) :] == ["rs-a2", "rs-a3"]  # exactly those, in the client's order
    keys = [key for key, _ in receiver.received["rs"]]
    assert len(set(keys)) == len(keys)  # a resend is a new delivery: a new idempotency key

    # The same key again is a duplicate: nothing is pushed twice.
    again = await resend(gateway, tenant, hook["id"], {**wanted, "key": "k1"})
    assert again["id"] == answer["id"]
    await settle(2.0)
    assert len(receiver.received["rs"]) == len(STORY) + 2

    # A single delivery, by the task id the deliveries list shows.
    rows = await hub.store.deliveries.list(tenant.id, status="delivered", limit=1000)
    b2 = next(r for r in rows if r.source_id == "rs-b2")
    one = await resend(gateway, tenant, hook["id"], {"task_id": b2.task_id})
    assert one["matched"] == one["queued"] == 1
    ids = await received(receiver, "rs", len(STORY) + 3)
    assert ids[len(STORY) + 2 :] == ["rs-b2"]

    # Its deliveries carry the operation id as their correlation id.
    async def traced() -> bool:
        rows = await hub.store.deliveries.list(tenant.id, status="delivered", limit=1000)
        return any(r.correlation_id == one["id"] for r in rows)

    await eventually(traced)


async def test_only_admins_resend_and_bad_filters_are_named(
    gateway: Gateway, tenant: TenantKeys, receiver: Receiver
) -> None:
    hook = await hook_connection(gateway, tenant, receiver, "bad")
    resend_url = f"/v1/connections/{hook['id']}/resend"
    backfill_url = f"/v1/connections/{hook['id']}/backfill"
    for role in ("read", "ingest"):
        refused = await gateway.client.post(
            resend_url, json={"client_id": "x"}, headers=tenant.headers(role)
        )
        assert refused.status_code == 403, refused.text
        refused = await gateway.client.post(
            backfill_url, params={"since": "2026-01-01T00:00:00Z"}, headers=tenant.headers(role)
        )
        assert refused.status_code == 403, refused.text

    async def field_of(url: str, **request: Any) -> str:
        answer = await gateway.client.post(url, headers=tenant.headers(), **request)
        assert answer.status_code == 422, answer.text
        return str(answer.json()["extra"]["errors"][0]["field"])

    assert await field_of(resend_url, json={"types": ["journey_started", "nope"]}) == "$.types[1]"
    assert await field_of(resend_url, json={"since": "2026-01-01T00:00:00"}) == "$.since"
    assert await field_of(resend_url, json={"client": "x"}) == "$"
    assert await field_of(resend_url, json={}) == "$"
    assert await field_of(resend_url) == "$"  # no body
    assert (
        await field_of(
            resend_url,
            json={"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
        )
        == "$.until"
    )
    assert await field_of(resend_url, json={"task_id": "dlv_nothing"}) == "$.task_id"
    assert await field_of(backfill_url) == "$.since"
    assert await field_of(backfill_url, params={"since": "yesterday"}) == "since"
    missing = await gateway.client.post(
        "/v1/connections/conn_nothing/resend", json={"client_id": "x"}, headers=tenant.headers()
    )
    assert missing.status_code == 404, missing.text


async def journeyhub(hub: Hub, *args: str) -> tuple[int, str]:
    """The command line in a subprocess, on the test hub's store and bus."""
    settings = hub.settings
    env = {
        **os.environ,
        "JOURNEYHUB_DATA_DIR": str(settings.data_dir),
        "JOURNEYHUB_NATS_URL": hub.bus.url,
        "JOURNEYHUB_LOG_LEVEL": "warning",
    }
    env.pop("JOURNEYHUB_PLUGINS", None)
    if settings.database_url:
        env["JOURNEYHUB_DATABASE_URL"] = settings.database_url
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "journeyhub",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 120)
    return int(process.returncode or 0), out.decode()


async def test_the_command_line_backfills_and_resends(
    gateway: Gateway, tenant: TenantKeys, hub: Hub, receiver: Receiver
) -> None:
    since = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    await send(gateway, tenant, story("cli"))
    await kept(hub, tenant, len(STORY))
    hook = await hook_connection(gateway, tenant, receiver, "cli")

    code, out = await journeyhub(
        hub, "connections", "backfill", hook["id"], "--since", since, "--json"
    )
    assert code == 0, out
    operation = json.loads(out)
    assert operation["kind"] == "backfill" and operation["queued"] == len(STORY)
    ids = await received(receiver, "cli", len(STORY))
    assert sorted(ids) == sorted(e["id"] for e in story("cli"))

    code, out = await journeyhub(
        hub,
        "connections",
        "resend",
        hook["id"],
        "--client",
        "cli-cl_b",
        "--type",
        "client_updated",
        "--json",
    )
    assert code == 0, out
    assert json.loads(out)["queued"] == 1
    ids = await received(receiver, "cli", len(STORY) + 1)
    assert ids[len(STORY) :] == ["cli-b3"]

    code, _ = await journeyhub(hub, "connections", "resend", "con_nothing", "--client", "x")
    assert code == 3  # not found
    code, _ = await journeyhub(hub, "connections", "resend", hook["id"], "--type", "nope")
    assert code == 2  # bad input


async def sign_in(client: httpx.AsyncClient, key: str) -> str:
    """Sign ``client`` in to the dashboard; a CSRF token of its forms."""
    page = await client.get("/login")
    token = re.search(r'name="_csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    answer = await client.post("/login", data={"_csrf_token": token[1], "api_key": key})
    assert answer.status_code == 303, answer.text
    page = await client.get("/")
    token = re.search(r'name="_csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    return token[1]


async def test_the_dashboard_resends_for_admins_only(
    gateway: Gateway, tenant: TenantKeys, receiver: Receiver
) -> None:
    hook = await hook_connection(gateway, tenant, receiver, "dash")
    await send(gateway, tenant, story("dash"))
    await received(receiver, "dash", len(STORY))
    path = f"/connections/{hook['id']}"

    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
        token = await sign_in(client, tenant.admin_key)
        page = await client.get(path)
        assert f'action="{path}/redeliver"' in page.text
        form = {
            "_csrf_token": token,
            "kind": "resend",
            "client_id": "dash-cl_a",
            "type": "client_updated",
        }
        answer = await client.post(f"{path}/redeliver", data=form)
        assert answer.status_code == 303 and answer.headers["location"] == path
        assert "1 queued" in (await client.get(path)).text
        ids = await received(receiver, "dash", len(STORY) + 1)
        assert ids[len(STORY) :] == ["dash-a3"]
        answer = await client.post(f"{path}/redeliver", data={**form, "type": "nope"})
        assert "Nothing sent" in (await client.get(path)).text

    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as reader:
        token = await sign_in(reader, tenant.read_key)
        assert f'action="{path}/redeliver"' not in (await reader.get(path)).text
        answer = await reader.post(f"{path}/redeliver", data={**form, "_csrf_token": token})
        assert answer.status_code == 303
        assert "needs an admin key" in (await reader.get(path)).text
    await settle(1.0)
    assert len(receiver.received["dash"]) == len(STORY) + 1
