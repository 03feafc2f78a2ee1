"""Prometheus metrics (prometheus-client). ``GET /metrics`` renders them with ``render``.

Two kinds:

- **process metrics** below (counters, histograms, the breaker gauge), updated where things
  happen. With several processes (N gateways and workers on one host), set
  ``PROMETHEUS_MULTIPROC_DIR`` to one empty directory shared by all of them *before they start*
  (prometheus-client reads it when it is first imported): each process then writes its values
  to files there, and a scrape of any process aggregates every process's files. Wipe the
  directory before starting the processes (not while they run); a process that exits marks its
  live gauges dead (``mark_process_dead``, registered with ``atexit`` here).
- **scrape-time metrics**, read from shared state when ``/metrics`` is scraped, so every process
  answers the same and nothing is double counted across processes: the backlog of each durable
  JetStream consumer and the depth of the dead letters (``gateway.metrics_api.collect_live``,
  passed to ``render``).
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Iterable
from typing import Any

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.metrics_core import Metric

from journeyhub.logs import get_logger

log = get_logger(__name__)

# The classic text format, which every Prometheus version reads (what ``render`` writes). The
# HTTP layer adds ``; charset=utf-8``.
CONTENT_TYPE = "text/plain; version=0.0.4"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> str | None:
    """The shared directory when multiprocess mode is on, else None."""
    return os.environ.get(MULTIPROC_ENV) or None


_MULTIPROC = multiprocess_dir()
if _MULTIPROC:
    os.makedirs(_MULTIPROC, exist_ok=True)
    if not getattr(values.ValueClass, "_multiprocess", False):
        # prometheus_client was imported before the variable was set: values stay in memory.
        log.warning("prometheus_multiproc_dir_set_too_late", directory=_MULTIPROC)

webhooks_received = Counter(
    "journeyhub_webhooks_received_total",
    "Inbound webhooks by vendor and outcome (accepted, duplicate, rejected, not_found, "
    "too_large, bus_unavailable)",
    ["vendor", "outcome"],
)
webhook_events_unknown = Counter(
    "journeyhub_webhook_events_unknown_total",
    "Stored webhooks whose event type the connector does not know (acknowledged, "
    "not dead-lettered)",
    ["vendor", "event_type"],
)
triggers_emitted = Counter(
    "journeyhub_triggers_emitted_total", "New triggers published", ["vendor", "type"]
)
events_received = Counter(
    "journeyhub_events_received_total", "Journey events accepted, by outcome", ["outcome"]
)
pushes = Counter(
    "journeyhub_pushes_total",
    "Push attempts by vendor and outcome (delivered, skipped, retry, rate_limited, dead)",
    ["vendor", "outcome"],
)
vendor_latency = Histogram(
    "journeyhub_vendor_call_seconds", "Vendor call latency", ["vendor"], buckets=LATENCY_BUCKETS
)
event_to_vendor_latency = Histogram(
    "journeyhub_event_to_vendor_seconds",
    "From a task being enqueued to its delivery at the vendor",
    ["vendor"],
    buckets=LATENCY_BUCKETS,
)
# The breaker's state is shared through the store; every process writes what it last saw, and
# across processes the most recent write wins.
breaker_state = Gauge(
    "journeyhub_breaker_open",
    "1 while a connection's circuit breaker is open",
    ["connection_id"],
    multiprocess_mode="mostrecent",
)
dead_letters = Counter(
    "journeyhub_dead_letters_total", "Messages moved to the dead letters", ["vendor", "stage"]
)
retention_purged = Counter(
    "journeyhub_retention_purged_total",
    "Rows the retention purge deleted, by kind (deliveries, triggers, audit, dead_letters, "
    "tasks, events)",
    ["kind"],
)
retention_runs = Counter(
    "journeyhub_retention_runs_total", "Retention purges this process ran (one per interval)"
)


# What one message costs, counted where the work is done (``bench/e2e`` divides them by the
# events it sent): store transactions and statements, bus traffic, vendor HTTP calls.
store_transactions = Counter(
    "journeyhub_store_transactions_total", "Store transactions begun by this process"
)
store_statements = Counter(
    "journeyhub_store_statements_total", "SQL statements this process sent to the store"
)
bus_calls = Counter(
    "journeyhub_bus_calls_total",
    "Messages this process sent to NATS, by kind: JetStream API requests (e.g. "
    "``CONSUMER.INFO``), ``publish`` (a JetStream publish awaiting its ack), ``fetch`` (a pull "
    "request), ``ack`` (acks, naks, in-progress and terms) and ``other``",
    ["kind"],
)
vendor_requests = Counter(
    "journeyhub_vendor_requests_total", "HTTP requests sent to vendors, by host", ["host"]
)


_children: dict[tuple[int, tuple[str, ...]], Any] = {}


def child(metric: Any, *labels: str) -> Any:
    """``metric.labels(*labels)``, looked up once: ``labels`` takes a lock and builds its key
    on every call, which the hot paths (a push, a webhook, a bus message) would pay each time."""
    key = (id(metric), labels)
    found = _children.get(key)
    if found is None:
        found = _children[key] = metric.labels(*labels)
    return found


def mark_process_dead(pid: int | None = None) -> None:
    """Drop a finished process's live gauges from the shared directory (multiprocess mode)."""
    directory = multiprocess_dir()
    if directory and os.path.isdir(directory):
        multiprocess.mark_process_dead(os.getpid() if pid is None else pid, directory)


if _MULTIPROC:
    atexit.register(mark_process_dead)


# --- scrape time -----------------------------------------------------------------------------


class _Families:
    """A collector that hands out metric families gathered before the scrape."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self.families


class _Delegate:
    """The process-wide registry, collected inside a per-scrape registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterable[Metric]:
        return self.registry.collect()


def render(extra: Iterable[Metric] = ()) -> bytes:
    """The Prometheus text exposition: every process's metrics in multiprocess mode (else this
    process's), followed by ``extra`` (the scrape-time families)."""
    registry = CollectorRegistry(auto_describe=False)
    if multiprocess_dir():
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_Delegate(REGISTRY))
    registry.register(_Families(extra))
    return generate_latest(registry)
