"""The retention purge (``workers/retention.py``) on a fresh database of the test database's kind
(SQLite by default, PostgreSQL when ``JOURNEYHUB_TEST_DATABASE_URL`` names one): it deletes only
what the age limits allow, batch by batch, and runs once per interval across workers."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
import pytest_asyncio
from journeyhub.model import utcnow
from journeyhub.secretbox import load_secret_box
from journeyhub.settings import Settings, load_settings
from journeyhub.store.db import migrate, sync_url
from journeyhub.store.store import Store
from journeyhub.store.tables import (
    AuditEntry,
    ChartSample,
    ClientRow,
    ClientTerm,
    DeadLetter,
    Delivery,
    Incident,
    KeptEvent,
    Suppression,
    TaskRow,
    TriggerRow,
    table_of,
)
from journeyhub.testing.fixtures import database_url_for_tests, eventually
from journeyhub.workers.retention import Purger
from prometheus_client import REGISTRY
from sqlalchemy import Table, create_engine, func, insert, select, text

HOUR = timedelta(hours=1)


@pytest.fixture
def scratch_settings(tmp_path: Path) -> Iterator[Settings]:
    """A fresh, migrated database of the same kind as the test database."""
    url = database_url_for_tests()
    if not url or not url.startswith("postgresql"):
        settings = load_settings({}, data_dir=tmp_path)
        migrate(settings)
        yield settings
        return
    name = f"jh_retention_{uuid.uuid4().hex[:8]}"
    admin = create_engine(sync_url(Settings(database_url=url)), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    settings = load_settings({}, data_dir=tmp_path, database_url=url.rsplit("/", 1)[0] + "/" + name)
    migrate(settings)
    yield settings
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest_asyncio.fixture
async def store(scratch_settings: Settings) -> AsyncIterator[Store]:
    opened = Store(scratch_settings, load_secret_box(scratch_settings))
    yield opened
    await opened.close()


async def put(store: Store, model: Any, rows: list[dict[str, Any]]) -> None:
    async with store.transaction() as conn:
        await conn.execute(insert(table_of(model)), rows)


async def column(store: Store, model: Any, name: str) -> set[Any]:
    table: Table = table_of(model)
    async with store.transaction() as conn:
        return set((await conn.execute(select(table.c[name]))).scalars())


def delivery(source_id: str, created_at: datetime) -> dict[str, Any]:
    return {
        "task_id": f"dlv_{source_id}",
        "tenant_id": "ten_1",
        "connection_id": "con_1",
        "vendor": "webhook",
        "source_id": source_id,
        "attempt": 1,
        "status": "delivered",
        "created_at": created_at,
    }


def trigger(trigger_id: str, created_at: datetime) -> dict[str, Any]:
    return {
        "id": trigger_id,
        "tenant_id": "ten_1",
        "connection_id": "con_1",
        "vendor": "webhook",
        "type": "client_created",
        "source_event_id": trigger_id,
        "occurred_at": created_at,
        "data": {},
        "created_at": created_at,
    }


def audit(action: str, created_at: datetime) -> dict[str, Any]:
    return {"tenant_id": "ten_1", "actor": "test", "action": action, "created_at": created_at}


def dead_letter(dead_id: str, created_at: datetime, replayed_at: datetime | None) -> dict[str, Any]:
    return {
        "id": dead_id,
        "tenant_id": "ten_1",
        "connection_id": "con_1",
        "vendor": "webhook",
        "stage": "push",
        "subject": "jh.push.con_1",
        "msg_id": dead_id,
        "payload": b"{}",
        "error": "HTTP 500",
        "attempts": 8,
        "created_at": created_at,
        "replayed_at": replayed_at,
        "replay_count": 0 if replayed_at is None else 1,
    }


def task(task_id: str, state: str, created_at: datetime, finished_at: datetime | None) -> dict:
    return {
        "task_id": task_id,
        "connection_id": "con_1",
        "order_key": "cl_1",
        "sequence": 1,
        "state": state,
        "attempts": 1,
        "failures": 0,
        "created_at": created_at,
        "finished_at": finished_at,
    }


def kept_event(event_id: str, received_at: datetime) -> dict[str, Any]:
    return {
        "tenant_id": "ten_1",
        "event_id": event_id,
        "client_id": "cl_1",
        "type": "journey_started",
        "sequence": 1,
        "payload": b"{}",
        "received_at": received_at,
    }


def incident(id_: str, resolved_at: datetime | None) -> dict[str, Any]:
    started = utcnow() - timedelta(days=1000)
    return {
        "id": id_,
        "tenant_id": "ten_1",
        "connection_id": "con_1",
        "kind": "dead_letters",
        "status": "open" if resolved_at is None else "resolved",
        "open_key": f"dead_letters:con_1:{id_}" if resolved_at is None else None,
        "summary": "",
        "details": {},
        "measure": 1,
        "revision": 1,
        "notified_revision": 1,
        "started_at": started,
        "updated_at": started,
        "resolved_at": resolved_at,
    }


def purged(kind: str) -> float:
    return REGISTRY.get_sample_value("journeyhub_retention_purged_total", {"kind": kind}) or 0.0


async def test_the_purge_keeps_only_what_the_limits_allow(store: Store) -> None:
    now = utcnow()
    days = {"deliveries": 30, "triggers": 30, "audit": 365, "dead": 30, "tasks": 7, "events": 30}
    days["chart_samples"] = 2

    def inside(kind: str) -> datetime:  # just inside the limit: stays
        return now - timedelta(days=days[kind]) + HOUR

    def outside(kind: str) -> datetime:  # just past it: goes
        return now - timedelta(days=days[kind]) - HOUR

    ancient = now - timedelta(days=1000)
    await put(
        store,
        Delivery,
        [delivery("keep", inside("deliveries"))]
        + [delivery(f"old{i}", outside("deliveries") - i * HOUR) for i in range(7)],
    )
    await put(store, TriggerRow, [trigger("trg_keep", inside("triggers"))])
    await put(store, TriggerRow, [trigger("trg_old", outside("triggers"))])
    await put(store, AuditEntry, [audit("keep", inside("audit")), audit("old", outside("audit"))])
    await put(
        store,
        DeadLetter,
        [
            dead_letter("dlq_replayed_old", ancient, outside("dead")),
            dead_letter("dlq_replayed_lately", ancient, inside("dead")),
            dead_letter("dlq_unreplayed", ancient, None),  # still owns its task: stays
        ],
    )
    await put(
        store,
        TaskRow,
        [
            task("done_old", "done", ancient, outside("tasks")),
            task("dropped_old", "dropped", ancient, outside("tasks")),
            task("done_lately", "done", ancient, inside("tasks")),
            task("dead_old", "dead", ancient, ancient),  # its dead letter owns it: stays
            task("pending_old", "pending", ancient, None),  # in its client's order: stays
        ],
    )
    await put(store, KeptEvent, [kept_event("ev_keep", inside("events"))])
    await put(store, KeptEvent, [kept_event("ev_old", outside("events"))])
    samples = [
        {"taken_at": inside("chart_samples"), "tenant_id": "*", "series": "keep", "value": 1},
        {"taken_at": outside("chart_samples"), "tenant_id": "*", "series": "old", "value": 1},
    ]
    await put(store, ChartSample, samples)
    # The client directory: a client last seen past the events' limit goes, with its terms.
    seen = {"cl_keep": inside("events"), "cl_old": outside("events")}
    directory = [
        {"tenant_id": "ten_1", "client_id": c, "sequence": 1, "first_seen_at": ancient}
        | {"last_seen_at": at}
        for c, at in seen.items()
    ]
    await put(store, ClientRow, directory)
    await put(store, ClientTerm, [{"tenant_id": "ten_1", "term": c, "client_id": c} for c in seen])
    suppression = {"tenant_id": "ten_1", "email": "a@example.com", "reason": "bounced"}
    await put(store, Suppression, [{**suppression, "created_at": ancient}])  # live state
    await put(
        store,
        Incident,
        [
            incident("inc_resolved_old", outside("audit")),
            incident("inc_resolved_lately", inside("audit")),
            incident("inc_open", None),  # an open incident is live state: stays
        ],
    )

    before = purged("deliveries")
    # Audit kept for ever ("off"), and a small batch: the old deliveries take three.
    settings = msgspec.structs.replace(
        store.settings, retention_audit_days=0, retention_batch_size=3
    )
    lease = f"retention:{uuid.uuid4().hex[:6]}"
    purger = Purger(store, settings, lease=lease, pause=0)
    assert await store.leases.claim(lease, purger.holder, 60)
    removed = await purger.purge()

    assert removed == {
        "deliveries": 7,
        "triggers": 1,
        "dead_letters": 1,
        "tasks": 2,
        "events": 1,
        "clients": 1,
        "chart_samples": 1,
    }
    assert await column(store, Delivery, "source_id") == {"keep"}
    assert await column(store, TriggerRow, "id") == {"trg_keep"}
    assert await column(store, AuditEntry, "action") == {"keep", "old"}
    assert await column(store, DeadLetter, "id") == {"dlq_replayed_lately", "dlq_unreplayed"}
    assert await column(store, TaskRow, "task_id") == {"done_lately", "dead_old", "pending_old"}
    assert await column(store, KeptEvent, "event_id") == {"ev_keep"}
    assert await column(store, ChartSample, "series") == {"keep"}
    assert await column(store, ClientRow, "client_id") == {"cl_keep"}
    assert await column(store, ClientTerm, "term") == {"cl_keep"}  # cascaded
    assert await column(store, Suppression, "email") == {"a@example.com"}
    assert purged("deliveries") - before == 7

    # The audit's own limit (365 days) once it is on.
    audit_on = Purger(store, store.settings, lease=lease, pause=0)
    audit_on.holder = purger.holder
    second = await audit_on.purge()
    assert {kind: n for kind, n in second.items() if n} == {"audit": 1, "incidents": 1}
    assert await column(store, AuditEntry, "action") == {"keep"}
    assert await column(store, Incident, "id") == {"inc_resolved_lately", "inc_open"}


async def count_deliveries(store: Store) -> int:
    async with store.transaction() as conn:
        return int((await conn.execute(select(func.count()).select_from(Delivery))).scalar_one())


async def test_two_workers_purge_once_per_interval(scratch_settings: Settings) -> None:
    """Two workers (each its own store engine) race for every purge: one purges per interval,
    and the next purge waits for the interval's lease to expire."""
    first = Store(scratch_settings, load_secret_box(scratch_settings))
    second = Store(scratch_settings, load_secret_box(scratch_settings))
    old = utcnow() - timedelta(days=31)
    await put(first, Delivery, [delivery(f"a{i}", old) for i in range(5)])
    lease = f"retention:{uuid.uuid4().hex[:6]}"
    purgers = [
        Purger(s, scratch_settings, lease=lease, poll=0.05, pause=0) for s in (first, second)
    ]
    assert scratch_settings.retention_interval_seconds == 3600
    stop = asyncio.Event()
    running = [asyncio.create_task(p.run(stop)) for p in purgers]
    try:
        await eventually(lambda: sum(p.runs for p in purgers) == 1)
        assert await count_deliveries(first) == 0

        # Both keep trying the lease every 50 ms; within the interval neither purges again.
        await put(first, Delivery, [delivery(f"b{i}", old) for i in range(5)])
        await asyncio.sleep(0.6)
        assert sum(p.runs for p in purgers) == 1
        assert await count_deliveries(first) == 5

        await first.leases.make_due(lease)  # the interval is over
        await eventually(lambda: sum(p.runs for p in purgers) == 2)
        assert await count_deliveries(first) == 0
        await asyncio.sleep(0.3)
        assert sum(p.runs for p in purgers) == 2
    finally:
        stop.set()
        await asyncio.gather(*running)
        await first.close()
        await second.close()


