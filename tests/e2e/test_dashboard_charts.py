"""The dashboard's charts, read in a real headless Chromium: known deliveries (successes,
retried failures and a dead letter at the Táve sandbox, through the real hub) show on the
connection's charts with the counts and answer times the store and ``GET /v1/deliveries``
have; the overview's backlog chart shows the samples the sampler wrote, one of them taken
while a delivery waited for its retry.

Screenshots go to a temporary directory (printed), or to ``$JOURNEYHUB_DASHBOARD_SCREENSHOTS``.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from journeyhub.bus.jetstream import CONSUMERS
from journeyhub.health import ERROR_STATUSES, SUCCESS_STATUSES
from journeyhub.hub import Hub
from journeyhub.model import utcnow
from journeyhub.store.activity import hour_of
from journeyhub.testing.fixtures import Gateway, TenantKeys, eventually
from journeyhub.testing.sandbox import Fault
from journeyhub.workers.sampler import Sampler, slot_left

from ..conftest import event
from .test_dashboard import browser, chromium, screenshots, send, sign_in, tave, tave_connection

if TYPE_CHECKING:
    from journeyhub_tave.sandbox import TaveSandbox

pytestmark = pytest.mark.usefixtures("workers")
__all__ = ["browser", "chromium", "screenshots", "tave"]  # fixtures shared with test_dashboard

SUCCEEDED, FAILED = 3, 4  # what the events below make the vendor answer


def nearest_rank(values: list[float], percent: int) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(percent * len(ordered) / 100)) - 1]


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def hour_key(moment: datetime) -> str:
    return iso(hour_of(moment))


async def read_groups(page: Any, selector: str) -> list[dict[str, str]]:
    """Every element's data attributes and its <title>."""
    return await page.eval_on_selector_all(
        selector,
        """els => els.map(el => Object.assign({title: el.querySelector('title').textContent},
                                           el.dataset))""",
    )


