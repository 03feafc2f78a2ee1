"""Security: tenant isolation on every /v1 route, what each key role may do on every /v1 and
dashboard route, stale (replayed) webhooks, body limits, and the per-tenant rate limit on
/v1/events, over real HTTP against the session's hub.

The isolation matrix is driven by the served OpenAPI document: every /v1 operation in it must
have an entry in ``MATRIX`` (a new route fails the test until it gets one), and every entry must
still exist.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import nats
import pytest
from journeyhub import signing
from journeyhub.gateway.app import create_app
from journeyhub.gateway.auth import RoleGuard
from journeyhub.gateway.dashboard import DASHBOARD_PATHS
from journeyhub.gateway.limits import TokenBuckets, retry_after_header
from journeyhub.hub import Hub
from journeyhub.model import Trigger, stable_id
from journeyhub.settings import Settings, SettingsError, load_settings
from journeyhub.testing.fixtures import Gateway, TenantKeys, make_tenant
from litestar.routes import HTTPRoute

from ..conftest import create_connection, event

# --- two tenants, each with a connection, a delivery, a dead letter, a trigger, audit entries ---


@dataclass
class Side:
    keys: TenantKeys
    connection: dict[str, Any]
    delivery_task: str
    dead_letter: str
    trigger: str
    key_ids: list[str] = field(default_factory=list)

    @property
    def ids(self) -> set[str]:
        """Strings that only this tenant's records contain."""
        return {
            self.keys.id,
            self.connection["id"],
            self.delivery_task,
            self.dead_letter,
            self.trigger,
            *(f"key:{k}" for k in self.key_ids),
        }