async def test_a_purger_that_lost_its_lease_deletes_nothing(store: Store) -> None:
    """A purge that outlasted its interval, the lease taken by another worker since: its next
    batch's transaction finds the lease gone and deletes nothing."""
    await put(store, Delivery, [delivery("old", utcnow() - timedelta(days=31))])
    lease = f"retention:{uuid.uuid4().hex[:6]}"
    late = Purger(store, store.settings, lease=lease, pause=0)
    assert await store.leases.claim(lease, "another worker", 60)
    removed = await late.purge()
    assert removed["deliveries"] == 0
    assert await count_deliveries(store) == 1


async def test_the_purge_leaves_the_event_loop_free(store: Store) -> None:
    """Each batch waits for the database off the event loop: a loop tick every 10 ms goes on
    while a purge deletes 100,000 rows in batches of 50,000 (each takes SQLite about 0.2 s)."""
    old = utcnow() - timedelta(days=31)
    await put(store, Delivery, [delivery(f"o{i}", old) for i in range(100_000)])
    lease = f"retention:{uuid.uuid4().hex[:6]}"
    settings = msgspec.structs.replace(store.settings, retention_batch_size=50_000)
    purger = Purger(store, settings, lease=lease)
    assert await store.leases.claim(lease, purger.holder, 60)
    gaps: list[float] = []

    async def tick() -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            await asyncio.sleep(0.01)
            gaps.append(loop.time() - last)
            last = loop.time()

    ticker = asyncio.create_task(tick())
    removed = await purger.purge()
    ticker.cancel()
    assert removed["deliveries"] == 100_000
    # On the event loop, each batch would stop it for 0.1 to 0.15 s here.
    assert len(gaps) >= 4 and max(gaps) < 0.08, max(gaps)
