"""Kernel and end-to-end tests. Infrastructure fixtures (nats_server, hub, gateway, tenant,
workers) come from the ``journeyhub.testing.fixtures`` pytest plugin that the kernel ships;
the vendor sandboxes come from the connector distributions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import msgspec
import nats
import pytest
import pytest_asyncio
from journeyhub.hub import Hub
from journeyhub.testing.fixtures import Gateway, TenantKeys
from journeyhub_resend.sandbox import ResendSandbox
from journeyhub_stripe.sandbox import StripeSandbox
from journeyhub_tave.sandbox import TaveSandbox


@pytest.fixture(scope="session")
def tave_sandbox() -> Iterator[TaveSandbox]:
    with TaveSandbox() as sandbox:
        yield sandbox


@pytest.fixture(scope="session")
def stripe_sandbox() -> Iterator[StripeSandbox]:
    with StripeSandbox() as sandbox:
        yield sandbox


@pytest.fixture(scope="session")
def resend_sandbox() -> Iterator[ResendSandbox]:
    with ResendSandbox() as sandbox:
        yield sandbox


async def create_connection(gateway: Gateway, tenant: TenantKeys, **body: Any) -> dict[str, Any]:
    answer = await gateway.client.post("/v1/connections", json=body, headers=tenant.headers())
    assert answer.status_code == 201, answer.text
    return answer.json()


class TriggerWatch:
    """Collects what arrives on ``jh.triggers.<tenant>`` (a plain NATS subscription)."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []

    async def handler(self, msg: Any) -> None:
        self.received.append(msgspec.json.decode(msg.data))


@pytest_asyncio.fixture
async def watch_triggers(hub: Hub, tenant: TenantKeys) -> AsyncIterator[TriggerWatch]:
    watch = TriggerWatch()
    nc = await nats.connect(hub.bus.url)
    await nc.subscribe(hub.bus.subjects.triggers(tenant.id), cb=watch.handler)
    await nc.flush()
    yield watch
    await nc.drain()


def event(event_id: str, event_type: str = "journey_started", client_id: str = "cl_1",
          **extra: Any) -> dict[str, Any]:  # fmt: skip
    body: dict[str, Any] = {
        "id": event_id,
        "type": event_type,
        "occurred_at": "2026-03-01T12:00:00Z",
        "journey_instance_id": f"ji_{client_id}",
        "journey_name": "Wedding onboarding",
        "client": {
            "id": client_id,
            "name": "Ada Lovelace",
            "email": f"{client_id}@example.com",
            "phone": "+44 20 7946 0000",
        },
        "wedding": {
            "date": "2026-09-12",
            "venue": {"name": "Kew Gardens", "address": "Richmond"},
            "guest_count": 120,
        },
    }
    body.update(extra)
    return body


async def settle(seconds: float = 0.3) -> None:
    await asyncio.sleep(seconds)