async def test_charts_show_the_counts_and_the_backlog_the_store_has(
    gateway: Gateway,
    tenant: TenantKeys,
    hub: Hub,
    tave: TaveSandbox,
    browser: Any,
    screenshots: Path,
) -> None:
    connection = await tave_connection(gateway, tenant, tave)
    connection_id = connection["id"]
    page = await browser.new_page()
    await sign_in(page, gateway.url, tenant.admin_key)

    # Before any delivery: the charts say so in words.
    await page.goto(f"{gateway.url}/connections/{connection_id}")
    empty = page.locator("figure[data-chart=deliveries][data-empty=yes]")
    assert "No deliveries in the last 24 h" in await empty.inner_text()
    assert await page.locator("figure[data-chart=latency][data-empty=yes]").count() == 1

    async def attempts() -> list[dict[str, Any]]:
        answer = await gateway.client.get(
            "/v1/deliveries",
            params={"connection_id": connection_id, "limit": 1000},
            headers=tenant.headers("read"),
        )
        assert answer.status_code == 200, answer.text
        return [row for row in answer.json() if row["status"] != "replayed"]

    async def settled(count: int) -> list[dict[str, Any]]:
        return await eventually(lambda: _at_least(attempts, count), timeout=30, interval=0.2)

    # Two delivered (one slow), one refused for good (a dead letter) …
    await send(gateway, tenant, event("ev-chart-1", client_id="cl_chart_1"))
    await settled(1)
    tave.faults.plan(Fault(delay=0.3))
    await send(gateway, tenant, event("ev-chart-2", client_id="cl_chart_2"))
    await settled(2)
    refusal = {"type": "validation", "title": "Validation Error", "detail": "No", "status": 422}
    tave.faults.plan(Fault(status=422, body=refusal))
    await send(gateway, tenant, event("ev-chart-3", client_id="cl_chart_3"))
    await settled(3)

    # … and one that fails three times before it is delivered: while it waits for its retry it
    # is pending, and a sample taken then counts it.
    tave.faults.plan(Fault(status=503), Fault(status=503), Fault(status=503))
    await send(gateway, tenant, event("ev-chart-4", client_id="cl_chart_4"))
    await eventually(lambda: hub.store.tasks.pending_count(connection_id), timeout=20)
    await settled(4)  # its first failure
    # A sampler of its own lease: the workers' sampler may hold this minute's.
    sampler = Sampler(hub, lease="chart-samples-test")
    assert await eventually(sampler.sample, timeout=5, interval=0.5)
    [*_, mine] = await hub.store.activity.backlog(tenant.id, utcnow().replace(year=2000))
    assert mine.pending >= 1 and mine.bus is not None

    rows = await settled(SUCCEEDED + FAILED)
    statuses = Counter(row["status"] for row in rows)
    assert sum(statuses[s] for s in SUCCESS_STATUSES) == SUCCEEDED, statuses
    assert sum(statuses[s] for s in ERROR_STATUSES) == FAILED, statuses
    assert statuses["dead"] == 1

    # What the API says, per hour: the charts must say the same.
    expected: dict[str, Counter[str]] = defaultdict(Counter)
    latencies: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        key = hour_key(datetime.fromisoformat(row["created_at"]))
        ok = row["status"] in SUCCESS_STATUSES
        expected[key]["delivered" if ok else "failed"] += 1
        if ok and row["latency_ms"] is not None:
            latencies[key].append(row["latency_ms"])
    # … and the store's own rows agree with the API.
    stored = await hub.store.deliveries.list(tenant.id, connection_id=connection_id, limit=1000)
    assert sorted(r.id for r in stored if r.status != "replayed") == sorted(r["id"] for r in rows)

    before = hour_key(utcnow())
    await page.goto(f"{gateway.url}/connections/{connection_id}")
    bars = await read_groups(page, "figure[data-chart=deliveries] g.bar")
    assert len(bars) == 24 and bars[-1]["start"] in {before, hour_key(utcnow())}
    shown = {
        b["start"]: Counter(delivered=int(b["delivered"]), failed=int(b["failed"])) for b in bars
    }
    for start, counts in shown.items():
        assert +counts == +expected.get(start, Counter()), start
    assert sum(c["delivered"] for c in shown.values()) == SUCCEEDED
    assert sum(c["failed"] for c in shown.values()) == FAILED
    busiest = max(bars, key=lambda b: int(b["delivered"]) + int(b["failed"]))
    said = f" UTC: {busiest['delivered']} delivered, {busiest['failed']} failed"
    assert busiest["title"].endswith(said)
    # A screen reader finds each hour by its title (the chart is a group of named images).
    assert await page.get_by_role("img", name=busiest["title"], exact=True).count() == 1
    deliveries = page.get_by_role("group", name="Deliveries per hour, last 24 h", exact=True)
    assert await deliveries.count() == 1

    points = await read_groups(page, "figure[data-chart=latency] g.bar")
    for point in points:
        values = latencies.get(point["start"])
        if not values:
            assert point["p50"] == "" and point["calls"] == ""
            continue
        assert int(point["calls"]) == len(values)
        assert float(point["p50"]) == pytest.approx(nearest_rank(values, 50), abs=0.1)
        assert float(point["p95"]) == pytest.approx(nearest_rank(values, 95), abs=0.1)
        assert float(point["slowest"]) == pytest.approx(max(values), abs=0.1)
        assert "median" in point["title"] and "p95" in point["title"]
    assert max(float(p["slowest"] or 0) for p in points) >= 300  # the slow answer
    axes = await page.locator("figure[data-chart=deliveries] [data-axis]").all_text_contents()
    assert axes == ["calls per hour", "hour (UTC)"]
    await page.locator("#activity").screenshot(path=screenshots / "charts-connection.png")
    await page.screenshot(path=screenshots / "charts-connection-page.png", full_page=True)

    # The overview's backlog: a point per sampling round in the store, the test's among them.
    await page.goto(f"{gateway.url}/")
    drawn = await read_groups(page, "figure[data-chart=backlog-pending] g.point")
    rounds = await hub.store.activity.backlog(tenant.id, utcnow().replace(year=2000))
    by_time = {iso(r.taken_at): r for r in rounds}
    assert drawn and {p["at"] for p in drawn} <= set(by_time)
    for point in drawn:
        assert int(point["pending"]) == by_time[point["at"]].pending
    ours = iso(mine.taken_at)
    [taken] = [p for p in drawn if p["at"] == ours]
    assert int(taken["pending"]) == mine.pending >= 1
    assert f"Waiting {mine.pending}" in taken["title"]
    bus = await read_groups(page, "figure[data-chart=backlog-bus] g.point")
    assert next(p for p in bus if p["at"] == ours)["bus"] == str(mine.bus)
    await page.locator("#backlog").screenshot(path=screenshots / "charts-backlog.png")
    await page.screenshot(path=screenshots / "charts-overview.png", full_page=True)


async def test_one_round_per_slot_however_many_workers_sample(hub: Hub) -> None:
    lease = f"chart-samples-{uuid.uuid4().hex[:6]}"
    samplers = [Sampler(hub, lease=lease) for _ in range(3)]
    if slot_left(samplers[0].interval, time.time()) < 3:  # not across the slot's end
        await asyncio.sleep(3)
    since = utcnow()
    written = await asyncio.gather(*(s.sample() for s in samplers))
    assert sorted(written, key=lambda n: n or 0)[:2] == [None, None]
    rows = [n for n in written if n is not None]
    assert len(rows) == 1 and rows[0] >= 1 + len(CONSUMERS)  # the hub's marker, each consumer
    assert len(await hub.store.activity.backlog("ten_nobody", since)) == 1
    assert [await s.sample() for s in samplers] == [None, None, None]  # the slot is taken


async def _at_least(read: Any, count: int) -> list[dict[str, Any]] | None:
    rows = await read()
    return rows if len(rows) >= count else None


def test_hour_key_is_the_charts_spelling() -> None:
    assert hour_key(datetime(2026, 12, 6, 23, 7, 5, tzinfo=UTC)) == "2026-12-06T23:00:00Z"
