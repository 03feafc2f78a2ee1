"""``GET /metrics``: the Prometheus text exposition, open to the scraper (no key).

In multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``) any process answers for all of them; the
backlog and dead-letter gauges are read from the bus and the store at scrape time.
"""

from __future__ import annotations

from litestar import Controller, Response, get
from litestar.di import NamedDependency

from journeyhub import metrics
from journeyhub.hub import Hub


class MetricsController(Controller):
    path = "/"
    tags = ["health"]

    @get(
        "/metrics", operation_id="metrics", exclude_from_auth=True, media_type=metrics.CONTENT_TYPE
    )
    async def scrape(self, hub: NamedDependency[Hub]) -> Response[bytes]:
        """Prometheus metrics in the text format."""
        live = await metrics.collect_live(hub)
        return Response(metrics.render(live), media_type=metrics.CONTENT_TYPE)
