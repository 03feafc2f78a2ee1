"""``GET /metrics``: Prometheus text, counters that agree with what the tests did (and with the
connection health), scrape-time consumer lag and dead-letter depth, and multiprocess mode."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec
import pytest
from journeyhub import metrics
from journeyhub.gateway.metrics_api import collect_live
from journeyhub.hub import Hub
from journeyhub.resilience.breaker import Breakers
from journeyhub.testing.fixtures import Gateway, TenantKeys, eventually
from prometheus_client.parser import text_string_to_metric_families

from ..conftest import event
from .test_health import health_of, run_scenario, settled

if TYPE_CHECKING:
    from journeyhub_tave.sandbox import TaveSandbox

pytestmark = pytest.mark.usefixtures("workers")


def parse(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition, by name and labels."""
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def scrape(gateway: Gateway) -> dict:
    answer = await gateway.client.get("/metrics")
    assert answer.status_code == 200, answer.text
    return parse(answer.text)


async def quiet(gateway: Gateway, vendor: str = "tave", seconds: float = 1.0) -> dict:
    """Wait until no push to ``vendor`` has happened for ``seconds`` (earlier tests' retries)."""
    previous = await scrape(gateway)
    while True:
        await asyncio.sleep(seconds)
        current = await scrape(gateway)
        pushes = [
            k for k in current if k[0] == "journeyhub_pushes_total" and (("vendor", vendor) in k[1])
        ]
        if all(current[k] == previous.get(k, 0.0) for k in pushes):
            return current
        previous = current


