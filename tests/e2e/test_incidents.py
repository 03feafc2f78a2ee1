"""Incidents end to end: each operational condition is raised once, updated while it grows and
resolved once; the notices reach the tenant's operations endpoint over real HTTP, signed (and
verified here with the official ``standardwebhooks`` package), and its operations address
through Resend; two evaluators at once tell each change once."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec
import pytest
from journeyhub import signing
from journeyhub.delivery.gone import disable_gone_endpoint
from journeyhub.hub import Hub
from journeyhub.model import Connection, DeliveryTask, stable_id, utcnow
from journeyhub.resilience.breaker import Breakers
from journeyhub.store.incidents import KINDS
from journeyhub.testing.fixtures import Gateway, TenantKeys, eventually
from journeyhub.testing.sandbox import SandboxServer
from journeyhub.workers.incidents import Evaluator
from litestar import Litestar, Request, Response, post
from standardwebhooks.webhooks import Webhook

from ..conftest import create_connection

if TYPE_CHECKING:
    from journeyhub_resend.sandbox import ResendSandbox

pytestmark = pytest.mark.usefixtures("workers")  # the push worker delivers the notices


@dataclass
class Operators:
    """The tenant's operations endpoint: a real HTTP server that verifies every request with
    the official package (a bad signature is a 401, never recorded)."""

    secret: str = field(default_factory=signing.new_secret)
    received: list[dict[str, Any]] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    url: str = ""

    def app(self) -> Litestar:
        @post("/ops", status_code=204)
        async def ops(request: Request) -> Response[None]:
            try:
                payload = Webhook(self.secret).verify(await request.body(), dict(request.headers))
            except Exception:
                return Response(None, status_code=401)
            self.ids.append(request.headers["webhook-id"])
            self.received.append(payload)
            return Response(None, status_code=204)

        return Litestar([ops], signature_namespace={"Response": Response})

    def notices(self, kind: str | None = None) -> list[tuple[str, str]]:
        """(type, incident kind) of each notice received, in order."""
        return [
            (p["type"], p["data"]["kind"])
            for p in self.received
            if kind is None or p["data"]["kind"] == kind
        ]


@pytest.fixture
def operators() -> Iterator[Operators]:
    found = Operators()
    with SandboxServer(found.app()) as server:
        found.url = f"{server.url}/ops"
        yield found


async def operations_connection(
    gateway: Gateway, tenant: TenantKeys, operators: Operators
) -> dict[str, Any]:
    return await create_connection(
        gateway,
        tenant,
        vendor="operations",
        name="on-call",
        direction="outbound",
        config={"url": operators.url},
        credentials={"secret": operators.secret},
    )


async def subject(gateway: Gateway, tenant: TenantKeys, name: str) -> Connection:
    """A connection for conditions to happen on (its endpoint is never called)."""
    made = await create_connection(
        gateway,
        tenant,
        vendor="webhook",
        name=name,
        direction="inbound",
        credentials={"secret": signing.new_secret()},
    )
    return msgspec.convert(made, Connection, strict=False)


def evaluator(hub: Hub, **settings: Any) -> Evaluator:
    """An evaluator that is told when to evaluate (the workers' own runs on its lease)."""
    found = Evaluator(hub)
    defaults = {"incident_backlog_stall_seconds": 1, "incident_resolve_after_seconds": 0}
    found.settings = msgspec.structs.replace(hub.settings, **(defaults | settings))
    return found


async def settle(ev: Evaluator, check: Any) -> Any:
    """Evaluate until ``check`` holds (the session's own evaluator may change an incident
    between this one's read and its write; this one then tries again)."""

    async def round_() -> Any:
        await ev.evaluate()
        return await check()

    return await eventually(round_, timeout=15, interval=0.2)


async def incidents(hub: Hub, tenant: TenantKeys, kind: str) -> list[Any]:
    return [i for i in await hub.store.incidents.list(tenant.id) if i.kind == kind]


async def dead_letter(hub: Hub, connection: Connection) -> str:
    return await hub.store.deliveries.dead_letter(
        tenant_id=connection.tenant_id,
        connection_id=connection.id,
        vendor=connection.vendor,
        stage="push",
        subject=hub.bus.subjects.push(connection.id),
        msg_id=f"dead_{secrets.token_hex(6)}",
        payload=b"{}",
        error="a test error",
        attempts=4,
    )


def pending_task(connection: Connection) -> DeliveryTask:
    return DeliveryTask(
        id=stable_id("dlv", "stalled", connection.id),
        tenant_id=connection.tenant_id,
        connection_id=connection.id,
        vendor=connection.vendor,
        kind="event",
        order_key="cl_stalled",
        sequence=1,
    )


async def test_each_condition_is_raised_updated_and_resolved_once_and_told_signed(
    gateway: Gateway, tenant: TenantKeys, hub: Hub, operators: Operators
) -> None:
    await operations_connection(gateway, tenant, operators)
    on = {kind: await subject(gateway, tenant, kind) for kind in KINDS}
    ev = evaluator(hub)
    breakers = Breakers(hub.store, holder="test", threshold=1, cooldown=3600)
    task = pending_task(on["backlog_stalled"])

    # --- every condition begins ---
    await hub.auth.mark_needs_reauth(on["needs_reauth"], "refresh token revoked")
    await disable_gone_endpoint(hub, on["endpoint_gone"], "https://ops.example answered 410")
    await breakers.failure(on["breaker_open"].id)
    await dead_letter(hub, on["dead_letters"])
    await hub.store.run(lambda conn: hub.store.tasks.add(conn, [task]))
    for _ in range(3):
        await hub.store.sync.save_cursor(on["sync_failing"].id, None, "failed: 503", failed=True)
    await asyncio.sleep(1.1)  # the backlog's oldest task waits past the (test's) stall time

    async def all_open() -> bool:
        found = {k: await incidents(hub, tenant, k) for k in KINDS}
        return all(len(v) == 1 and v[0].status == "open" for v in found.values())

    await settle(ev, all_open)
    await ev.evaluate()  # again: nothing new
    for kind in KINDS:
        (incident,) = await incidents(hub, tenant, kind)
        assert incident.connection_id == on[kind].id and incident.revision == 1

    # --- two grow: updated (the dead letters 1 → 3, the failed syncs 3 → 6) ---
    await dead_letter(hub, on["dead_letters"])
    await dead_letter(hub, on["dead_letters"])
    for _ in range(3):
        await hub.store.sync.save_cursor(on["sync_failing"].id, None, "failed: 503", failed=True)

    async def grown() -> bool:
        dead = await incidents(hub, tenant, "dead_letters")
        sync = await incidents(hub, tenant, "sync_failing")
        return dead[0].revision == 2 and sync[0].revision == 2

    await settle(ev, grown)
    (dead,) = await incidents(hub, tenant, "dead_letters")
    assert dead.details["count"] == 3 and dead.status == "open"

    # --- every condition ends ---
    await hub.store.connections.set_status(on["needs_reauth"].id, "active")
    answer = await gateway.client.patch(
        f"/v1/connections/{on['endpoint_gone'].id}",
        json={"enabled": True},
        headers=tenant.headers(),
    )
    assert answer.status_code == 200, answer.text
    await breakers.success(on["breaker_open"].id)
    for row in await hub.store.deliveries.list_dead(tenant.id):
        await hub.store.deliveries.mark_replayed(row.id)
    await hub.store.run(lambda conn: hub.store.tasks.finish(conn, [task.id], "done", utcnow()))
    await hub.store.sync.save_cursor(on["sync_failing"].id, None, "ok: 1 page(s)")

    async def all_resolved() -> bool:
        found = {k: await incidents(hub, tenant, k) for k in KINDS}
        return all(len(v) == 1 and v[0].status == "resolved" for v in found.values())

    await settle(ev, all_resolved)
    await ev.evaluate()

    # --- the operators were told: each change once, in order, signed ---
    expected = {
        kind: ["incident.raised"]
        + (["incident.updated"] if kind in ("dead_letters", "sync_failing") else [])
        + ["incident.resolved"]
        for kind in KINDS
    }

    async def told() -> bool:
        return all(
            [t for t, _ in operators.notices(kind)] == types for kind, types in expected.items()
        )

    await eventually(told, timeout=30)
    await asyncio.sleep(1.0)  # time for a duplicate to arrive, if one were coming
    assert await told(), operators.notices()
    assert len(set(operators.ids)) == len(operators.ids)
    resolved = [p for p in operators.received if p["type"] == "incident.resolved"]
    for payload in resolved:
        data = payload["data"]
        assert payload["kind"] == "incident" and data["status"] == "resolved"
        assert data["tenant_id"] == tenant.id and data["resolved_at"] and data["started_at"]
        assert data["connection_id"] == on[data["kind"]].id
    (dead_updated,) = [
        p
        for p in operators.received
        if p["data"]["kind"] == "dead_letters"
        if p["type"] == "incident.updated"
    ]
    assert dead_updated["data"]["details"]["count"] == 3

    # --- and the API lists them, to a read key ---
    answer = await gateway.client.get("/v1/incidents", headers=tenant.headers("read"))
    assert answer.status_code == 200, answer.text
    assert sorted(i["kind"] for i in answer.json()) == sorted(KINDS)
    answer = await gateway.client.get(
        "/v1/incidents", params={"status": "open"}, headers=tenant.headers("read")
    )
    assert answer.json() == []


async def test_two_evaluators_at_once_raise_and_tell_once(
    gateway: Gateway, tenant: TenantKeys, hub: Hub, operators: Operators
) -> None:
    await operations_connection(gateway, tenant, operators)
    connection = await subject(gateway, tenant, "crm")
    first, second = evaluator(hub), evaluator(hub)
    await dead_letter(hub, connection)
    for _ in range(3):
        await asyncio.gather(first.evaluate(), second.evaluate())
    assert len(await incidents(hub, tenant, "dead_letters")) == 1
    await eventually(lambda: operators.notices("dead_letters"), timeout=20)
    await asyncio.sleep(1.5)
    assert operators.notices("dead_letters") == [("incident.raised", "dead_letters")]


async def test_a_flapping_condition_stays_one_incident(
    gateway: Gateway, tenant: TenantKeys, hub: Hub, operators: Operators
) -> None:
    """Gone and back within the resolve delay: one incident goes on, nothing more is told."""
    await operations_connection(gateway, tenant, operators)
    connection = await subject(gateway, tenant, "calendar")
    ev = evaluator(hub, incident_resolve_after_seconds=3600)
    for _ in range(4):
        await hub.auth.mark_needs_reauth(connection, "revoked")
        await ev.evaluate()
        await hub.store.connections.set_status(connection.id, "active")
        await ev.evaluate()
    (incident,) = await incidents(hub, tenant, "needs_reauth")
    assert incident.status == "open" and incident.revision == 1
    await eventually(lambda: operators.notices("needs_reauth"), timeout=20)
    await asyncio.sleep(1.5)
    assert operators.notices("needs_reauth") == [("incident.raised", "needs_reauth")]


@pytest.mark.plugins  # Resend
async def test_incidents_are_mailed_to_the_operations_address_through_resend(
    gateway: Gateway, tenant: TenantKeys, hub: Hub, resend_sandbox: ResendSandbox
) -> None:
    resend_sandbox.reset()
    config = {"from_address": "Hub <hub@example.com>", "api_base": resend_sandbox.url}
    mailer = await create_connection(
        gateway,
        tenant,
        vendor="resend",
        name="ops mail",
        direction="outbound",
        config=config | {"operations_address": "oncall@example.com"},
        credentials={"api_key": resend_sandbox.api_key},
    )
    # A Resend connection without an operations address is no operations channel.
    await create_connection(
        gateway,
        tenant,
        vendor="resend",
        name="client mail",
        direction="outbound",
        config=config,
        credentials={"api_key": resend_sandbox.api_key},
    )
    connection = await subject(gateway, tenant, "crm")
    ev = evaluator(hub)
    await dead_letter(hub, connection)
    await settle(ev, lambda: incidents(hub, tenant, "dead_letters"))

    mails = await eventually(lambda: resend_sandbox.emails, timeout=20)
    (incident,) = await incidents(hub, tenant, "dead_letters")
    (mail,) = mails
    assert mail["to"] == ["oncall@example.com"] and mail["from"] == config["from_address"]
    assert "dead_letters" in mail["subject"] and connection.id in mail["subject"]
    assert incident.id in mail["text"] and "1 dead letter(s)" in mail["text"]
    tasks = await hub.store.deliveries.list(tenant.id, connection_id=mailer["id"])
    assert [t.status for t in tasks] == ["delivered"]
    await asyncio.sleep(1.0)
    assert len(resend_sandbox.emails) == 1


async def test_the_dashboard_overview_shows_the_open_incidents(
    gateway: Gateway, tenant: TenantKeys, hub: Hub
) -> None:
    import re

    import httpx

    connection = await subject(gateway, tenant, "studio calendar")
    await hub.auth.mark_needs_reauth(connection, "revoked")
    await settle(evaluator(hub), lambda: incidents(hub, tenant, "needs_reauth"))
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
        form = await client.get("/login")
        token = re.search(r'name="_csrf_token" value="([^"]+)"', form.text)
        assert token is not None
        data = {"_csrf_token": token.group(1), "api_key": tenant.read_key}
        assert (await client.post("/login", data=data)).status_code == 303
        page = (await client.get("/")).text
    assert "Open incidents" in page and "studio calendar" in page
    assert "needs to be authorised again" in page
