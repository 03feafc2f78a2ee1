"""The gateway's health, readiness, schema, API-key roles, and its inbound webhook path, over
real HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import msgspec
import pytest
import pytest_asyncio
from journeyhub import metrics
from journeyhub.bus.embedded import EmbeddedNats, free_port
from journeyhub.gateway.app import create_app
from journeyhub.hookspecs import hookimpl
from journeyhub.hub import Hub
from journeyhub.model import Connection, ConnectorInfo, StoredWebhook, WebhookReceipt
from journeyhub.settings import Settings
from journeyhub.testing.fixtures import Gateway, TenantKeys, eventually

if TYPE_CHECKING:
    from journeyhub_stripe.sandbox import StripeSandbox


async def test_health_and_ready(gateway: Gateway) -> None:
    health = await gateway.client.get("/health")
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    ready = await gateway.client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"store": "ok", "bus": "ok"}
    assert ready.headers["x-request-id"]


async def test_openapi_schema_is_served(gateway: Gateway) -> None:
    schema = (await gateway.client.get("/schema/openapi.json")).json()
    assert "/v1/plugins" in schema["paths"]
    assert "/v1/connections" in schema["paths"]


async def test_api_keys_and_roles(gateway: Gateway, tenant: TenantKeys) -> None:
    client = gateway.client
    missing = await client.get("/v1/plugins")
    assert missing.status_code == 401
    assert "Authorization: Bearer" in missing.json()["detail"]
    wrong = await client.get("/v1/plugins", headers={"authorization": "Bearer jh_nope_nope"})
    assert wrong.status_code == 401
    for role in ("admin", "read"):
        ok = await client.get("/v1/plugins", headers=tenant.headers(role))
        assert ok.status_code == 200, role
    refused = await client.get("/v1/plugins", headers=tenant.headers("ingest"))  # events only
    assert refused.status_code == 403 and "needs 'read'" in refused.json()["detail"]
    body = {
        "vendor": "webhook",
        "name": "engine",
        "direction": "inbound",
        "credentials": {"secret": "whsec_c2VjcmV0c2VjcmV0c2VjcmV0"},
    }
    for role in ("ingest", "read"):
        refused = await client.post("/v1/connections", json=body, headers=tenant.headers(role))
        assert refused.status_code == 403, role
        assert "needs 'admin'" in refused.json()["detail"]
    created = await client.post("/v1/connections", json=body, headers=tenant.headers("admin"))
    assert created.status_code == 201


async def test_a_revoked_key_is_refused(gateway: Gateway, hub: Hub) -> None:
    tenant_id = await hub.store.tenants.add("revoking")
    key = await hub.store.tenants.create_key(tenant_id, "read")
    headers = {"authorization": f"Bearer {key}"}
    assert (await gateway.client.get("/v1/plugins", headers=headers)).status_code == 200
    assert await hub.store.tenants.revoke_key(key.split("_")[1], actor="test")

    async def refused() -> bool:
        return (await gateway.client.get("/v1/plugins", headers=headers)).status_code == 401

    # verified keys are cached for 5 s per gateway process: a revoked key stops within that
    await eventually(refused, timeout=8, interval=0.25)
    actions = [e.action for e in await hub.store.audit.list(tenant_id)]
    assert actions == ["key.revoked", "key.created"]


async def test_plugins_endpoint_lists_connectors(gateway: Gateway, tenant: TenantKeys) -> None:
    answer = (await gateway.client.get("/v1/plugins", headers=tenant.headers("read"))).json()
    webhook = next(p for p in answer["plugins"] if p["name"] == "webhook")
    assert webhook["capabilities"] == ["push", "webhook"]
    assert isinstance(answer["errors"], list)


async def test_ready_answers_503_naming_the_bus_when_it_is_down(
    hub_settings: Settings, tmp_path
) -> None:
    nats = EmbeddedNats(tmp_path / "nats").start()
    settings = Settings(
        **{
            **{f: getattr(hub_settings, f) for f in hub_settings.__struct_fields__},
            "nats_url": nats.url,
        }
    )
    own_hub = await Hub.start(settings, run_migrations=False)
    try:
        transport = httpx.ASGITransport(app=create_app(own_hub))
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
            assert (await client.get("/ready")).status_code == 200
            nats.stop()
            await asyncio.sleep(0.2)
            answer = await client.get("/ready")
            assert answer.status_code == 503
            assert answer.json()["checks"]["bus"].startswith("unavailable")
            assert answer.json()["checks"]["store"] == "ok"
    finally:
        nats.stop()
        await own_hub.close()


# --- inbound webhooks: the gateway's own path -------------------------------------------------

STRIPE_SECRET = "whsec_" + "Z2F0ZXdheS10ZXN0LXNlY3JldA=="


@contextlib.asynccontextmanager
async def served(app: object) -> AsyncIterator[str]:
    """``app`` on uvicorn over real HTTP on a free port, as the gateway is served."""
    import uvicorn

    port = free_port()
    config = uvicorn.Config(
        app,  # type: ignore[arg-type]
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="off",
    )
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    await eventually(lambda: server.started, timeout=10, interval=0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


@pytest_asyncio.fixture
async def webhook_gateway(hub: Hub) -> AsyncIterator[tuple[Hub, str, Connection]]:
    """A gateway on a hub of its own (a subject prefix of its own: no worker takes what it
    stores), with a Stripe connection: (the hub, the gateway's URL, the connection)."""
    settings = msgspec.structs.replace(hub.settings, subject_prefix="jhgw" + secrets.token_hex(3))
    own = await Hub.start(settings, run_migrations=False)
    tenant = await own.store.tenants.add("webhooks")
    stripe = await own.store.connections.create(
        tenant_id=tenant,
        vendor="stripe",
        name="stripe",
        direction="inbound",
        enabled=True,
        config={},
        credentials={"webhook_secret": STRIPE_SECRET},
        event_types=[],
        field_mappings=[],
        actor="test",
    )
    try:
        async with served(create_app(own)) as url:
            yield own, url, stripe
    finally:
        for kind in ("inbound", "events", "push", "triggers", "dlq"):
            with contextlib.suppress(Exception):
                await own.bus.js.delete_stream(own.bus.subjects.stream(kind))
        await own.close()


async def stored_webhooks(own: Hub) -> list[StoredWebhook]:
    stream = own.bus.subjects.stream("inbound")
    state = (await own.bus.js.stream_info(stream)).state
    if not state.messages:
        return []
    return [
        msgspec.json.decode((await own.bus.js.get_msg(stream, seq)).data, type=StoredWebhook)
        for seq in range(state.first_seq, state.last_seq + 1)
    ]


def received(outcome: str) -> float:
    return metrics.webhooks_received.labels("stripe", outcome)._value.get()


async def test_a_webhook_is_answered_only_once_it_is_stored(
    webhook_gateway: tuple[Hub, str, Connection], stripe_sandbox: StripeSandbox
) -> None:
    from journeyhub_stripe.sandbox import payment_intent

    own, url, stripe = webhook_gateway
    endpoint = f"{url}/webhooks/stripe/{stripe.id}"
    event = stripe_sandbox.emit("payment_intent.succeeded", payment_intent(2_500))
    accepted, duplicates = received("accepted"), received("duplicate")
    headers = {"x-request-id": "req-gw-1", "authorization": "Bearer the-callers-own"}
    async with httpx.AsyncClient(headers=headers) as http:
        first = await stripe_sandbox.deliver(event, endpoint, [STRIPE_SECRET], http)
        # What the 200 promises: the webhook is on the bus, as received, without credentials.
        stored = await stored_webhooks(own)
        again = await stripe_sandbox.deliver(event, endpoint, [STRIPE_SECRET], http)
    assert first.status_code == 200
    assert first.json() == {"received": True, "duplicate": False, "event_id": event["id"]}
    assert first.headers["x-request-id"] == "req-gw-1"
    assert first.headers["content-type"].startswith("application/json")
    assert [(s.event_id, s.correlation_id, s.tenant_id) for s in stored] == [
        (event["id"], "req-gw-1", stripe.tenant_id)
    ]
    assert json.loads(stored[0].body) == event
    assert "stripe-signature" in stored[0].headers and "authorization" not in stored[0].headers
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert len(await stored_webhooks(own)) == 1
    assert (received("accepted"), received("duplicate")) == (accepted + 1, duplicates + 1)

    # Without an x-request-id, a new id: in the answer and on the stored webhook.
    other = stripe_sandbox.emit("payment_intent.succeeded", payment_intent(2_600))
    async with httpx.AsyncClient() as http:
        answer = await stripe_sandbox.deliver(other, endpoint, [STRIPE_SECRET], http)
    assert answer.status_code == 200
    assert len(answer.headers["x-request-id"]) == 32
    assert (await stored_webhooks(own))[-1].correlation_id == answer.headers["x-request-id"]

    # The same route through Litestar (the path the fast path leaves to it) answers alike.
    async with httpx.AsyncClient() as http:
        slash = await stripe_sandbox.deliver(other, endpoint + "/", [STRIPE_SECRET], http)
    assert slash.status_code == 200
    assert slash.json() == {"received": True, "duplicate": True, "event_id": other["id"]}
    assert slash.headers["x-request-id"]


async def test_bad_webhooks_get_their_4xx_and_nothing_is_stored(
    webhook_gateway: tuple[Hub, str, Connection],
    stripe_sandbox: StripeSandbox,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from journeyhub_stripe.sandbox import payment_intent

    own, url, stripe = webhook_gateway
    endpoint = f"{url}/webhooks/stripe/{stripe.id}"
    event = stripe_sandbox.emit("payment_intent.succeeded", payment_intent(900))
    limit = own.settings.webhook_max_bytes

    async def chunks() -> AsyncIterator[bytes]:  # no content-length: read until too large
        for _ in range(limit // 4096 + 2):
            yield b"x" * 4096

    capsys.readouterr()
    async with httpx.AsyncClient(headers={"x-request-id": "req-bad-1"}) as http:
        forged = await stripe_sandbox.deliver(event, endpoint, ["whsec_" + "Zm9yZ2Vk"], http)
        assert forged.status_code == 401
        assert forged.json() == {
            "status_code": 401,
            "detail": "webhook rejected: bad_signature",
            "reason": "bad_signature",
        }
        assert forged.headers["x-request-id"] == "req-bad-1"
        unknown = await http.post(f"{url}/webhooks/stripe/con_nope", content=b"{}")
        assert unknown.status_code == 404
        assert unknown.json() == {"status_code": 404, "detail": "no such webhook endpoint"}
        other_vendor = await http.post(f"{url}/webhooks/resend/{stripe.id}", content=b"{}")
        assert other_vendor.status_code == 404
        declared = await http.post(endpoint, content=b"x" * (limit + 1))
        assert declared.status_code == 413
        assert declared.json()["detail"] == f"body larger than {limit} bytes"
        streamed = await http.post(endpoint, content=chunks())
        assert streamed.status_code == 413
        assert (await http.get(endpoint)).status_code == 405
    assert await stored_webhooks(own) == []
    rejected = [
        json.loads(line)
        for line in capsys.readouterr().err.splitlines()
        if '"webhook_rejected"' in line
    ]
    assert [(r["request_id"], r["reason"], r["connection_id"]) for r in rejected] == [
        ("req-bad-1", "bad_signature", stripe.id)
    ]


class Broken:
    """A connector whose signature check fails in an unexpected way."""

    @hookimpl
    def journeyhub_connector(self) -> ConnectorInfo:
        return ConnectorInfo(
            vendor="broken",
            display_name="Broken",
            capabilities=frozenset({"webhook"}),
            auth_kind="none",
        )

    @hookimpl
    def journeyhub_verify_webhook(self, body: bytes) -> WebhookReceipt:
        raise RuntimeError("internal detail 7f3a")


async def test_an_unexpected_error_is_a_500_that_tells_nothing(
    webhook_gateway: tuple[Hub, str, Connection],
) -> None:
    own, url, stripe = webhook_gateway
    own.registry.register(Broken(), name="broken")
    broken = await own.store.connections.create(
        tenant_id=stripe.tenant_id,
        vendor="broken",
        name="broken",
        direction="inbound",
        enabled=True,
        config={},
        credentials={},
        event_types=[],
        field_mappings=[],
        actor="test",
    )
    async with httpx.AsyncClient() as http:
        answer = await http.post(f"{url}/webhooks/broken/{broken.id}", content=b"{}")
    assert answer.status_code == 500
    assert answer.json() == {"status_code": 500, "detail": "internal error"}
    assert "7f3a" not in answer.text
    assert await stored_webhooks(own) == []


async def test_a_webhook_gets_503_when_the_bus_does_not_acknowledge(
    hub_settings: Settings, tmp_path: Path, stripe_sandbox: StripeSandbox
) -> None:
    from journeyhub_stripe.sandbox import payment_intent

    nats = EmbeddedNats(tmp_path / "nats").start()
    settings = msgspec.structs.replace(hub_settings, nats_url=nats.url)
    own = await Hub.start(settings)  # migrates, when no test before did
    try:
        tenant = await own.store.tenants.add("bus down")
        stripe = await own.store.connections.create(
            tenant_id=tenant,
            vendor="stripe",
            name="stripe",
            direction="inbound",
            enabled=True,
            config={},
            credentials={"webhook_secret": STRIPE_SECRET},
            event_types=[],
            field_mappings=[],
            actor="test",
        )
        event = stripe_sandbox.emit("payment_intent.succeeded", payment_intent(700))
        # The publish waits for its acknowledgement up to 5 s (the client buffers it while it
        # reconnects): the 503 comes then.
        async with served(create_app(own)) as url, httpx.AsyncClient(timeout=20) as http:
            endpoint = f"{url}/webhooks/stripe/{stripe.id}"
            ok = await stripe_sandbox.deliver(event, endpoint, [STRIPE_SECRET], http)
            assert ok.status_code == 200
            nats.stop()
            await asyncio.sleep(0.2)
            down = await stripe_sandbox.deliver(event, endpoint, [STRIPE_SECRET], http)
        assert down.status_code == 503
        assert down.headers["retry-after"] == "5"
        assert down.json() == {
            "status_code": 503,
            "detail": "not stored: the bus is unavailable; retry",
        }
    finally:
        nats.stop()
        # Bus.close raises when the server is gone with a publish still buffered (the client
        # flushes it to the dead socket): not what this test is about.
        with contextlib.suppress(ConnectionResetError):
            await own.close()