def delta(before: dict, after: dict, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def pushes_between(before: dict, after: dict, vendor: str = "tave") -> dict[str, float]:
    return {
        outcome: delta(before, after, "journeyhub_pushes_total", vendor=vendor, outcome=outcome)
        for outcome in ("delivered", "skipped", "retry", "rate_limited", "dead")
    }


async def counted(gateway: Gateway, before: dict, expected: dict[str, int]) -> dict:
    """The scrape once the push counters moved by ``expected`` since ``before``."""
    last: dict[str, float] = {}

    async def check() -> dict | None:
        nonlocal last
        after = await scrape(gateway)
        last = pushes_between(before, after)
        return after if last == expected else None

    try:
        return await eventually(check, timeout=10)
    except AssertionError:
        raise AssertionError(f"push counters moved by {last}, not {expected}") from None


async def test_metrics_are_prometheus_text_without_a_key(gateway: Gateway) -> None:
    answer = await gateway.client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    families = {f.name: f for f in text_string_to_metric_families(answer.text)}
    for name in ("journeyhub_pushes", "journeyhub_events_received", "journeyhub_dead_letters"):
        assert families[name].type == "counter"
    assert families["journeyhub_vendor_call_seconds"].type == "histogram"
    assert families["journeyhub_consumer_lag_messages"].type == "gauge"
    samples = parse(answer.text)
    assert value(samples, "journeyhub_scrape_source_up", source="bus") == 1
    assert value(samples, "journeyhub_scrape_source_up", source="store") == 1
    consumers = {
        dict(k[1])["consumer"] for k in samples if k[0] == "journeyhub_consumer_lag_messages"
    }
    assert consumers == {"inbound-worker", "router", "push-worker", "trigger-router"}
    schema = (await gateway.client.get("/schema/openapi.json")).json()
    assert "/metrics" in schema["paths"]


async def test_metrics_and_health_agree_with_n_events_and_k_faults(
    gateway: Gateway, tenant: TenantKeys, hub: Hub, tave_sandbox: TaveSandbox
) -> None:
    tave_sandbox.reset()
    before = await quiet(gateway)
    connection = await run_scenario(gateway, tenant, hub, tave_sandbox)
    expected = {"delivered": 5, "skipped": 0, "retry": 2, "rate_limited": 1, "dead": 1}
    after = await counted(gateway, before, expected)  # counted just after the rows are written
    health = await health_of(gateway, tenant, connection["id"])

    pushed = pushes_between(before, after)
    assert pushed == expected
    day = health["last_24h"]
    assert sum(pushed.values()) == day["attempts"] == 9
    assert pushed["delivered"] + pushed["skipped"] == day["succeeded"]
    assert pushed["retry"] == day["by_status"]["failed"]
    assert pushed["rate_limited"] == day["by_status"]["rate_limited"]
    assert pushed["dead"] == day["by_status"]["dead"]
    calls = delta(before, after, "journeyhub_vendor_call_seconds_count", vendor="tave")
    assert calls == health["latency"]["samples"] == 5
    assert delta(before, after, "journeyhub_dead_letters_total", vendor="tave", stage="push") == 1
    depth = delta(before, after, "journeyhub_dead_letters_pending", vendor="tave", stage="push")
    assert depth == health["dead_letters"] == 1
    assert delta(before, after, "journeyhub_events_received_total", outcome="accepted") == 6
    assert value(after, "journeyhub_breaker_open", connection_id=connection["id"]) == 0

    dead = await hub.store.deliveries.list_dead(tenant.id)
    await gateway.client.post(f"/v1/dlq/{dead[0].id}/replay", headers=tenant.headers())
    await settled(hub, tenant, connection["id"], delivered=6, replayed=1)
    replayed = await counted(gateway, after, {**dict.fromkeys(expected, 0), "delivered": 1})
    assert (
        delta(after, replayed, "journeyhub_dead_letters_pending", vendor="tave", stage="push") == -1
    )
    assert (await health_of(gateway, tenant, connection["id"]))["dead_letters"] == 0


async def test_the_breaker_gauge_follows_the_shared_breaker(gateway: Gateway, hub: Hub) -> None:
    breakers = Breakers(hub.store, holder="metrics-test", threshold=2, cooldown=60, cache_ttl=0)
    await breakers.failure("con_metrics_gauge")
    assert (
        value(await scrape(gateway), "journeyhub_breaker_open", connection_id="con_metrics_gauge")
        == 0
    )
    await breakers.failure("con_metrics_gauge")
    assert (
        value(await scrape(gateway), "journeyhub_breaker_open", connection_id="con_metrics_gauge")
        == 1
    )
    await breakers.success("con_metrics_gauge")
    assert (
        value(await scrape(gateway), "journeyhub_breaker_open", connection_id="con_metrics_gauge")
        == 0
    )


async def test_consumer_lag_is_read_from_jetstream_at_scrape_time(hub: Hub) -> None:
    # A second hub on its own subject prefix: its streams have no workers, so the lag is ours.
    settings = msgspec.structs.replace(hub.settings, subject_prefix="jhlag")
    other = await Hub.start(settings, run_migrations=False, registry=hub.registry)
    try:
        for i in range(3):
            await other.bus.publish(other.bus.subjects.events("ten_lag"), b"{}", msg_id=f"lag-{i}")
        lag = await live_samples(other)
        labels = {"stream": "JHLAG_EVENTS", "consumer": "router"}
        assert value(lag, "journeyhub_consumer_lag_messages", **labels) == 3
        assert value(lag, "journeyhub_consumer_pending_messages", **labels) == 3
        assert value(lag, "journeyhub_consumer_ack_pending_messages", **labels) == 0
        assert (
            value(
                lag, "journeyhub_consumer_lag_messages", stream="JHLAG_PUSH", consumer="push-worker"
            )
            == 0
        )

        subscription = await other.bus.pull("router", "events", batch=1)
        taken = await subscription.take(1, wait=5)
        lag = await live_samples(other)
        assert value(lag, "journeyhub_consumer_pending_messages", **labels) == 2
        assert value(lag, "journeyhub_consumer_ack_pending_messages", **labels) == 1
        assert value(lag, "journeyhub_consumer_lag_messages", **labels) == 3
        await taken[0].ack_sync()
        lag = await live_samples(other)
        assert value(lag, "journeyhub_consumer_lag_messages", **labels) == 2
        await subscription.close()
    finally:
        for kind in ("inbound", "events", "push", "triggers", "dlq"):
            await other.bus.js.delete_stream(other.bus.subjects.stream(kind))
        await other.close()


async def live_samples(hub: Hub) -> dict:
    return parse(metrics.render(await collect_live(hub)).decode())


async def test_a_bus_that_does_not_answer_is_reported_not_fatal(hub: Hub) -> None:
    settings = msgspec.structs.replace(hub.settings, subject_prefix="jhdown")
    other = await Hub.start(settings, run_migrations=False, registry=hub.registry, provision=False)
    try:
        # no streams under this prefix: the bus part fails
        text = metrics.render(await collect_live(other)).decode()
        samples = parse(text)
        assert value(samples, "journeyhub_scrape_source_up", source="bus") == 0
        assert value(samples, "journeyhub_scrape_source_up", source="store") == 1
        assert not [k for k in samples if k[0] == "journeyhub_consumer_lag_messages"]
        # the process's own counters are still there (with samples once something was pushed)
        assert "journeyhub_pushes" in {f.name for f in text_string_to_metric_families(text)}
    finally:
        await other.close()


# --- several processes --------------------------------------------------------------------------


def run_python(code: str, multiproc_dir: Path | None) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir")
    }
    if multiproc_dir is not None:
        env["PROMETHEUS_MULTIPROC_DIR"] = str(multiproc_dir)
    env["JOURNEYHUB_LOG_FORMAT"] = "json"
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done


