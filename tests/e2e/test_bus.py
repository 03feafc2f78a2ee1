"""JetStream provisioning and publishing on a real nats-server."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
from journeyhub.bus.embedded import EmbeddedNats
from journeyhub.bus.jetstream import CONSUMERS, STREAMS, Bus, BusUnavailable
from journeyhub.settings import load_settings
from nats.js.api import ConsumerConfig


async def test_provisioning_is_idempotent_across_restarts(tmp_path: Path) -> None:
    store_dir = tmp_path / "js"
    settings = load_settings({}, data_dir=tmp_path, dedupe_window_seconds=120)
    with EmbeddedNats(store_dir) as nats:
        bus = await Bus(settings, nats.url).connect()
        await bus.provision()
        await bus.provision()  # again: no error, nothing duplicated
        names = sorted([s.config.name for s in await bus.js.streams_info()])
        assert names == sorted(bus.subjects.stream(s.kind) for s in STREAMS)
        ack = await bus.publish("jh.events.ten_x", b"{}", msg_id="evt-1")
        assert ack.seq == 1 and not ack.duplicate
        # an operator changed a durable by hand: provisioning puts our config back
        await bus.js.add_consumer(
            "JH_PUSH",
            ConsumerConfig(
                durable_name="push-worker",
                ack_wait=5,
                max_deliver=-1,
                max_ack_pending=10,
                filter_subject="jh.push.>",
            ),
        )
        await bus.close()
    # the server restarts on the same store: streams and messages are still there
    changed = msgspec.structs.replace(settings, dedupe_window_seconds=300)
    with EmbeddedNats(store_dir) as nats:
        bus = await Bus(changed, nats.url).connect()
        await bus.provision()
        info = await bus.js.stream_info("JH_EVENTS")
        assert info.state.messages == 1
        assert info.config.duplicate_window == 300
        for spec in CONSUMERS:
            consumer = await bus.js.consumer_info(
                bus.subjects.stream(spec.stream_kind), spec.durable
            )
            assert consumer.config.ack_wait == changed.ack_wait_seconds
            assert consumer.config.max_ack_pending == spec.max_ack_pending
        await bus.close()


async def test_publish_dedupes_on_the_message_id(tmp_path: Path) -> None:
    settings = load_settings({}, data_dir=tmp_path)
    with EmbeddedNats(tmp_path / "js") as nats:
        bus = await Bus(settings, nats.url).connect()
        await bus.provision()
        first = await bus.publish("jh.inbound.stripe.con_1", b"a", msg_id="stripe:con_1:evt_1")
        again = await bus.publish("jh.inbound.stripe.con_1", b"a", msg_id="stripe:con_1:evt_1")
        assert not first.duplicate and again.duplicate and again.seq == first.seq
        await bus.close()


async def test_an_unreachable_bus_is_reported(tmp_path: Path) -> None:
    from journeyhub.bus.embedded import free_port

    settings = load_settings({}, data_dir=tmp_path)
    with pytest.raises(BusUnavailable, match="cannot reach NATS"):
        await Bus(settings, f"nats://127.0.0.1:{free_port()}").connect(connect_timeout=1)
