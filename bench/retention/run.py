"""bench/retention: the retention purge on a million delivery rows in PostgreSQL, and the push
path's store latency while it runs, beside the same latency without it in the same run.

    uv run --frozen python bench/retention/run.py                    # 1,000,000 old rows
    uv run --frozen python bench/retention/run.py --rows 100000 --seconds 5

A fresh database on the machine's PostgreSQL (``--server``, default
postgresql+psycopg://postgres@127.0.0.1:5432/postgres: a database is created, then dropped),
migrated. ``--rows`` delivery attempts older than the 30-day limit and ``--fresh`` newer ones
are written by one ``INSERT … SELECT generate_series`` (then ``ANALYZE``).

The probe is the push path's store work for one delivery, as the push worker does it: the task
routed (``tasks.add``), claimed by the task gate, and its outcome recorded by the outcome
recorder (a delivery row, the task finished), open-loop at ``--rate`` pushes a second, each
timed from its planned start. It runs ``--seconds`` alone, then beside one purge
(``workers/retention.Purger``, the hub's own batches and pauses, in the same process and event
loop, as in a worker) until the purge ends, then ``--seconds`` alone again: the baseline is
both lone phases together, so a load that changes during the run (the machine is shared)
weighs on both sides. Printed: the purge's time and rows per second, the rows left, and the
probe's p50/p95/p99 without and with the purge, with their ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "chaos"))
from chaos_infra import postgres_reachable, scratch_database
from chaos_run import machine
from cryptography.fernet import Fernet
from journeyhub.delivery.outcomes import Outcome, Recorder
from journeyhub.model import DeliveryTask, utcnow
from journeyhub.secretbox import SecretBox
from journeyhub.settings import load_settings
from journeyhub.store.db import migrate
from journeyhub.store.store import Store
from journeyhub.workers.retention import Purger
from sqlalchemy import text

FILL = """
INSERT INTO deliveries (task_id, tenant_id, connection_id, vendor, source_id, attempt, status,
                        vendor_status, latency_ms, correlation_id, created_at)
SELECT 'dlv_' || n, 'ten_bench', 'con_' || (n % 20), 'tave', 'evt_' || n, 1, 'delivered', 200,
       12.5, 'evt_' || n, CAST(:newest AS timestamptz) - n * interval '1 second'
  FROM generate_series(1, :rows) AS n
"""


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    cuts = statistics.quantiles(ordered, n=100, method="inclusive")
    return {
        "n": len(ordered),
        "p50_ms": round(cuts[49] * 1000, 2),
        "p95_ms": round(cuts[94] * 1000, 2),
        "p99_ms": round(cuts[98] * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2),
    }


class Probe:
    """One push's store work, timed: route, claim, record the outcome."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.recorder = Recorder(store, "bench-worker")
        self.count = 0

    async def push(self) -> None:
        self.count += 1
        task = DeliveryTask(
            id=f"dlv_probe_{self.count}",
            tenant_id="ten_bench",
            connection_id="con_probe",
            vendor="tave",
            kind="event",
            order_key=f"cl_{self.count}",
            sequence=self.count,
        )
        tasks = self.store.tasks
        until = utcnow() + timedelta(seconds=60)

        def route_and_claim(conn: Any) -> None:
            tasks.add(conn, [task])
            tasks.claim(conn, [task.id], "bench-worker", until)

        await self.store.run(route_and_claim)
        await self.recorder.record(Outcome(task=task, status="delivered", attempt=1))

    async def run(self, rate: float, until: asyncio.Event | float) -> list[float]:
        """Open loop at ``rate`` until ``until`` (an event, or seconds): the latencies."""
        loop = asyncio.get_running_loop()
        latencies: list[float] = []
        pending: set[asyncio.Task[None]] = set()
        start = loop.time()

        async def one(planned: float) -> None:
            await self.push()
            latencies.append(loop.time() - planned)

        n = 0
        while True:
            planned = start + n / rate
            if isinstance(until, float) and planned - start >= until:
                break
            if isinstance(until, asyncio.Event) and until.is_set():
                break
            delay = planned - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            job = asyncio.create_task(one(planned))
            pending.add(job)
            job.add_done_callback(pending.discard)
            n += 1
        await asyncio.gather(*pending)
        return latencies


async def bench(url: str, args: argparse.Namespace) -> dict[str, Any]:
    settings = load_settings({}, database_url=url, retention_batch_size=args.batch)
    await asyncio.to_thread(migrate, settings)
    store = Store(settings, SecretBox([Fernet.generate_key().decode()]))
    try:
        now = utcnow()
        filled = time.monotonic()
        async with store.transaction() as conn:
            old = now - timedelta(days=settings.retention_deliveries_days, hours=1)
            await conn.execute(text(FILL), {"rows": args.rows, "newest": old})
            await conn.execute(text(FILL), {"rows": args.fresh, "newest": now})
        async with store.transaction() as conn:
            await conn.execute(text("ANALYZE deliveries"))
        fill_seconds = time.monotonic() - filled
        print(f"filled {args.rows:,} old + {args.fresh:,} fresh rows in {fill_seconds:.1f} s")

        probe = Probe(store)
        await probe.run(args.rate, 1.0)  # warm the pools and statement caches
        baseline = await probe.run(args.rate, float(args.seconds))
        print("before the purge:", percentiles(baseline))

        purger = Purger(store, settings, lease="retention:bench")
        assert await store.leases.claim(purger.lease, purger.holder, 3600)
        done = asyncio.Event()

        async def purge() -> tuple[dict[str, int], float]:
            started = time.monotonic()
            try:
                return await purger.purge(), time.monotonic() - started
            finally:
                done.set()

        (removed, purge_seconds), during = await asyncio.gather(purge(), probe.run(args.rate, done))
        print("during the purge:", percentiles(during))
        after = await probe.run(args.rate, float(args.seconds))
        print("after the purge:", percentiles(after))
        baseline += after
        async with store.transaction() as conn:
            left = (await conn.execute(text("SELECT count(*) FROM deliveries"))).scalar_one()
        base, dur = percentiles(baseline), percentiles(during)
        return {
            "machine": machine(),
            "rows_old": args.rows,
            "rows_fresh": args.fresh,
            "fill_seconds": round(fill_seconds, 1),
            "purged": removed,
            "purge_seconds": round(purge_seconds, 2),
            "purge_rows_per_second": round(removed["deliveries"] / purge_seconds),
            "batch_size": settings.retention_batch_size,
            "deliveries_left": int(left),
            "probe_rate": args.rate,
            "probe_without_purge": base,
            "probe_during_purge": dur,
            "p50_ratio": round(dur["p50_ms"] / base["p50_ms"], 2),
            "p99_ratio": round(dur["p99_ms"] / base["p99_ms"], 2),
        }
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows past the limit")
    parser.add_argument("--fresh", type=int, default=50_000, help="rows within the limit")
    parser.add_argument("--rate", type=float, default=100.0, help="probe pushes a second")
    parser.add_argument("--seconds", type=float, default=15.0, help="the baseline's length")
    parser.add_argument("--batch", type=int, default=5000, help="rows per delete transaction")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if (reason := postgres_reachable(args.server)) is not None:
        sys.exit(f"PostgreSQL is not reachable at {args.server}: {reason}")
    with scratch_database(args.server, prefix="jh_retention") as url:
        result = asyncio.run(bench(url, args))
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
