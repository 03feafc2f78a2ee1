"""``GET /metrics``: the Prometheus text exposition, open to the scraper (no key).

In multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``) any process answers for all of them; the
backlog and dead-letter gauges are read from the bus and the store at scrape time.
"""

from __future__ import annotations

from litestar import Controller, Response, get
from litestar.di import NamedDependency
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from journeyhub import metrics
from journeyhub.bus.jetstream import CONSUMERS
from journeyhub.hub import Hub
from journeyhub.logs import get_logger
from journeyhub.workers import incidents

log = get_logger(__name__)


class MetricsController(Controller):
    path = "/"
    tags = ["health"]

    @get(
        "/metrics", operation_id="metrics", exclude_from_auth=True, media_type=metrics.CONTENT_TYPE
    )
    async def scrape(self, hub: NamedDependency[Hub]) -> Response[bytes]:
        """Prometheus metrics in the text format."""
        live = await collect_live(hub)
        return Response(metrics.render(live), media_type=metrics.CONTENT_TYPE)


async def collect_live(hub: Hub) -> list[Metric]:
    """Metric families read from the bus and the store now (the same in every process)."""
    up = GaugeMetricFamily(
        "journeyhub_scrape_source_up",
        "1 when the source of the scrape-time metrics answered (bus, store)",
        labels=["source"],
    )
    lag = GaugeMetricFamily(
        "journeyhub_consumer_lag_messages",
        "Messages a durable JetStream consumer has not finished: not yet delivered "
        "(num_pending) plus delivered and not acknowledged (num_ack_pending)",
        labels=["stream", "consumer"],
    )
    waiting = GaugeMetricFamily(
        "journeyhub_consumer_pending_messages",
        "Messages not yet delivered to a durable consumer (num_pending)",
        labels=["stream", "consumer"],
    )
    unacked = GaugeMetricFamily(
        "journeyhub_consumer_ack_pending_messages",
        "Messages delivered to a durable consumer and not acknowledged yet, including those "
        "waiting for a redelivery (num_ack_pending)",
        labels=["stream", "consumer"],
    )
    delivered = GaugeMetricFamily(
        "journeyhub_consumer_delivered_sequence",
        "The last stream sequence a durable consumer delivered: it stops moving while the "
        "consumer's backlog does",
        labels=["stream", "consumer"],
    )
    families: list[Metric] = [up]
    try:
        for spec in CONSUMERS:
            stream = hub.bus.subjects.stream(spec.stream_kind)
            info = await hub.bus.js.consumer_info(stream, spec.durable, timeout=2.0)
            pending, ack_pending = info.num_pending or 0, info.num_ack_pending or 0
            lag.add_metric([stream, spec.durable], pending + ack_pending)
            waiting.add_metric([stream, spec.durable], pending)
            unacked.add_metric([stream, spec.durable], ack_pending)
            delivered.add_metric([stream, spec.durable], info.delivered.stream_seq or 0)
        families += [lag, waiting, unacked, delivered]
        up.add_metric(["bus"], 1)
    except Exception as exc:
        log.warning("metrics_bus_unavailable", error=repr(exc))
        up.add_metric(["bus"], 0)

    depth = GaugeMetricFamily(
        "journeyhub_dead_letters_pending",
        "Dead letters not replayed yet, by vendor and stage",
        labels=["vendor", "stage"],
    )
    try:
        for vendor, stage, count in await hub.store.deliveries.dead_depth():
            depth.add_metric([vendor, stage], count)
        families.append(depth)
        families += await incidents.metric_families(hub)
        up.add_metric(["store"], 1)
    except Exception as exc:
        log.warning("metrics_store_unavailable", error=repr(exc))
        up.add_metric(["store"], 0)
    return families