def test_multiprocess_mode_adds_up_every_process(tmp_path: Path) -> None:
    directory = tmp_path / "prom"  # created by journeyhub.metrics when missing
    worker = """
        import sys
        from journeyhub import metrics
        n = int(sys.argv[1]) if len(sys.argv) > 1 else {n}
        metrics.pushes.labels("tave", "delivered").inc({n})
        metrics.pushes.labels("tave", "retry").inc(1)
        metrics.vendor_latency.labels("tave").observe(0.02 * {n})
        metrics.breaker_state.labels("con_mp").set({open})
    """
    for n, is_open in ((2, 1), (3, 0), (5, 1)):
        run_python(worker.format(n=n, open=is_open), directory)
    assert len(list(directory.glob("counter_*.db"))) == 3

    scraper = run_python(
        """
        import sys
        from journeyhub import metrics
        sys.stdout.write(metrics.render().decode())
        """,
        directory,
    )
    samples = parse(scraper.stdout)
    assert value(samples, "journeyhub_pushes_total", vendor="tave", outcome="delivered") == 10
    assert value(samples, "journeyhub_pushes_total", vendor="tave", outcome="retry") == 3
    assert value(samples, "journeyhub_vendor_call_seconds_count", vendor="tave") == 3
    assert value(samples, "journeyhub_vendor_call_seconds_sum", vendor="tave") == pytest.approx(0.2)
    # The breaker gauge keeps the most recent write of any process, not a sum.
    assert value(samples, "journeyhub_breaker_open", connection_id="con_mp") == 1
    assert not [k for k in samples if "pid" in dict(k[1])]

    # Without the variable, a process reports only itself.
    alone = parse(run_python(scraper.args[2], None).stdout)
    assert value(alone, "journeyhub_pushes_total", vendor="tave", outcome="delivered") == 0


def test_the_variable_set_after_prometheus_client_is_imported_is_reported(tmp_path: Path) -> None:
    late = run_python(
        f"""
        import os
        import prometheus_client
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = {str(tmp_path)!r}
        from journeyhub import metrics
        """,
        None,
    )
    assert "prometheus_multiproc_dir_set_too_late" in late.stdout + late.stderr


@pytest.mark.usefixtures("workers")
async def test_events_sent_are_counted(gateway: Gateway, tenant: TenantKeys) -> None:
    before = await scrape(gateway)
    body = [event(f"cnt-{tenant.id}-{i}", client_id=f"cl_cnt{i}") for i in range(3)]
    headers = tenant.headers("ingest")
    assert (await gateway.client.post("/v1/events", json=body, headers=headers)).status_code == 202
    assert (
        await gateway.client.post("/v1/events", json=body[:1], headers=headers)
    ).status_code == 202
    after = await eventually(lambda: scrape(gateway))
    assert delta(before, after, "journeyhub_events_received_total", outcome="accepted") == 3
    assert delta(before, after, "journeyhub_events_received_total", outcome="duplicate") == 1