@dataclass
class World:
    hub: Hub
    gateway: Gateway
    a: Side  # the caller
    b: Side  # the other tenant, whose records the caller must never see or touch

    async def as_a(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return await self.gateway.client.request(
            method, path, headers=self.a.keys.headers(), **kwargs
        )

    async def as_b(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return await self.gateway.client.request(
            method, path, headers=self.b.keys.headers(), **kwargs
        )

    def assert_nothing_of_b(self, answer: httpx.Response) -> None:
        text = answer.text
        leaked = sorted(i for i in self.b.ids if i in text)
        assert not leaked, f"{answer.request.method} {answer.request.url.path} shows {leaked}"
        body = answer.json()
        rows = body if isinstance(body, list) else []
        for row in rows:
            if isinstance(row, dict) and "tenant_id" in row:
                assert row["tenant_id"] == self.a.keys.id


async def make_side(hub: Hub, gateway: Gateway, name: str) -> Side:
    keys = await make_tenant(hub, name)
    connection = await create_connection(
        gateway,
        keys,
        vendor="webhook",
        name=f"{name} engine",
        direction="bidirectional",
        config={"url": "http://127.0.0.1:9/hooks"},
        credentials={"secret": signing.new_secret()},
    )
    tag = secrets.token_hex(6)
    task_id = f"task_{name}_{tag}"
    await hub.store.deliveries.record_attempt(
        task_id=task_id,
        tenant_id=keys.id,
        connection_id=connection["id"],
        vendor="webhook",
        source_id=f"src_{name}_{tag}",
        attempt=1,
        status="failed",
        error="a test failure",
    )
    dead = await hub.store.deliveries.dead_letter(
        tenant_id=keys.id,
        connection_id=connection["id"],
        vendor="webhook",
        stage="push",
        subject=hub.bus.subjects.push(connection["id"]),
        msg_id=f"dead_{name}_{tag}",
        payload=json.dumps({"note": f"dead letter of {name}"}).encode(),
        error="a test error",
        attempts=4,
    )
    trigger = Trigger(
        id=stable_id("trg", name, tag),
        type="payment_received",
        tenant_id=keys.id,
        connection_id=connection["id"],
        vendor="webhook",
        occurred_at=datetime.now(UTC),
        source_event_id=f"evt_{name}_{tag}",
        client_id=f"cl_{name}",
    )
    assert await hub.store.triggers.record(trigger)
    key_ids = [k.split("_")[1] for k in (keys.admin_key, keys.ingest_key, keys.read_key)]
    side = Side(keys, connection, task_id, dead, trigger.id, key_ids)
    audit = await hub.store.audit.list(keys.id)
    assert {e.action for e in audit} >= {"connection.created", "key.created"}, audit
    return side


@pytest.fixture
async def world(hub: Hub, gateway: Gateway) -> World:
    return World(
        hub, gateway, await make_side(hub, gateway, "alpha"), await make_side(hub, gateway, "beta")
    )


# --- the matrix: one check per /v1 operation -----------------------------------------------------

Check = Callable[[World], Awaitable[None]]


async def b_untouched(w: World) -> None:
    """B's records are as they were: connection, dead letter (not replayed)."""
    mine = await w.as_b("GET", f"/v1/connections/{w.b.connection['id']}")
    assert mine.status_code == 200 and mine.json()["name"] == "beta engine"
    assert mine.json()["enabled"] is True
    dead = await w.hub.store.deliveries.get_dead(w.b.dead_letter, w.b.keys.id)
    assert dead is not None and dead.replayed_at is None and dead.replay_count == 0


async def list_route(w: World, path: str, *, own: str | None, filter_by_b: bool = True) -> None:
    """A's list shows A's rows (``own`` among them) and nothing of B's; filtering on B's
    connection gives nothing."""
    answer = await w.as_a("GET", path)
    assert answer.status_code == 200, answer.text
    w.assert_nothing_of_b(answer)
    if own is not None:
        assert own in answer.text, f"{path} does not list the caller's own {own}"
    if filter_by_b:
        filtered = await w.as_a("GET", path, params={"connection_id": w.b.connection["id"]})
        assert filtered.status_code == 200 and filtered.json() == [], filtered.text


async def record_route(w: World, method: str, template: str, **kwargs: Any) -> None:
    """On B's record: 404 (not 403), the same answer as a record that does not exist, and
    B's records unchanged."""
    path = template.format(connection_id=w.b.connection["id"], dead_letter_id=w.b.dead_letter)
    foreign = await w.as_a(method, path, **kwargs)
    assert foreign.status_code == 404, f"{method} {template}: {foreign.status_code} {foreign.text}"
    w.assert_nothing_of_b(foreign)
    missing = template.format(connection_id="con_does_not_exist", dead_letter_id="dlq_nope")
    unknown = await w.as_a(method, missing, **kwargs)
    assert unknown.status_code == 404 and unknown.json()["detail"] == foreign.json()["detail"]
    await b_untouched(w)


async def own_record_works(
    w: World, method: str, template: str, ok: set[int], **kwargs: Any
) -> None:
    """The same call on A's own record is not a 404: the 404 above is isolation, not a bug."""
    path = template.format(connection_id=w.a.connection["id"], dead_letter_id=w.a.dead_letter)
    answer = await w.as_a(method, path, **kwargs)
    assert answer.status_code in ok, f"{method} {template} on own record: {answer.text}"


async def check_plugins(w: World) -> None:
    answer = await w.as_a("GET", "/v1/plugins")
    assert answer.status_code == 200
    w.assert_nothing_of_b(answer)


async def check_list_connections(w: World) -> None:
    await list_route(w, "/v1/connections", own=w.a.connection["id"], filter_by_b=False)


async def check_create_connection(w: World) -> None:
    body = {
        "vendor": "webhook",
        "name": "sneaky",
        "direction": "inbound",
        "credentials": {"secret": signing.new_secret()},
    }
    # A cannot name another tenant: the body has no tenant field, and an unknown field is refused.
    refused = await w.as_a("POST", "/v1/connections", json={**body, "tenant_id": w.b.keys.id})
    assert refused.status_code == 422
    created = await w.as_a("POST", "/v1/connections", json=body)
    assert created.status_code == 201 and created.json()["tenant_id"] == w.a.keys.id
    listed = await w.as_b("GET", "/v1/connections")
    assert created.json()["id"] not in listed.text


async def check_get_connection(w: World) -> None:
    await record_route(w, "GET", "/v1/connections/{connection_id}")
    await own_record_works(w, "GET", "/v1/connections/{connection_id}", {200})


async def check_patch_connection(w: World) -> None:
    await record_route(
        w, "PATCH", "/v1/connections/{connection_id}", json={"name": "taken over", "enabled": False}
    )
    await own_record_works(
        w, "PATCH", "/v1/connections/{connection_id}", {200}, json={"name": "alpha engine"}
    )


async def check_delete_connection(w: World) -> None:
    await record_route(w, "DELETE", "/v1/connections/{connection_id}")


async def check_test_connection(w: World) -> None:
    await record_route(w, "POST", "/v1/connections/{connection_id}/test")


async def check_sync_connection(w: World) -> None:
    await record_route(w, "POST", "/v1/connections/{connection_id}/sync")
    # the webhook connector cannot be pulled: a 422 about the connection, not a 404
    await own_record_works(w, "POST", "/v1/connections/{connection_id}/sync", {422})


async def check_oauth_start(w: World) -> None:
    await record_route(w, "GET", "/v1/connections/{connection_id}/oauth/start")
    # the webhook connector does not connect through OAuth: a 422 about the connection
    await own_record_works(w, "GET", "/v1/connections/{connection_id}/oauth/start", {422})


async def check_resend(w: World) -> None:
    template = "/v1/connections/{connection_id}/resend"
    await record_route(w, "POST", template, json={"client_id": "cl_beta"})
    # B's delivery named on A's own connection is not found, and not shown.
    own = template.format(connection_id=w.a.connection["id"])
    answer = await w.as_a("POST", own, json={"task_id": w.b.delivery_task})
    assert answer.status_code == 422 and answer.json()["extra"]["errors"][0]["field"] == "$.task_id"
    w.assert_nothing_of_b(answer)
    await own_record_works(w, "POST", template, {202}, json={"client_id": "cl_alpha"})


async def check_backfill(w: World) -> None:
    template = "/v1/connections/{connection_id}/backfill"
    since = {"since": "2026-01-01T00:00:00Z"}
    await record_route(w, "POST", template, params=since)
    await own_record_works(w, "POST", template, {202}, params=since)


async def check_connection_health(w: World) -> None:
    await record_route(w, "GET", "/v1/connections/{connection_id}/health")
    await own_record_works(w, "GET", "/v1/connections/{connection_id}/health", {200})


async def check_all_connections_health(w: World) -> None:
    await list_route(w, "/v1/connections/health", own=w.a.connection["id"], filter_by_b=False)


async def check_send_events(w: World) -> None:
    nc = await nats.connect(w.hub.bus.url)
    seen: list[bytes] = []

    async def on_message(msg: Any) -> None:
        seen.append(msg.data)

    try:
        await nc.subscribe(w.hub.bus.subjects.events(w.b.keys.id), cb=on_message)
        await nc.flush()
        answer = await w.gateway.client.post(
            "/v1/events",
            json=event(f"iso-{secrets.token_hex(4)}"),
            headers=w.a.keys.headers("ingest"),
        )
        assert answer.status_code == 202, answer.text
        await asyncio.sleep(0.3)
        assert seen == [], "an event of A's reached B's subject"
    finally:
        await nc.drain()


async def check_deliveries(w: World) -> None:
    await list_route(w, "/v1/deliveries", own=w.a.delivery_task)


async def check_dead_letters(w: World) -> None:
    await list_route(w, "/v1/dlq", own=w.a.dead_letter)


async def check_replay_dead_letter(w: World) -> None:
    await record_route(w, "POST", "/v1/dlq/{dead_letter_id}/replay")


async def check_replay_dead_letters(w: World) -> None:
    filtered = await w.as_a("POST", "/v1/dlq/replay", json={"connection_id": w.b.connection["id"]})
    assert filtered.status_code == 202 and filtered.json() == {"replayed": []}
    everything = await w.as_a("POST", "/v1/dlq/replay")
    assert everything.status_code == 202, everything.text
    assert everything.json()["replayed"] == [w.a.dead_letter]  # A's own, and only A's
    await b_untouched(w)


async def check_triggers(w: World) -> None:
    await list_route(w, "/v1/triggers", own=w.a.trigger)


async def check_audit(w: World) -> None:
    await list_route(w, "/v1/audit", own=f"key:{w.a.key_ids[0]}", filter_by_b=False)
    filtered = await w.as_a("GET", "/v1/audit", params={"connection_id": w.b.connection["id"]})
    assert filtered.status_code == 200 and filtered.json() == []
    b_actions = await w.as_b("GET", "/v1/audit")
    assert w.b.connection["id"] in b_actions.text  # B's entries exist; A just cannot see them


async def check_incidents(w: World) -> None:
    from journeyhub.model import utcnow
    from journeyhub.store.incidents import DEAD_LETTERS, Condition

    for side in (w.a, w.b):  # (the evaluator may have raised them already: one is kept)
        condition = Condition(DEAD_LETTERS, side.keys.id, side.connection["id"], "isolation")
        await w.hub.store.incidents.raise_(condition, utcnow())
    (own,) = await w.hub.store.incidents.list(w.a.keys.id)
    await list_route(w, "/v1/incidents", own=own.id, filter_by_b=False)
    (b_incident,) = await w.hub.store.incidents.list(w.b.keys.id)
    assert b_incident.id not in (await w.as_a("GET", "/v1/incidents")).text


async def check_erase_client(w: World) -> None:
    """A erasing B's client (by its id) erases nothing of B's; A's own client is erased."""
    answer = await w.as_a("DELETE", "/v1/clients/cl_beta")
    assert answer.status_code == 200, answer.text
    assert not any(answer.json()["tables"].values()) and not any(answer.json()["streams"].values())
    w.assert_nothing_of_b(answer)
    assert w.b.trigger in [t.id for t in await w.hub.store.triggers.list(w.b.keys.id)]
    await b_untouched(w)
    own = await w.as_a("DELETE", "/v1/clients/cl_alpha")
    assert own.status_code == 200 and own.json()["tables"]["triggers"] == 1, own.text


async def check_find_clients(w: World) -> None:
    """A's search never finds B's clients (B's client directory has cl_beta)."""
    await w.hub.store.run(lambda conn: w.hub.store.clients.note(conn, [_kept(w.b, "cl_beta")]))
    answer = await w.as_a("GET", "/v1/clients", params={"q": "cl_beta"})
    assert answer.status_code == 200 and answer.json() == [], answer.text
    theirs = await w.as_b("GET", "/v1/clients", params={"q": "cl_beta"})
    assert [c["id"] for c in theirs.json()] == ["cl_beta"]  # there; A just cannot see it


def _kept(side: Side, client_id: str) -> dict[str, Any]:
    """A kept journey event's row (what the router hands the client directory)."""
    body = {"id": f"ev_{client_id}", "client": {"id": client_id, "name": f"{client_id} name"}}
    return {
        "tenant_id": side.keys.id,
        "payload": json.dumps(body).encode(),
        "sequence": 1,
        "received_at": datetime.now(UTC),
    }


async def check_client_timeline(w: World) -> None:
    """B's client's timeline, asked by A, is empty; A's own client's shows A's trigger."""
    foreign = await w.as_a("GET", "/v1/clients/cl_beta/timeline")
    assert foreign.status_code == 200 and foreign.json()["entries"] == [], foreign.text
    w.assert_nothing_of_b(foreign)
    own = await w.as_a("GET", "/v1/clients/cl_alpha/timeline")
    assert own.status_code == 200 and w.a.trigger in own.text, own.text


MATRIX: dict[tuple[str, str], Check] = {
    ("GET", "/v1/plugins"): check_plugins,
    ("GET", "/v1/connections"): check_list_connections,
    ("POST", "/v1/connections"): check_create_connection,
    ("GET", "/v1/connections/{connection_id}"): check_get_connection,
    ("PATCH", "/v1/connections/{connection_id}"): check_patch_connection,
    ("DELETE", "/v1/connections/{connection_id}"): check_delete_connection,
    ("POST", "/v1/connections/{connection_id}/test"): check_test_connection,
    ("POST", "/v1/connections/{connection_id}/sync"): check_sync_connection,
    ("GET", "/v1/connections/{connection_id}/oauth/start"): check_oauth_start,
    ("POST", "/v1/connections/{connection_id}/resend"): check_resend,
    ("POST", "/v1/connections/{connection_id}/backfill"): check_backfill,
    ("GET", "/v1/connections/{connection_id}/health"): check_connection_health,
    ("GET", "/v1/connections/health"): check_all_connections_health,
    ("POST", "/v1/events"): check_send_events,
    ("GET", "/v1/deliveries"): check_deliveries,
    ("GET", "/v1/dlq"): check_dead_letters,
    ("POST", "/v1/dlq/replay"): check_replay_dead_letters,
    ("POST", "/v1/dlq/{dead_letter_id}/replay"): check_replay_dead_letter,
    ("GET", "/v1/triggers"): check_triggers,
    ("GET", "/v1/audit"): check_audit,
    ("GET", "/v1/incidents"): check_incidents,
    ("GET", "/v1/clients"): check_find_clients,
    ("GET", "/v1/clients/{client_id}/timeline"): check_client_timeline,
    ("DELETE", "/v1/clients/{client_id}"): check_erase_client,
}


async def served_v1_operations(gateway: Gateway) -> set[tuple[str, str]]:
    schema = (await gateway.client.get("/schema/openapi.json")).json()
    return {
        (method.upper(), path)
        for path, item in schema["paths"].items()
        if path.startswith("/v1/") or path == "/v1"
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    }


async def test_every_v1_route_is_in_the_isolation_matrix(gateway: Gateway) -> None:
    served = await served_v1_operations(gateway)
    missing = sorted(served - MATRIX.keys())
    assert not missing, f"routes without a tenant-isolation check in MATRIX: {missing}"
    gone = sorted(MATRIX.keys() - served)
    assert not gone, f"MATRIX has entries for routes that are not served any more: {gone}"


async def test_a_tenant_neither_sees_nor_changes_another_tenants_records(world: World) -> None:
    served = await served_v1_operations(world.gateway)
    # the delete goes last: the other checks need A's and B's records
    order = sorted(served & MATRIX.keys(), key=lambda op: op[0] == "DELETE")
    for operation in order:
        await MATRIX[operation](world)
    # and nothing of B's changed through all of it
    await b_untouched(world)
    assert await world.hub.store.connections.get(world.b.connection["id"], world.b.keys.id)


# --- roles: every /v1 route and every dashboard route, for every kind of key ----------------------

# The role each /v1 operation needs (its ``guards=[require(...)]``). A served route missing here
# fails the tests: add it with the role it should need.
NEEDS: dict[tuple[str, str], str] = {
    ("GET", "/v1/plugins"): "read",
    ("GET", "/v1/connections"): "read",
    ("POST", "/v1/connections"): "admin",
    ("GET", "/v1/connections/{connection_id}"): "read",
    ("PATCH", "/v1/connections/{connection_id}"): "admin",
    ("DELETE", "/v1/connections/{connection_id}"): "admin",
    ("POST", "/v1/connections/{connection_id}/test"): "admin",
    ("POST", "/v1/connections/{connection_id}/sync"): "admin",
    ("GET", "/v1/connections/{connection_id}/oauth/start"): "admin",
    ("POST", "/v1/connections/{connection_id}/resend"): "admin",
    ("POST", "/v1/connections/{connection_id}/backfill"): "admin",
    ("GET", "/v1/connections/{connection_id}/health"): "read",
    ("GET", "/v1/connections/health"): "read",
    ("POST", "/v1/events"): "ingest",
    ("GET", "/v1/deliveries"): "read",
    ("GET", "/v1/dlq"): "read",
    ("POST", "/v1/dlq/replay"): "admin",
    ("POST", "/v1/dlq/{dead_letter_id}/replay"): "admin",
    ("GET", "/v1/triggers"): "read",
    ("GET", "/v1/audit"): "read",
    ("GET", "/v1/incidents"): "read",
    ("GET", "/v1/clients"): "read",
    ("GET", "/v1/clients/{client_id}/timeline"): "read",
    ("DELETE", "/v1/clients/{client_id}"): "admin",
}
# Query parameters a route cannot answer without (the probes send no body).
PROBE_PARAMS: dict[tuple[str, str], dict[str, str]] = {
    ("GET", "/v1/clients"): {"q": "ada"},
}

# Every kind of caller: its key's roles (None: no key), and what it may do. Written out here,
# not taken from the code, so that a change to what a role grants fails these tests.
CALLERS: dict[str, tuple[tuple[str, ...] | None, set[str]]] = {
    "ingest": (("ingest",), {"ingest"}),
    "read": (("read",), {"read"}),
    "admin": (("admin",), {"admin", "read"}),  # an admin reads what it changes
    "ingest+read": (("ingest", "read"), {"ingest", "read"}),
    "admin+ingest": (("admin", "ingest"), {"admin", "ingest", "read"}),
    "no key": (None, set()),
}


@dataclass
class Caller:
    name: str
    key: str | None
    may: set[str]

    @property
    def headers(self) -> dict[str, str]:
        return {} if self.key is None else {"authorization": f"Bearer {self.key}"}


@dataclass
class RoleWorld:
    keys: TenantKeys
    connection: dict[str, Any]
    callers: list[Caller]


@pytest.fixture
async def role_world(hub: Hub, gateway: Gateway) -> RoleWorld:
    keys = await make_tenant(hub, "roles studio")
    connection = await create_connection(
        gateway,
        keys,
        vendor="webhook",
        name="roles engine",
        direction="bidirectional",
        config={"url": "http://127.0.0.1:9/hooks"},
        credentials={"secret": signing.new_secret()},
    )
    callers = [
        Caller(
            name, None if roles is None else await hub.store.tenants.create_key(keys.id, roles), may
        )
        for name, (roles, may) in CALLERS.items()
    ]
    return RoleWorld(keys, connection, callers)


def probe_path(template: str, method: str, w: RoleWorld) -> str:
    """The route with harmless ids: the caller's own connection for a read (so that it
    answers), one that does not exist for anything else (so that nothing changes)."""
    connection_id = w.connection["id"] if method == "GET" else "con_role_probe"
    return re.sub(
        r"\{(\w+)\}",
        lambda m: connection_id if m.group(1) == "connection_id" else f"{m.group(1)}_probe",
        template,
    )


def own_records(template: str) -> bool:
    """Whether the probe of ``template`` names only the caller's own records (nothing made up)."""
    return set(re.findall(r"\{(\w+)\}", template)) <= {"connection_id"}


def guard_roles(hub: Hub) -> dict[tuple[str, str], list[str]]:
    """The roles named by each /v1 operation's guards, in the app the gateway serves."""
    app = create_app(hub).app
    found: dict[tuple[str, str], list[str]] = {}
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or not route.path_format.startswith("/v1/"):
            continue
        for handler in route.route_handlers:
            for method in handler.http_methods - {"OPTIONS", "HEAD"}:
                found[(method, route.path_format)] = [
                    guard.role for guard in handler.resolve_guards() if isinstance(guard, RoleGuard)
                ]
    return found


async def test_every_v1_route_declares_the_one_role_it_needs(gateway: Gateway, hub: Hub) -> None:
    served = await served_v1_operations(gateway)
    missing = sorted(served - NEEDS.keys())
    assert not missing, f"routes without a role in NEEDS: {missing}"
    assert not sorted(NEEDS.keys() - served), "NEEDS names routes that are not served"
    guards = guard_roles(hub)
    schema = (await gateway.client.get("/schema/openapi.json")).json()
    for method, path in sorted(served):
        needed = NEEDS[(method, path)]
        guarded = guards.get((method, path))
        assert guarded == [needed], f"{method} {path}: guards=[require({needed!r})], not {guarded}"
        refused = schema["paths"][path][method.lower()]["responses"]["403"]["description"]
        assert f"`{needed}`" in refused, f"the schema does not say {method} {path} needs {needed}"


async def test_every_v1_route_for_every_kind_of_key(
    gateway: Gateway, role_world: RoleWorld
) -> None:
    """Each caller on each route: a 2xx or a 4xx about the request when its roles grant the
    one the route needs, a 403 naming that role when they do not, a 401 without a key.
    ``POST /v1/events`` is answered by the ingress fast path: its check is the same."""
    served = sorted(await served_v1_operations(gateway))
    assert not sorted(set(served) - NEEDS.keys()), "a route without a role in NEEDS"
    for method, template in served:
        needed = NEEDS[(method, template)]
        path = probe_path(template, method, role_world)
        for caller in role_world.callers:
            params = PROBE_PARAMS.get((method, template))
            answer = await gateway.client.request(
                method, path, params=params, headers=caller.headers
            )
            what = f"{caller.name} key on {method} {template}: {answer.status_code} {answer.text}"
            if caller.key is None:
                assert answer.status_code == 401, what
            elif needed in caller.may:
                assert answer.status_code < 500 and answer.status_code not in (401, 403), what
                if method == "GET" and needed == "read" and own_records(template):
                    assert answer.status_code == 200, what
            else:
                assert answer.status_code == 403, what
                assert f"needs {needed!r}" in answer.json()["detail"], what
    # and the admins' calls changed nothing that was there
    kept = await gateway.client.get(
        f"/v1/connections/{role_world.connection['id']}", headers=role_world.keys.headers("read")
    )
    assert kept.status_code == 200 and kept.json()["name"] == "roles engine"


async def test_each_role_does_what_it_names_and_no_more(
    gateway: Gateway, role_world: RoleWorld, hub: Hub
) -> None:
    """The same, doing real work: the ingest key's events are accepted and it reads nothing;
    the read key reads them and changes nothing; the admin key changes a connection and reads
    it back, but sends no event; a key with two roles does both."""
    by_name = {c.name: c for c in role_world.callers}
    client = gateway.client
    tag = secrets.token_hex(4)
    sent = await client.post(
        "/v1/events", json=[event(f"role-{tag}")], headers=by_name["ingest"].headers
    )
    assert sent.status_code == 202, sent.text
    for name in ("read", "admin"):
        refused = await client.post(
            "/v1/events", json=[event(f"role-{tag}-{name}")], headers=by_name[name].headers
        )
        assert refused.status_code == 403, name
    cid = role_world.connection["id"]
    for path in ("/v1/connections", f"/v1/connections/{cid}", "/v1/audit", "/v1/deliveries"):
        assert (await client.get(path, headers=by_name["ingest"].headers)).status_code == 403
    listed = await client.get("/v1/connections", headers=by_name["read"].headers)
    assert listed.status_code == 200 and cid in listed.text
    renamed = await client.patch(
        f"/v1/connections/{cid}", json={"name": "renamed"}, headers=by_name["read"].headers
    )
    assert renamed.status_code == 403
    renamed = await client.patch(
        f"/v1/connections/{cid}", json={"name": "renamed"}, headers=by_name["admin"].headers
    )
    assert renamed.status_code == 200 and renamed.json()["name"] == "renamed"
    both = by_name["ingest+read"].headers
    assert (
        await client.post("/v1/events", json=[event(f"role-{tag}-2")], headers=both)
    ).status_code == 202
    audit = await client.get("/v1/audit", headers=both)
    assert audit.status_code == 200 and "connection.updated" in audit.text
    assert (await client.delete(f"/v1/connections/{cid}", headers=both)).status_code == 403


# The dashboard: which role each of its routes needs (None: open, the sign-in and sign-out).
# A dashboard route missing here fails the test.
DASHBOARD_NEEDS: dict[tuple[str, str], str | None] = {
    ("GET", "/login"): None,
    ("POST", "/login"): None,
    ("POST", "/logout"): None,
    ("GET", "/"): "read",
    ("GET", "/connections/{connection_id}"): "read",
    ("POST", "/connections/{connection_id}/redeliver"): "admin",
    ("POST", "/connections/{connection_id}/oauth/start"): "admin",
    ("GET", "/clients"): "read",
    ("GET", "/clients/{client_id}"): "read",
    ("POST", "/dead-letters/{dead_letter_id}/replay"): "admin",
    ("POST", "/dead-letters/replay"): "admin",
}


def dashboard_operations(hub: Hub) -> set[tuple[str, str]]:
    """The dashboard's routes in the app: those it takes from the Bearer middleware
    (``DASHBOARD_PATHS``), but its stylesheet and script."""
    app = create_app(hub).app
    return {
        (method, route.path_format)
        for route in app.routes
        if isinstance(route, HTTPRoute)
        and any(re.search(p, route.path) for p in DASHBOARD_PATHS)
        and not route.path_format.startswith("/static/")
        for handler in route.route_handlers
        for method in handler.http_methods - {"OPTIONS", "HEAD"}
    }


def flash_error(page: str) -> str:
    """The error message a dashboard page shows once ('' when none)."""
    found = re.search(r'<div class="flash flash-error"[^>]*>(.*?)</div>', page, re.S)
    return found.group(1) if found else ""


async def dashboard_session(gateway: Gateway, key: str) -> tuple[httpx.AsyncClient, httpx.Response]:
    """A browser-like client that tried to sign in with ``key``, and the sign-in's answer."""
    client = httpx.AsyncClient(base_url=gateway.url, timeout=30)
    form = await client.get("/login")
    token = re.search(r'name="_csrf_token" value="([^"]+)"', form.text)
    assert token is not None
    answer = await client.post("/login", data={"_csrf_token": token.group(1), "api_key": key})
    return client, answer


async def test_every_dashboard_route_for_every_kind_of_key(
    gateway: Gateway, role_world: RoleWorld, hub: Hub
) -> None:
    """Signing in needs a key that may read (an ingest-only key is refused, and gets no
    session); pages need a session; what changes something (replay, resend) needs admin:
    other keys are sent back with a message and nothing is done."""
    served = dashboard_operations(hub)
    missing = sorted(served - DASHBOARD_NEEDS.keys())
    assert not missing, f"dashboard routes without a role in DASHBOARD_NEEDS: {missing}"
    assert not sorted(DASHBOARD_NEEDS.keys() - served), "DASHBOARD_NEEDS names routes not served"
    for caller in role_world.callers:
        if caller.key is None:
            client = httpx.AsyncClient(base_url=gateway.url, timeout=30)
        else:
            client, signed = await dashboard_session(gateway, caller.key)
            if "read" not in caller.may:
                assert signed.status_code == 403, caller.name
                assert "may only send events" in signed.text
                assert "jh_session" not in signed.cookies
        signed_in = "read" in caller.may
        try:
            for (method, template), needed in sorted(DASHBOARD_NEEDS.items()):
                if needed is None:
                    continue
                path = probe_path(template, "GET", role_world)  # the caller's own connection
                what = f"{caller.name} on dashboard {method} {template}"
                if method == "GET":
                    answer = await client.get(path)
                    if signed_in:
                        assert answer.status_code in (200, 404), what
                        assert answer.status_code == 200 or not own_records(template), what
                    else:
                        assert answer.status_code == 303, what
                        assert answer.headers["location"] == "/login", what
                    continue
                form = await client.get("/" if signed_in else "/login")
                token = re.search(r'name="_csrf_token" value="([^"]+)"', form.text)
                data = {"_csrf_token": token.group(1) if token else "", "back": "/"}
                answer = await client.post(path, data=data)
                if not signed_in:
                    assert answer.status_code == 303, what
                    assert answer.headers["location"] == "/login", what
                    continue
                # refused: back with a message; allowed: done, or a message about the request
                assert answer.status_code < 500 and answer.status_code != 403, what
                shown = answer.text
                if answer.status_code == 303:
                    shown = (await client.get(answer.headers["location"])).text
                refused = "needs an admin key" in flash_error(shown)
                assert refused == (needed not in caller.may), f"{what}: {flash_error(shown)}"
        finally:
            await client.aclose()


# --- replayed webhooks outside the tolerance ------------------------------------------------------


def stripe_headers(secret: str, body: bytes, timestamp: int) -> dict[str, str]:
    from journeyhub_stripe.verify import compute_signature

    return {
        "stripe-signature": f"t={timestamp},v1={compute_signature(secret, timestamp, body)}",
        "content-type": "application/json",
    }


@pytest.mark.plugins  # Stripe and Resend connections
@pytest.mark.parametrize("vendor", ["stripe", "resend", "webhook"])
# 330 s: past the 300 s tolerance by more than a loaded machine takes to send the request
@pytest.mark.parametrize("offset", [-330, -3600, 330, 3600])
async def test_a_webhook_replayed_outside_the_tolerance_is_refused_as_stale(
    gateway: Gateway, tenant: TenantKeys, vendor: str, offset: int
) -> None:
    secret = signing.new_secret()
    config: dict[str, Any] = {}
    if vendor == "stripe":
        body = json.dumps(
            {
                "id": f"evt_{secrets.token_hex(6)}",
                "type": "invoice.paid",
                "data": {"object": {"id": "in_1", "object": "invoice"}},
            }
        ).encode()
        credentials: dict[str, Any] = {"webhook_secret": secret}
        sign = lambda ts: stripe_headers(secret, body, ts)  # noqa: E731
    elif vendor == "resend":
        body = json.dumps({"type": "email.opened", "data": {"email_id": "e_1"}}).encode()
        credentials = {"api_key": "re_security_0123456789", "webhook_secret": secret}
        config = {"from_address": "Studio <hello@example.com>"}
        msg_id = f"msg_{secrets.token_hex(6)}"
        sign = lambda ts: signing.signed_headers(secret, msg_id, body, prefix="svix", timestamp=ts)  # noqa: E731
    else:
        body = json.dumps({"id": f"t_{secrets.token_hex(6)}", "type": "payment_received"}).encode()
        credentials = {"secret": secret}
        msg_id = f"msg_{secrets.token_hex(6)}"
        sign = lambda ts: signing.signed_headers(secret, msg_id, body, timestamp=ts)  # noqa: E731
    connection = await create_connection(
        gateway,
        tenant,
        vendor=vendor,
        name=f"{vendor} in",
        direction="inbound",
        config=config,
        credentials=credentials,
    )
    url = f"/webhooks/{vendor}/{connection['id']}"
    now = int(time.time())
    fresh = await gateway.client.post(url, content=body, headers=sign(now))
    assert fresh.status_code == 200, fresh.text
    again = await gateway.client.post(url, content=body, headers=sign(now))
    assert again.status_code == 200 and again.json()["duplicate"] is True  # not processed twice
    stale = await gateway.client.post(url, content=body, headers=sign(now + offset))
    assert stale.status_code == 401, stale.text
    assert stale.json()["reason"] == "stale"
    assert secret not in stale.text


# --- body limits ----------------------------------------------------------------------------------


async def test_oversized_webhooks_get_413_declared_or_streamed(
    gateway: Gateway, tenant: TenantKeys, hub: Hub
) -> None:
    connection = await create_connection(
        gateway,
        tenant,
        vendor="webhook",
        name="big",
        direction="inbound",
        credentials={"secret": signing.new_secret()},
    )
    url = f"/webhooks/webhook/{connection['id']}"
    limit = hub.settings.webhook_max_bytes
    declared = await gateway.client.post(url, content=b"{" + b" " * limit + b"}")
    assert declared.status_code == 413 and declared.json()["status_code"] == 413

    async def chunks():  # no content-length: the limit holds on the bytes read
        for _ in range(limit // 65536 + 2):
            yield b" " * 65536

    streamed = await gateway.client.post(url, content=chunks())
    assert streamed.status_code == 413
    assert (await gateway.client.post(url, content=b"{}")).status_code == 401  # below: checked


async def test_an_oversized_events_body_gets_a_clean_413(
    gateway: Gateway, tenant: TenantKeys, hub: Hub
) -> None:
    limit = hub.settings.webhook_max_bytes * 8  # the app's request body limit
    padding = "x" * (limit + 1024)
    body = json.dumps(event("big-1", data={"padding": padding})).encode()
    answer = await gateway.client.post(
        "/v1/events",
        content=body,
        headers={**tenant.headers("ingest"), "content-type": "application/json"},
    )
    assert answer.status_code == 413, answer.text[:300]
    assert answer.json()["status_code"] == 413
    big_connection = await gateway.client.post(
        "/v1/connections",
        content=body,
        headers={**tenant.headers(), "content-type": "application/json"},
    )
    assert big_connection.status_code == 413
    # just under the limit is not refused for its size
    ok = json.dumps(event("big-2", data={"padding": "x" * 1000})).encode()
    answer = await gateway.client.post("/v1/events", content=ok, headers=tenant.headers("ingest"))
    assert answer.status_code == 202


# --- per-tenant rate limit on /v1/events ----------------------------------------------------------


def test_the_token_bucket_counts_events_and_says_when_to_retry() -> None:
    now = [100.0]
    buckets = TokenBuckets(rate=5, burst=10, clock=lambda: now[0])
    assert buckets.take("a", 10) == 0.0
    assert buckets.take("a", 1) == pytest.approx(0.2)  # refused: nothing taken
    assert buckets.take("b", 10) == 0.0  # each tenant has its own bucket
    now[0] += 0.2
    assert buckets.take("a", 1) == 0.0
    assert buckets.take("a", 3) == pytest.approx(0.6)
    now[0] += 100
    assert buckets.take("a", 10) == 0.0  # refilled, but never above the burst
    assert buckets.take("a", 1) > 0
    with pytest.raises(ValueError):
        buckets.take("a", 11)
    assert retry_after_header(0.01) == "1" and retry_after_header(2.1) == "3"


def test_the_events_rate_settings() -> None:
    settings = load_settings(
        {"JOURNEYHUB_EVENTS_RATE_PER_SECOND": "5", "JOURNEYHUB_EVENTS_BURST": "50"}
    )
    assert settings.events_rate_per_second == 5 and settings.events_burst == 50
    defaults = load_settings({})
    assert defaults.events_rate_per_second == 1000 and defaults.events_burst >= 500
    with pytest.raises(SettingsError, match="JOURNEYHUB_EVENTS_RATE_PER_SECOND"):
        load_settings({"JOURNEYHUB_EVENTS_RATE_PER_SECOND": "fast"})


async def test_events_over_a_tenants_rate_get_429_with_retry_after_and_nothing_is_stored(
    hub_settings: Settings,
) -> None:
    fields = {f: getattr(hub_settings, f) for f in hub_settings.__struct_fields__}
    settings = Settings(**{**fields, "events_rate_per_second": 5, "events_burst": 10})
    own_hub = await Hub.start(settings, run_migrations=False)
    nc = await nats.connect(own_hub.bus.url)
    try:
        first = await make_tenant(own_hub, "busy")
        second = await make_tenant(own_hub, "quiet")
        stored: list[bytes] = []

        async def on_message(msg: Any) -> None:
            stored.append(msg.data)

        await nc.subscribe(own_hub.bus.subjects.events(first.id), cb=on_message)
        await nc.flush()
        transport = httpx.ASGITransport(app=create_app(own_hub))
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:

            async def send(keys: TenantKeys, ids: list[str]) -> httpx.Response:
                body = [event(i) for i in ids]
                return await client.post("/v1/events", json=body, headers=keys.headers("ingest"))

            tag = secrets.token_hex(4)
            full = await send(first, [f"{tag}-{i}" for i in range(10)])  # the whole burst
            assert full.status_code == 202, full.text
            await asyncio.sleep(0.2)
            assert len(stored) == 10
            over = await send(first, [f"{tag}-over-{i}" for i in range(3)])
            assert over.status_code == 429, over.text
            retry_after = int(over.headers["retry-after"])
            assert 1 <= retry_after <= 2
            assert "events/s" in over.json()["detail"]
            await asyncio.sleep(0.3)
            assert len(stored) == 10  # nothing of the refused request was published
            # another tenant has its own bucket
            assert (await send(second, [f"{tag}-q-{i}" for i in range(10)])).status_code == 202
            # a batch larger than the burst can never pass: 422, not a 429 to retry forever
            too_big = await send(second, [f"{tag}-big-{i}" for i in range(11)])
            assert (
                too_big.status_code == 422 and "JOURNEYHUB_EVENTS_BURST" in too_big.json()["detail"]
            )
            await asyncio.sleep(retry_after)
            again = await send(first, [f"{tag}-over-{i}" for i in range(3)])
            assert again.status_code == 202, again.text
            await asyncio.sleep(0.2)
            assert len(stored) == 13
    finally:
        await nc.drain()
        await own_hub.close()


# --- token mode: a token of its own, never the signing secret -------------------------------------


@pytest.mark.usefixtures("workers")
async def test_in_token_mode_the_signing_secret_is_in_no_url_or_header(
    gateway: Gateway, tenant: TenantKeys, hub: Hub
) -> None:
    """A webhook connection with a token: a sender that cannot sign sends the token (header or
    ``?token=``), and the signing secret appears in no URL or header, neither in what comes in
    nor in what the hub sends out; the secret itself is no token; the API shows neither."""
    from journeyhub.testing.fixtures import eventually
    from journeyhub.testing.sandbox import SandboxServer
    from litestar import Litestar, Request, post
    from standardwebhooks.webhooks import Webhook

    secret, token = signing.new_secret(), signing.new_token()
    key = secret.removeprefix("whsec_")
    seen: list[str] = []  # every URL and header line of every request, in and out
    pushed: list[str] = []  # what the hub sent out

    @post("/hooks", status_code=204)
    async def engine(request: Request) -> None:
        payload = Webhook(secret).verify(await request.body(), dict(request.headers))
        pushed.append(payload["data"]["id"])
        seen.append(str(request.url))
        seen.extend(f"{k}: {v}" for k, v in request.headers.items())

    with SandboxServer(Litestar([engine])) as server:
        connection = await create_connection(
            gateway,
            tenant,
            vendor="webhook",
            name="engine without signing",
            direction="bidirectional",
            config={"url": f"{server.url}/hooks"},
            credentials={"secret": secret, "token": token},
            event_types=["journey_started", "payment_received"],
        )
        hook = connection["webhook_url"].removeprefix(str(gateway.client.base_url))
        for n, (path, headers) in enumerate(
            [(f"{hook}?token={token}", {}), (hook, {"x-journeyhub-token": token})]
        ):
            body = json.dumps({"id": f"tok-{n}-{tenant.id}", "type": "payment_received"})
            answer = await gateway.client.post(path, content=body, headers=headers)
            assert answer.status_code == 200, answer.text
            seen.append(str(answer.request.url))
            seen.extend(f"{k}: {v}" for k, v in answer.request.headers.items())
        answer = await gateway.client.post(
            "/v1/events", json=event(f"tok-ev-{tenant.id}"), headers=tenant.headers("ingest")
        )
        assert answer.status_code == 202
        await eventually(lambda: f"tok-ev-{tenant.id}" in pushed, timeout=20)
    assert not [line for line in seen if secret in line or key in line]
    assert any(token in line for line in seen)  # the token did travel

    refused = await gateway.client.post(
        hook,
        content=b'{"id": "x", "type": "payment_received"}',
        headers={"x-journeyhub-token": secret},
    )
    assert refused.status_code == 401 and refused.json()["reason"] == "bad_token"
    read = await gateway.client.get(
        f"/v1/connections/{connection['id']}", headers=tenant.headers("read")
    )
    assert token not in read.text and key not in read.text and key not in refused.text
