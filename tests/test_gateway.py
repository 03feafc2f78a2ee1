"""The gateway's health, readiness, schema, and API-key roles, over real HTTP."""

from __future__ import annotations

import asyncio

import httpx
from journeyhub.bus.embedded import EmbeddedNats
from journeyhub.gateway.app import create_app
from journeyhub.hub import Hub
from journeyhub.settings import Settings
from journeyhub.testing.fixtures import Gateway, TenantKeys, eventually


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
    for role in ("admin", "ingest", "read"):
        ok = await client.get("/v1/plugins", headers=tenant.headers(role))
        assert ok.status_code == 200, role
    body = {"vendor": "webhook", "name": "engine", "direction": "inbound",
            "credentials": {"secret": "whsec_c2VjcmV0c2VjcmV0c2VjcmV0"}}  # fmt: skip
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
    settings = Settings(**{**{f: getattr(hub_settings, f) for f in hub_settings.__struct_fields__},
                           "nats_url": nats.url})  # fmt: skip
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
