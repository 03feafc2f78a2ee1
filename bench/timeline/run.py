"""bench/timeline: one client's timeline and the client search, on a realistic history, on
PostgreSQL and on SQLite.

    uv run --frozen python bench/timeline/run.py                       # both, 50,000 clients
    uv run --frozen python bench/timeline/run.py --only sqlite --clients 5000
    uv run --frozen python bench/timeline/run.py --scratch-url postgresql+psycopg://…/test

The history (``--clients`` clients over ``--tenants`` tenants, each tenant with two outbound
connections and one inbound, over 90 days) is written through the store's own write paths where
the hub has one: kept journey events through ``JourneyEventRepo.keep`` (so the client directory
is filled as the router fills it), the rest as the push worker and the inbound worker write it.
Per client, on average: 6 journey events (a real event's JSON), 2 delivery attempts per event
and outbound connection pair (1 in 10 retried once; 1 in 100 dead, with its dead letter and the
task as payload), 2 triggers, 3 sync links. One client of the first tenant is a busy one
(``--busy`` journey events). At 50,000 clients: about 1.5 million rows. Printed: the rows per
table and the time the fill took.

Measured, in the same process, on the store (no HTTP: the API adds its own constant), each
``--samples`` times on random clients: the first page of a timeline (50 entries, the service
call the API makes: four bounded queries, the vendor records, the directory row), the page
after it (with the cursor), the busy client's first and 20th page; the search by a whole
email, by a word of a name (its first 3 letters: many matches), and by a client id. Printed as
p50/p95/p99 in ms. The plans of the timeline's and the search's queries (``EXPLAIN``) are
printed too, and the run fails when one reads a table whole or sorts a client's rows.

PostgreSQL: a database created on ``--server`` and dropped after (as ``bench/retention``
does), or ``--scratch-url``, an empty database this run may wipe (its ``public`` schema is
dropped and made again at the end). SQLite: a file in a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "chaos"))
from chaos_infra import postgres_reachable, scratch_database
from chaos_run import machine
from cryptography.fernet import Fernet
from journeyhub.model import stable_id
from journeyhub.secretbox import SecretBox
from journeyhub.services.timeline import client_timeline, find_clients
from journeyhub.settings import load_settings
from journeyhub.store.db import migrate
from journeyhub.store.store import Store
from journeyhub.store.tables import DeadLetter, Delivery, SyncLink, TriggerRow, table_of
from journeyhub.store.timeline import SOURCES, Position, _statement
from sqlalchemy import Connection, text

CHUNK = 5000
DAYS = 90
FIRST = ["ada", "grace", "imogen", "oliver", "amara", "theo", "priya", "lucas", "mei", "jonah"]
LAST = ["lovelace", "hopper", "okafor", "nakamura", "fitzgerald", "moreau", "silva", "kowalski"]
STEPS = ["journey_started", "step_completed", "step_completed", "client_updated"]


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    cuts = statistics.quantiles(ordered, n=100, method="inclusive")
    return {
        "n": len(ordered),
        "p50_ms": round(cuts[49] * 1000, 2),
        "p95_ms": round(cuts[94] * 1000, 2),
        "p99_ms": round(cuts[98] * 1000, 2),
    }


class History:
    """A deterministic history: who the clients are, and their rows, a chunk at a time."""

    def __init__(self, clients: int, tenants: int, busy: int, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.now = datetime.now(UTC)
        self.tenants = [f"ten_bench_{t}" for t in range(tenants)]
        self.clients = [
            (self.tenants[n % tenants], f"cl_{n:06d}", self._name(n), f"client{n}@example.com")
            for n in range(clients)
        ]
        self.busy = busy
        self.counts: dict[str, int] = {}

    def _name(self, n: int) -> str:
        return f"{FIRST[n % len(FIRST)].title()} {LAST[(n // 7) % len(LAST)].title()} {n}"

    def connections(self, tenant_id: str) -> tuple[str, str, str]:
        return (f"con_{tenant_id}_crm", f"con_{tenant_id}_mail", f"con_{tenant_id}_pay")

    def moment(self) -> datetime:
        return self.now - timedelta(seconds=self.rng.uniform(0, DAYS * 86400))

    def event(self, event_id: str, type_: str, client: tuple[str, str, str, str]) -> bytes:
        _, client_id, name, email = client
        body = {
            "id": event_id,
            "type": type_,
            "occurred_at": "2026-03-01T12:00:00Z",
            "journey_instance_id": f"ji_{client_id}",
            "journey_name": "Wedding onboarding",
            "client": {"id": client_id, "name": name, "email": email, "phone": "+44 20 7946 0000"},
            "wedding": {"date": "2026-09-12", "venue": {"name": "Kew Gardens"}, "guest_count": 120},
            **(
                {"step": {"name": "Send contract", "type": "email"}}
                if type_ == "step_completed"
                else {}
            ),
        }
        return json.dumps(body).encode()

    def rows_of(self, index: int) -> dict[str, list[dict[str, Any]]]:
        """Every row of one client."""
        client = self.clients[index]
        tenant_id, client_id, name, email = client
        crm, mail, pay = self.connections(tenant_id)
        rows: dict[str, list[dict[str, Any]]] = {
            "events": [],
            "deliveries": [],
            "dead_letters": [],
            "triggers": [],
            "links": [],
        }
        events = self.busy if index == 0 else self.rng.randint(3, 9)
        for e in range(events):
            at = self.moment()
            event_id = f"ev_{client_id}_{e}"
            type_ = STEPS[0] if e == 0 else self.rng.choice(STEPS)
            payload = self.event(event_id, type_, client)
            rows["events"].append(
                {
                    "tenant_id": tenant_id,
                    "event_id": event_id,
                    "client_id": client_id,
                    "type": type_,
                    "sequence": int(at.timestamp() * 1000) * 100 + index % 100,
                    "payload": payload,
                    "correlation_id": event_id,
                    "received_at": at,
                }
            )
            for connection, vendor in ((crm, "tave"), (mail, "resend")):
                task_id = stable_id("dlv", tenant_id, event_id, connection)
                roll = self.rng.random()
                attempts = 2 if roll < 0.1 else 1
                for attempt in range(1, attempts + 1):
                    last = attempt == attempts
                    status = "failed" if not last else ("dead" if roll < 0.01 else "delivered")
                    rows["deliveries"].append(
                        {
                            "task_id": task_id,
                            "tenant_id": tenant_id,
                            "connection_id": connection,
                            "vendor": vendor,
                            "source_id": event_id,
                            "attempt": attempt,
                            "status": status,
                            "vendor_status": 200 if status == "delivered" else 503,
                            "latency_ms": round(self.rng.uniform(20, 400), 1),
                            "external_ids": {"contact": f"v_{client_id}"}
                            if status == "delivered"
                            else None,
                            "error": None if status == "delivered" else "503 Service Unavailable",
                            "correlation_id": event_id,
                            "client_id": client_id,
                            "created_at": at + timedelta(seconds=attempt * 2),
                        }
                    )
                if roll < 0.01:
                    rows["dead_letters"].append(
                        {
                            "id": stable_id("dlq", task_id),
                            "tenant_id": tenant_id,
                            "connection_id": connection,
                            "vendor": vendor,
                            "stage": "push",
                            "subject": f"jh.push.{connection}",
                            "msg_id": task_id,
                            "payload": b'{"id": "%s", "event": %s}' % (task_id.encode(), payload),
                            "error": "2 failed attempts: 503 Service Unavailable",
                            "attempts": 2,
                            "created_at": at + timedelta(seconds=5),
                            "replay_count": 0,
                            "client_id": client_id,
                        }
                    )
        for t in range(2 if index else self.busy // 5):
            at = self.moment()
            rows["triggers"].append(
                {
                    "id": f"trg_{client_id}_{t}",
                    "tenant_id": tenant_id,
                    "connection_id": pay,
                    "vendor": "stripe",
                    "type": "payment_received",
                    "client_id": client_id,
                    "source_event_id": f"evt_{client_id}_{t}",
                    "occurred_at": at,
                    "data": {"amount": 50000, "currency": "gbp", "email": email},
                    "created_at": at,
                }
            )
        for kind in ("contact", "job", "job_contact"):
            rows["links"].append(
                {
                    "connection_id": crm,
                    "kind": kind,
                    "vendor_id": f"v_{kind}_{client_id}",
                    "our_id": client_id,
                    "ref": None if kind == "contact" else f"ji_{client_id}",
                    "email": email if kind == "contact" else None,
                    "fields": {"email": email, "name": name},
                    "deleted": False,
                    "updated_at": self.moment(),
                }
            )
        return rows


async def fill(store: Store, history: History) -> dict[str, Any]:
    tables = {
        "deliveries": table_of(Delivery),
        "dead_letters": table_of(DeadLetter),
        "triggers": table_of(TriggerRow),
        "links": table_of(SyncLink),
    }
    counts = dict.fromkeys(["events", *tables], 0)
    started = time.perf_counter()
    async with store.transaction() as conn:  # the connections the rows name
        for tenant_id in history.tenants:
            await conn.execute(
                text("INSERT INTO tenants (id, name, created_at) VALUES (:id, :id, :at)"),
                {"id": tenant_id, "at": history.now},
            )
            for connection, vendor in zip(
                history.connections(tenant_id), ("tave", "resend", "stripe"), strict=True
            ):
                await conn.execute(
                    text(
                        "INSERT INTO connections (id, tenant_id, vendor, name, direction, "
                        "enabled, config, event_types, field_mappings, status, version, "
                        "created_at, updated_at) VALUES (:id, :tenant, :vendor, :vendor, "
                        "'outbound', true, '{}', '[]', '[]', 'active', 1, :at, :at)"
                    ),
                    {"id": connection, "tenant": tenant_id, "vendor": vendor, "at": history.now},
                )
    pending: dict[str, list[dict[str, Any]]] = {name: [] for name in counts}

    async def flush(force: bool = False) -> None:
        ready = {k: v for k, v in pending.items() if v and (force or len(v) >= CHUNK)}
        if not ready:
            return

        def write(conn: Connection) -> None:
            for name, rows in ready.items():
                if name == "events":
                    store.journey_events.keep(conn, rows)  # with the client directory
                else:
                    conn.execute(tables[name].insert(), rows)

        await store.run(write)
        for name, rows in ready.items():
            counts[name] += len(rows)
            pending[name] = []

    for index in range(len(history.clients)):
        for name, rows in history.rows_of(index).items():
            pending[name].extend(rows)
        await flush()
    await flush(force=True)
    async with store.transaction() as conn:
        await conn.execute(text("ANALYZE"))
        for name in ("clients", "client_terms"):
            counts[name] = (await conn.execute(text(f"SELECT count(*) FROM {name}"))).scalar_one()
    counts["total"] = sum(counts.values())
    return {"rows": counts, "fill_seconds": round(time.perf_counter() - started, 1)}


async def timed(samples: int, work: Callable[[int], Awaitable[Any]]) -> dict[str, float]:
    spent = []
    for n in range(samples):
        start = time.perf_counter()
        await work(n)
        spent.append(time.perf_counter() - start)
    return percentiles(spent)


async def measure(store: Store, history: History, samples: int) -> dict[str, Any]:
    hub: Any = SimpleNamespace(store=store)
    rng = random.Random(11)
    picks = [history.clients[rng.randrange(1, len(history.clients))] for _ in range(samples)]
    busy_tenant, busy_id, busy_name, _ = history.clients[0]
    cursors: list[tuple[str, str, str]] = []

    async def first_page(n: int) -> None:
        tenant_id, client_id, _, _ = picks[n]
        page = await client_timeline(hub, tenant_id, client_id, limit=10)
        assert page.entries, client_id
        if page.next:
            cursors.append((tenant_id, client_id, page.next))

    results: dict[str, Any] = {"timeline_first_page_10": await timed(samples, first_page)}

    async def first_page_50(n: int) -> None:
        tenant_id, client_id, _, _ = picks[n]
        await client_timeline(hub, tenant_id, client_id, limit=50)

    results["timeline_first_page_50"] = await timed(samples, first_page_50)

    async def next_page(n: int) -> None:
        tenant_id, client_id, cursor = cursors[n % len(cursors)]
        await client_timeline(hub, tenant_id, client_id, before=cursor, limit=10)

    results["timeline_next_page_10"] = await timed(samples, next_page)
    deep: list[str] = []
    cursor = None
    for _ in range(20):
        page = await client_timeline(hub, busy_tenant, busy_id, before=cursor, limit=50)
        cursor = page.next
        assert cursor is not None
        deep.append(cursor)

    async def busy_first(_: int) -> None:
        await client_timeline(hub, busy_tenant, busy_id, limit=50)

    async def busy_deep(_: int) -> None:
        await client_timeline(hub, busy_tenant, busy_id, before=deep[-1], limit=50)

    results["busy_client_first_page_50"] = await timed(samples, busy_first)
    results["busy_client_21st_page_50"] = await timed(samples, busy_deep)

    async def by_email(n: int) -> None:
        tenant_id, client_id, _, email = picks[n]
        found = await find_clients(hub, tenant_id, email, limit=20)
        assert found and found[0].id == client_id

    async def by_word(n: int) -> None:
        tenant_id, _, name, _ = picks[n]
        assert await find_clients(hub, tenant_id, name.split()[1][:3], limit=20)

    async def by_id(n: int) -> None:
        tenant_id, client_id, _, _ = picks[n]
        assert await find_clients(hub, tenant_id, client_id, limit=20)

    results["search_email"] = await timed(samples, by_email)
    results["search_name_word_3_letters"] = await timed(samples, by_word)
    results["search_client_id"] = await timed(samples, by_id)
    results["busy_client"] = {"id": busy_id, "name": busy_name}
    return results


async def plans(store: Store, history: History) -> dict[str, list[str]]:
    """The database's plans of the timeline's four queries (a first page and one after a
    cursor) and of the search's term range: ``EXPLAIN ANALYZE`` on PostgreSQL, ``EXPLAIN
    QUERY PLAN`` on SQLite."""
    tenant_id, client_id, _, email = history.clients[len(history.clients) // 2]
    position = Position(history.now - timedelta(days=45), "event", "ev_x")
    postgres = store.engine.dialect.name == "postgresql"
    explain = "EXPLAIN (ANALYZE, BUFFERS) " if postgres else "EXPLAIN QUERY PLAN "
    found: dict[str, list[str]] = {}
    async with store.transaction() as conn:
        for source in SOURCES:
            for label, before in (("first", None), ("after", position)):
                statement = _statement(source, tenant_id, client_id, before, 51)
                sql = statement.compile(
                    dialect=store.engine.dialect, compile_kwargs={"literal_binds": True}
                )
                rows = await conn.execute(text(explain + str(sql)))
                found[f"{source.kind}:{label}"] = [str(r[-1]) for r in rows]
        search = text(
            explain + "SELECT client_id FROM client_terms WHERE tenant_id = :t AND term >= :lo"
            " AND term < :hi ORDER BY term LIMIT 80"
        )
        rows = await conn.execute(search, {"t": tenant_id, "lo": email, "hi": email + "\U0010ffff"})
        found["search"] = [str(r[-1]) for r in rows]
    return found


def full_scans(plan: dict[str, list[str]]) -> list[str]:
    """The queries whose plan reads a table whole (or sorts the client's rows)."""
    bad = ("Seq Scan", "Sort ", "USE TEMP B-TREE")
    return [
        name
        for name, lines in plan.items()
        if any(
            any(b in line for b in bad) or (line.startswith("SCAN ") and "INDEX" not in line)
            for line in lines
        )
    ]


async def run(url: str, args: argparse.Namespace, data_dir: Path) -> dict[str, Any]:
    settings = load_settings({}, database_url=url, data_dir=data_dir)
    await asyncio.to_thread(migrate, settings)
    store = Store(settings, SecretBox([Fernet.generate_key().decode()]))
    try:
        history = History(args.clients, args.tenants, args.busy)
        result: dict[str, Any] = await fill(store, history)
        print(f"  filled: {json.dumps(result)}", flush=True)
        result["latency"] = await measure(store, history, args.samples)
        result["plans"] = await plans(store, history)
        result["full_scans"] = full_scans(result["plans"])
        return result
    finally:
        await store.close()


def reset_schema(url: str) -> None:
    import psycopg

    plain = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--scratch-url", help="an empty PostgreSQL database this run may wipe")
    parser.add_argument("--only", choices=["postgresql", "sqlite"])
    parser.add_argument("--clients", type=int, default=50_000)
    parser.add_argument("--tenants", type=int, default=5)
    parser.add_argument("--busy", type=int, default=5000, help="the busy client's events")
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    result: dict[str, Any] = {"machine": machine(), "clients": args.clients}
    with tempfile.TemporaryDirectory(prefix="jh-bench-timeline-") as tmp:
        if args.only in (None, "sqlite"):
            print("sqlite …", flush=True)
            url = f"sqlite+aiosqlite:///{tmp}/bench.db"
            result["sqlite"] = asyncio.run(run(url, args, Path(tmp)))
        if args.only in (None, "postgresql"):
            print("postgresql …", flush=True)
            if args.scratch_url:
                try:
                    result["postgresql"] = asyncio.run(run(args.scratch_url, args, Path(tmp)))
                finally:
                    reset_schema(args.scratch_url)
            else:
                if (reason := postgres_reachable(args.server)) is not None:
                    sys.exit(f"PostgreSQL is not reachable at {args.server}: {reason}")
                with scratch_database(args.server, prefix="jh_timeline") as url:
                    result["postgresql"] = asyncio.run(run(url, args, Path(tmp)))
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    scans = {db: result[db]["full_scans"] for db in ("sqlite", "postgresql") if db in result}
    if any(scans.values()):
        sys.exit(f"full scans or sorts: {scans}")


if __name__ == "__main__":
    main()
