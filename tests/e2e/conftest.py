"""End-to-end fixtures: the plugins' vendor sandboxes (imported when a test asks for one, so the
kernel's tests that need no plugin run with none installed; a test using one of these fixtures
is marked ``plugins`` by ``tests/conftest.py``) and a watch on the hub's triggers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

import msgspec
import nats
import pytest
import pytest_asyncio
from journeyhub.hub import Hub
from journeyhub.testing.fixtures import TenantKeys

if TYPE_CHECKING:
    from journeyhub_resend.sandbox import ResendSandbox
    from journeyhub_stripe.sandbox import StripeSandbox
    from journeyhub_tave.sandbox import TaveSandbox


@pytest.fixture(scope="session")
def tave_sandbox() -> Iterator[TaveSandbox]:
    from journeyhub_tave.sandbox import TaveSandbox

    with TaveSandbox() as sandbox:
        yield sandbox


@pytest.fixture(scope="session")
def stripe_sandbox() -> Iterator[StripeSandbox]:
    from journeyhub_stripe.sandbox import StripeSandbox

    with StripeSandbox() as sandbox:
        yield sandbox


@pytest.fixture(scope="session")
def resend_sandbox() -> Iterator[ResendSandbox]:
    from journeyhub_resend.sandbox import ResendSandbox

    with ResendSandbox() as sandbox:
        yield sandbox


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
