"""A connection's health in one word and a reason (``assess``), and the order of the
dashboard's table: the connections that need someone first."""

from __future__ import annotations

from dataclasses import dataclass

from journeyhub.gateway.dashboard.formatting import utc_text
from journeyhub.health import ConnectionHealth

# Worst first: the connections that need someone come to the top of the table.
SEVERITY = {
    key: rank
    for rank, key in enumerate(
        ("breaker", "reauth", "failing", "degraded", "idle", "disabled", "healthy")
    )
}


@dataclass
class Assessment:
    key: str  # healthy | degraded | failing | reauth | breaker | disabled | idle
    label: str
    reason: str


def assess(health: ConnectionHealth) -> Assessment:
    """One word for a connection's state, and the reason in a few words."""
    hour, day = health.last_hour, health.last_24h
    breaker = health.breaker
    if health.endpoint_gone:
        return Assessment(
            "disabled", "Endpoint gone", "the endpoint answered 410 Gone: fix its URL, then enable"
        )
    if not health.enabled:
        return Assessment("disabled", "Disabled", "turned off: nothing is sent or synced")
    if health.needs_reauth:
        return Assessment(
            "reauth", "Needs re-auth", "the vendor refused the credentials: update them"
        )
    if breaker.state == "open":
        until = f" until {utc_text(breaker.reopens_at)}" if breaker.reopens_at else ""
        return Assessment(
            "breaker", "Breaker open", f"{breaker.failures} failures in a row; paused{until}"
        )
    latest_is_error = health.last_error_at is not None and (
        health.last_success_at is None or health.last_error_at > health.last_success_at
    )
    if hour.errors and (latest_is_error or (hour.success_rate or 0) < 0.5):
        return Assessment(
            "failing",
            "Failing",
            ("the latest call failed; " if latest_is_error else "")
            + f"{hour.errors} of {hour.attempts} calls failed in the last hour",
        )
    reasons = []
    if health.dead_letters:
        reasons.append(f"{health.dead_letters} dead letter{'s' if health.dead_letters > 1 else ''}")
    if hour.errors:
        failed = f"{hour.errors} failed call{'s' if hour.errors > 1 else ''} in 1 h"
        reasons.append(failed + ("" if latest_is_error else ", latest ok"))
    if breaker.paused_until:
        reasons.append("vendor asked to slow down")
    elif breaker.state == "half_open":
        reasons.append("breaker probing")
    if health.last_sync is not None and not health.last_sync.ok:
        reasons.append("last sync failed")
    if reasons:
        return Assessment("degraded", "Degraded", ", ".join(reasons))
    if health.last_success_at is None and not day.attempts:
        return Assessment("idle", "No traffic yet", "no call to the vendor yet")
    if day.attempts:
        return Assessment(
            "healthy", "Healthy", f"{day.succeeded} of {day.attempts} calls ok in 24 h"
        )
    return Assessment("healthy", "Healthy", "no calls in 24 h")
