"""Workers killed with SIGKILL at the worst moments: nothing is lost and nothing is done twice.

Each test runs its own nats-server and real ``journeyhub worker`` subprocesses, so the
in-process workers of the other tests cannot take the messages.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
import pytest_asyncio
from journeyhub.bus.embedded import EmbeddedNats
from journeyhub.hub import Hub
from journeyhub.model import JourneyEvent, StoredWebhook, utcnow
from journeyhub.secretbox import generate_key
from journeyhub.settings import Settings, load_settings
from journeyhub.testing.fixtures import database_url_for_tests, eventually
from journeyhub.testing.sandbox import Fault

from ..conftest import event

pytestmark = pytest.mark.plugins  # a Tave push and a Stripe webhook
KEY = generate_key()
SECRET = "whsec_" + "Y3Jhc2gtdGVzdC1zZWNyZXQ="

# An observer that stalls the first worker after the trigger is published and recorded but
# before the webhook is acknowledged: the worst moment to die.
STALL_PLUGIN = """
import os, time
from pathlib import Path
from journeyhub.hookspecs import hookimpl
from journeyhub.model import ConnectorInfo

@hookimpl
def journeyhub_connector():
    return ConnectorInfo(vendor="stall", display_name="Stall", capabilities=frozenset(),
                         auth_kind="none")

@hookimpl
def journeyhub_trigger_emitted(trigger):
    marker = Path(os.environ["STALL_MARKER"])
    if not marker.exists():
        marker.write_text(trigger.id)
        time.sleep(120)
