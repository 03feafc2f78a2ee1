"""Inbound end to end: vendor webhook → gateway → JetStream → inbound worker → triggers,
against the Stripe and Resend sandboxes' own webhook senders, over real HTTP."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

import httpx
import msgspec
import pytest
from journeyhub import signing
from journeyhub.hookspecs import hookimpl
from journeyhub.hub import Hub
from journeyhub.model import ConnectorInfo, WebhookReceipt
from journeyhub.testing.fixtures import Gateway, TenantKeys, eventually

from ..conftest import create_connection
from .conftest import TriggerWatch

if TYPE_CHECKING:
    from journeyhub_resend.sandbox import ResendSandbox
    from journeyhub_stripe.sandbox import StripeSandbox

pytestmark = pytest.mark.usefixtures("workers")
SECRET = "whsec_" + "c3RyaXBlLXNlY3JldC1mb3ItdGVzdHM="
OLD_SECRET = "whsec_" + "b2xkLXN0cmlwZS1zZWNyZXQ="


async def stripe_connection(gateway: Gateway, tenant: TenantKeys, **credentials: Any) -> dict:
    return await create_connection(
        gateway,
        tenant,
        vendor="stripe",
        name="payments",
        direction="inbound",
        credentials={"webhook_secret": SECRET, **credentials},
    )


def paid(client_id: str = "cl_stripe") -> dict[str, Any]:
    from journeyhub_stripe.sandbox import payment_intent

    intent = payment_intent(amount=150_000, currency="gbp", metadata={"client_id": client_id})
    return intent


async def test_a_signed_stripe_payment_becomes_one_trigger(
    gateway: Gateway,
    tenant: TenantKeys,
    hub: Hub,
    stripe_sandbox: StripeSandbox,
    watch_triggers: TriggerWatch,
) -> None:
    connection = await stripe_connection(gateway, tenant)
    assert connection["webhook_url"].endswith(f"/webhooks/stripe/{connection['id']}")
    assert "credentials" not in connection
    event = stripe_sandbox.emit("payment_intent.succeeded", paid())
    async with httpx.AsyncClient() as http:
        first = await stripe_sandbox.deliver(event, connection["webhook_url"], [SECRET], http)
        again = await stripe_sandbox.deliver(event, connection["webhook_url"], [SECRET], http)
    assert first.status_code == 200 and first.json()["duplicate"] is False
    assert again.status_code == 200 and again.json()["duplicate"] is True

    triggers = await eventually(lambda: hub.store.triggers.list(tenant.id))
    await eventually(lambda: watch_triggers.received)
    await asyncio.sleep(0.5)  # give a wrong second trigger the time to show up
    triggers = await hub.store.triggers.list(tenant.id)
    assert len(triggers) == 1 and len(watch_triggers.received) == 1
    trigger = watch_triggers.received[0]
    assert trigger["type"] == "payment_received"
    assert trigger["client_id"] == "cl_stripe"
    assert trigger["source_event_id"] == event["id"]
    assert trigger["data"]["amount"] == 150_000
    assert trigger["tenant_id"] == tenant.id and trigger["vendor"] == "stripe"


async def test_stripe_signatures_bad_stale_and_rotated(
    gateway: Gateway, tenant: TenantKeys, hub: Hub, stripe_sandbox: StripeSandbox
) -> None:
    connection = await stripe_connection(gateway, tenant, previous_webhook_secrets=[OLD_SECRET])
    url = connection["webhook_url"]
    event = stripe_sandbox.emit(
        "invoice.paid",
        {
            "id": "in_1",
            "object": "invoice",
            "amount_paid": 5000,
            "currency": "gbp",
            "customer_email": "x@example.com",
        },
    )
    async with httpx.AsyncClient() as http:
        wrong = await stripe_sandbox.deliver(event, url, ["whsec_" + "d3Jvbmc="], http)
        assert wrong.status_code == 401 and wrong.json()["reason"] == "bad_signature"
        assert SECRET not in wrong.text
        stale = await stripe_sandbox.deliver(
            event, url, [SECRET], http, timestamp=int(time.time()) - 900
        )
        assert stale.status_code == 401 and stale.json()["reason"] == "stale"
        unsigned = await http.post(url, content=b"{}", headers={"content-type": "application/json"})
        assert unsigned.status_code == 401 and unsigned.json()["reason"] == "missing_signature"
        # During a roll Stripe signs with both secrets; our previous secret is still accepted.
        rolled = await stripe_sandbox.deliver(event, url, ["whsec_" + "bmV3ZXI=", SECRET], http)
        assert rolled.status_code == 200
        old = stripe_sandbox.emit(
            "invoice.paid", {"id": "in_2", "object": "invoice", "amount_paid": 1, "currency": "gbp"}
        )
        assert (await stripe_sandbox.deliver(old, url, [OLD_SECRET], http)).status_code == 200


@pytest.mark.plugins  # a Stripe connection
async def test_unknown_disabled_and_oversized(
    gateway: Gateway, tenant: TenantKeys, hub: Hub
) -> None:
    connection = await stripe_connection(gateway, tenant)
    client = gateway.client
    assert (await client.post("/webhooks/stripe/con_nope", content=b"{}")).status_code == 404
    # the right id under another vendor's path is as unknown as a wrong id
    assert (
        await client.post(f"/webhooks/resend/{connection['id']}", content=b"{}")
    ).status_code == 404
    big = b"x" * (hub.settings.webhook_max_bytes + 1)
    assert (
        await client.post(f"/webhooks/stripe/{connection['id']}", content=big)
    ).status_code == 413
    disabled = await client.patch(
        f"/v1/connections/{connection['id']}", json={"enabled": False}, headers=tenant.headers()
    )
    assert disabled.status_code == 200
    assert (
        await client.post(f"/webhooks/stripe/{connection['id']}", content=b"{}")
    ).status_code == 404


async def test_resend_bounce_becomes_a_trigger_and_suppresses_the_address(
    gateway: Gateway,
    tenant: TenantKeys,
    hub: Hub,
    resend_sandbox: ResendSandbox,
    watch_triggers: TriggerWatch,
) -> None:
    secret = signing.new_secret()
    connection = await create_connection(
        gateway,
        tenant,
        vendor="resend",
        name="mail",
        direction="bidirectional",
        config={"from_address": "Studio <hello@example.com>", "api_base": resend_sandbox.url},
        credentials={"api_key": resend_sandbox.api_key, "webhook_secret": secret},
    )
    async with httpx.AsyncClient() as http:
        sent = await http.post(
            f"{resend_sandbox.url}/emails",
            headers={"authorization": f"Bearer {resend_sandbox.api_key}"},
            json={
                "from": "hello@example.com",
                "to": ["gone@example.com"],
                "subject": "Hi",
                "html": "<p>hi</p>",
                "tags": [{"name": "client_id", "value": "cl_bounce"}],
            },
        )
        email_id = sent.json()["id"]
        bounced = resend_sandbox.emit("email.bounced", email_id)
        stale = await resend_sandbox.deliver(
            bounced, connection["webhook_url"], secret, http, timestamp=int(time.time()) - 3600
        )
        assert stale.status_code == 401 and stale.json()["reason"] == "stale"
        forged = await resend_sandbox.deliver(
            bounced, connection["webhook_url"], signing.new_secret(), http
        )
        assert forged.status_code == 401 and forged.json()["reason"] == "bad_signature"
        ok = await resend_sandbox.deliver(bounced, connection["webhook_url"], secret, http)
        assert ok.status_code == 200
    await eventually(lambda: watch_triggers.received)
    assert watch_triggers.received[0]["type"] == "email_bounced"
    assert watch_triggers.received[0]["client_id"] == "cl_bounce"
    suppressed = await eventually(
        lambda: hub.store.triggers.suppressed(tenant.id, ["GONE@example.com"])
    )
    assert suppressed == {"gone@example.com": "bounced"}


class Poison:
    """A connector whose webhooks can be stored but never handled."""

    @hookimpl
    def journeyhub_connector(self) -> ConnectorInfo:
        return ConnectorInfo(
            vendor="poison",
            display_name="Poison",
            capabilities=frozenset({"webhook"}),
            auth_kind="none",
        )

    @hookimpl
    def journeyhub_verify_webhook(self, body: bytes) -> WebhookReceipt:
        data = msgspec.json.decode(body)
        return WebhookReceipt(event_id=data["id"], event_type=data["type"])

    @hookimpl
    def journeyhub_handle_webhook(self, webhook):  # type: ignore[no-untyped-def]
        kind = msgspec.json.decode(webhook.body)["type"]
        if kind == "mystery":
            return None
        raise RuntimeError("cannot parse this vendor's payload")


@pytest.fixture
def poison_plugin(hub: Hub):  # type: ignore[no-untyped-def]
    hub.registry.register(Poison(), name="poison")
    yield
    hub.registry.unregister("poison")


@pytest.mark.usefixtures("poison_plugin")
async def test_a_poison_message_ends_in_the_dead_letters_and_unknown_types_do_not(
    gateway: Gateway, tenant: TenantKeys, hub: Hub
) -> None:
    from journeyhub import metrics

    connection = await create_connection(
        gateway, tenant, vendor="poison", name="p", direction="inbound"
    )
    url = f"/webhooks/poison/{connection['id']}"
    unknown_before = metrics.webhook_events_unknown.labels("poison", "mystery")._value.get()
    assert (await gateway.client.post(url, json={"id": "e1", "type": "mystery"})).status_code == 200
    assert (await gateway.client.post(url, json={"id": "e2", "type": "broken"})).status_code == 200

    dead = await eventually(lambda: hub.store.deliveries.list_dead(tenant.id), timeout=30)
    assert len(dead) == 1
    assert dead[0].stage == "inbound" and dead[0].attempts == hub.settings.max_deliver
    assert "cannot parse this vendor's payload" in dead[0].error
    listed = await gateway.client.get("/v1/dlq", headers=tenant.headers("read"))
    assert listed.json()[0]["error"] == dead[0].error
    assert (
        metrics.webhook_events_unknown.labels("poison", "mystery")._value.get()
        == unknown_before + 1
    )


async def test_triggers_reach_a_journey_engine_signed_per_standard_webhooks(
    gateway: Gateway, tenant: TenantKeys, hub: Hub, stripe_sandbox: StripeSandbox
) -> None:
    from journeyhub.testing.sandbox import Fault, Faults, SandboxServer
    from litestar import Litestar, Request, post
    from standardwebhooks.webhooks import Webhook

    engine_secret = signing.new_secret()
    received: list[dict[str, Any]] = []
    faults = Faults()

    @post("/hooks/journeyhub", status_code=204)
    async def engine(request: Request) -> None:
        body = await request.body()
        # the journey engine verifies with the standardwebhooks library itself
        payload = Webhook(engine_secret).verify(body, dict(request.headers))
        fault = await faults.apply()
        if fault is not None:
            raise RuntimeError("engine down")  # answers 500
        received.append({"payload": payload, "id": request.headers["webhook-id"]})

    faults.plan(Fault(status=503))
    with SandboxServer(Litestar([engine])) as server:
        await create_connection(
            gateway,
            tenant,
            vendor="webhook",
            name="journey engine",
            direction="outbound",
            config={"url": f"{server.url}/hooks/journeyhub"},
            credentials={"secret": engine_secret},
            event_types=["payment_received"],
        )
        stripe = await stripe_connection(gateway, tenant)
        event = stripe_sandbox.emit("payment_intent.succeeded", paid("cl_engine"))
        async with httpx.AsyncClient() as http:
            assert (
                await stripe_sandbox.deliver(event, stripe["webhook_url"], [SECRET], http)
            ).status_code == 200
        await eventually(lambda: received, timeout=20)
    assert len(received) == 1
    # The Standard Webhooks payload: the trigger as data, its type and when it occurred around it
    payload = received[0]["payload"]
    assert set(payload) == {"type", "timestamp", "kind", "data"}, payload
    trigger = payload["data"]
    assert payload["type"] == trigger["type"] == "payment_received"
    assert payload["kind"] == "trigger" and trigger["client_id"] == "cl_engine"
    assert payload["timestamp"].endswith("Z")
    assert datetime.fromisoformat(payload["timestamp"]) == datetime.fromisoformat(
        trigger["occurred_at"]
    )
    # The push worker records the delivery after the engine's answer: wait for that row.
    await eventually(lambda: hub.store.deliveries.list(tenant.id, status="delivered"))
    attempts = await hub.store.deliveries.list(tenant.id)
    assert [a.status for a in reversed(attempts)] == ["failed", "delivered"]
