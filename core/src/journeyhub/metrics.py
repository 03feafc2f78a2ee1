"""Prometheus metrics (prometheus-client). ``GET /metrics`` renders them."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

webhooks_received = Counter(
    "journeyhub_webhooks_received_total",
    "Inbound webhooks by vendor and outcome (accepted, duplicate, rejected, not_found, "
    "too_large, bus_unavailable)",
    ["vendor", "outcome"],
)
webhook_events_unknown = Counter(
    "journeyhub_webhook_events_unknown_total",
    "Stored webhooks whose event type the connector does not know (acknowledged, not dead-lettered)",
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
breaker_state = Gauge(
    "journeyhub_breaker_open", "1 while a connection's circuit breaker is open", ["connection_id"]
)
dead_letters = Counter(
    "journeyhub_dead_letters_total", "Messages moved to the dead letters", ["vendor", "stage"]
)