"""


def install_stall_plugin(site: Path) -> None:
    (site / "jh_stall").mkdir(parents=True)
    (site / "jh_stall" / "__init__.py").write_text(STALL_PLUGIN)
    dist = site / "journeyhub_stall-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: journeyhub-stall\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[journeyhub.connectors]\nstall = jh_stall\n")
    (dist / "RECORD").write_text("")


class Cluster:
    def __init__(self, tmp: Path, nats: EmbeddedNats, settings: Settings, hub: Hub) -> None:
        self.tmp, self.nats, self.settings, self.hub = tmp, nats, settings, hub
        self.workers: list[subprocess.Popen[str]] = []

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            **os.environ,
            "JOURNEYHUB_DATA_DIR": str(self.settings.data_dir),
            "JOURNEYHUB_NATS_URL": self.nats.url,
            "JOURNEYHUB_DATABASE_URL": self.settings.effective_database_url,
            "JOURNEYHUB_SECRET_KEYS": KEY,
            "JOURNEYHUB_ACK_WAIT_SECONDS": "3",
            "JOURNEYHUB_LOG_FORMAT": "json",
            "JOURNEYHUB_SUBJECT_PREFIX": self.settings.subject_prefix,
            **extra,
        }
        env.pop("JOURNEYHUB_PLUGINS", None)
        return env

    def start_worker(self, **extra: str) -> subprocess.Popen[str]:
        log = open(self.tmp / f"worker-{len(self.workers)}.log", "w")  # noqa: SIM115
        process = subprocess.Popen(
            [sys.executable, "-m", "journeyhub", "worker"],
            env=self.env(**extra),
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.workers.append(process)
        deadline = time.monotonic() + 60
        path = Path(log.name)
        while "workers_started" not in path.read_text():
            assert process.poll() is None, path.read_text()
            assert time.monotonic() < deadline, "worker did not start"
            time.sleep(0.1)
        return process


@pytest_asyncio.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    nats = EmbeddedNats(tmp_path / "nats").start()
    url = database_url_for_tests()
    # A subject prefix of its own: with PostgreSQL the store is shared with the other tests'
    # hubs, and the routing leases are per stream name.
    settings = load_settings(
        {},
        data_dir=tmp_path / "data",
        nats_url=nats.url,
        secret_keys=(KEY,),
        database_url=url,
        ack_wait_seconds=3,
        subject_prefix="jhcrash" + secrets.token_hex(3),
    )
    hub = await Hub.start(settings)
    cluster = Cluster(tmp_path, nats, settings, hub)
    yield cluster
    for process in cluster.workers:
        if process.poll() is None:
            process.kill()
            process.wait()
    await hub.close()
    nats.stop()


async def test_a_worker_killed_mid_push_makes_no_duplicate(cluster: Cluster) -> None:
    from journeyhub_tave.sandbox import TaveSandbox

    hub = cluster.hub
    with TaveSandbox() as tave:
        tenant_id = await hub.store.tenants.add("crash push")
        await hub.store.connections.create(
            tenant_id=tenant_id,
            vendor="tave",
            name="crm",
            direction="outbound",
            enabled=True,
            config={"api_base": tave.api_base},
            credentials={"api_key": tave.api_key},
            event_types=[],
            field_mappings=[],
            actor="test",
        )
        # The first vendor call is slow: the worker is inside it when it dies, and the
        # sandbox still carries the call out afterwards.
        tave.faults.plan(Fault(delay=2.5))
        first = cluster.start_worker()
        body = msgspec.json.encode(
            msgspec.convert(event("crash-1", client_id="cl_crash"), JourneyEvent)
        )
        await hub.bus.publish(
            hub.bus.subjects.events(tenant_id), body, msg_id=f"{tenant_id}:crash-1"
        )
        await eventually(lambda: not tave.faults.planned, timeout=90)  # the slow call has begun
        await asyncio.sleep(0.5)
        first.send_signal(signal.SIGKILL)
        first.wait()
        cluster.start_worker()
        rows = await eventually(
            lambda: hub.store.deliveries.list(tenant_id, status="delivered"), timeout=120
        )
        await asyncio.sleep(1.0)
        assert len(rows) == 1
        assert len(tave.contacts) == 1 and tave.creates("address-book") == 1
        assert len(tave.jobs) == 1


async def test_a_worker_killed_between_receipt_and_ack_gives_one_trigger(cluster: Cluster) -> None:
    from journeyhub_stripe.sandbox import StripeSandbox, payment_intent

    hub = cluster.hub
    site = cluster.tmp / "site"
    install_stall_plugin(site)
    marker = cluster.tmp / "stalled"
    tenant_id = await hub.store.tenants.add("crash inbound")
    connection = await hub.store.connections.create(
        tenant_id=tenant_id,
        vendor="stripe",
        name="pay",
        direction="inbound",
        enabled=True,
        config={},
        credentials={"webhook_secret": SECRET},
        event_types=[],
        field_mappings=[],
        actor="test",
    )
    first = cluster.start_worker(PYTHONPATH=str(site), STALL_MARKER=str(marker))
    with StripeSandbox() as stripe:
        stripe_event = stripe.emit(
            "payment_intent.succeeded", payment_intent(amount=5000, metadata={"client_id": "cl_k"})
        )
    stored = StoredWebhook(
        vendor="stripe",
        connection_id=connection.id,
        tenant_id=tenant_id,
        event_id=stripe_event["id"],
        event_type=stripe_event["type"],
        received_at=utcnow(),
        headers={},
        body=msgspec.json.encode(stripe_event),
    )
    await hub.bus.publish(
        hub.bus.subjects.inbound("stripe", connection.id),
        msgspec.json.encode(stored),
        msg_id=f"stripe:{connection.id}:{stripe_event['id']}",
    )
    await eventually(marker.exists, timeout=90)  # published and recorded, not yet acked
    first.send_signal(signal.SIGKILL)
    first.wait()
    # Asked before the second worker starts: once it runs, it may take and ack the webhook
    # before the question is asked.
    info = await hub.bus.js.consumer_info(hub.bus.subjects.stream("inbound"), "inbound-worker")
    assert info.num_ack_pending + info.num_pending >= 1  # the webhook is still owed
    cluster.start_worker(PYTHONPATH=str(site), STALL_MARKER=str(marker))

    async def acked() -> bool:
        current = await hub.bus.js.consumer_info(
            hub.bus.subjects.stream("inbound"), "inbound-worker"
        )
        return current.num_ack_pending == 0 and current.num_pending == 0

    await eventually(acked, timeout=120)
    triggers = await hub.store.triggers.list(tenant_id)
    assert len(triggers) == 1 and triggers[0].client_id == "cl_k"
    stream = await hub.bus.js.stream_info(hub.bus.subjects.stream("triggers"))
    assert stream.state.messages == 1
