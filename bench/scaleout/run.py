"""bench/scaleout: the same workload through 1 gateway + 1 worker and through 2 gateways +
2 workers, sharing one 3-node NATS cluster (streams at 3 replicas) and a PostgreSQL server;
the results must be the same.

    uv run --frozen python bench/scaleout/run.py                 # 1,000 + 1,000
    uv run --frozen python bench/scaleout/run.py --events 200 --webhooks 200

For each layout: a fresh database on the machine's PostgreSQL (``--server``, default
postgresql+psycopg://postgres@127.0.0.1:5432/postgres: a database is created, then dropped),
its own subject prefix on the shared NATS cluster (so its own streams), a fresh Tave sandbox
and a Stripe sandbox per studio; ``journeyhub gateway`` and ``journeyhub worker`` processes
with ``JOURNEYHUB_NATS_URL`` listing the three nodes and ``JOURNEYHUB_DATABASE_URL`` on that
database. Journey events (``POST /v1/events``) and signed Stripe webhooks are sent
round-robin over the gateways. No faults: both layouts must deliver everything, once.

Compared: events delivered at Tave, lost, duplicated side effects; triggers (store and
``JH_TRIGGERS`` stream), duplicated; dead letters; and how the work was shared between the
processes (from their logs), with the wall time of each run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "chaos"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from chaos_infra import NatsCluster, postgres_reachable, scratch_database
from chaos_run import machine
from chaos_workload import (
    Options,
    Rig,
    count,
    dead_letter_outcomes,
    log,
    plan_events,
    send_events,
    send_webhooks,
    wait_settled,
)
from harness import all_cpu_of, cpu_seconds, machine_busy

DEFAULT_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def process_cpu(rig: Rig, nats: NatsCluster) -> dict[str, float]:
    """CPU seconds so far of each kind of process: the layout's gateways and workers, the NATS
    nodes, every PostgreSQL server process of the machine, and the whole machine."""

    def total(pids: list[int | None]) -> float:
        return sum(sum(cpu_seconds(pid).values()) for pid in pids if pid is not None)

    return {
        "gateways": total([p.pid for p in rig.gateways]),
        "workers": total([p.pid for p in rig.workers]),
        "nats": total([n.process.pid if n.process else None for n in nats.nodes]),
        "postgres": all_cpu_of("postgres"),
        "machine": machine_busy(),
    }


async def one_layout(
    name: str,
    *,
    gateways: int,
    workers: int,
    nats: NatsCluster,
    server: str,
    events: int,
    webhooks: int,
    studios: int,
    seed: int,
    settle_timeout: float,
) -> dict[str, Any]:
    """One run of the workload through ``gateways`` + ``workers`` processes."""
    with scratch_database(server, f"jh_scaleout_{name}") as url:
        options = Options(
            events=events,
            webhooks=webhooks,
            gateways=gateways,
            workers=workers,
            studios=studios,
            nats_nodes=len(nats.nodes),
            database=url,
            fault_rate=0.0,
            stripe_catchup=False,
            seed=seed,
            extra_env={"JOURNEYHUB_SUBJECT_PREFIX": f"so{name}"},
        )
        rig = Rig(options, nats=nats)
        try:
            await rig.start()
            plan = plan_events(events, rig.prefix, seed, studios)
            cpu_before = process_cpu(rig, nats)
            started = time.monotonic()
            deadline = started + settle_timeout
            event_stats, (hook_stats, webhook_ids) = await asyncio.gather(
                send_events(rig, plan, deadline), send_webhooks(rig, webhooks, deadline)
            )
            settled = await wait_settled(rig, events, webhooks, settle_timeout, every=0.5)
            seconds = time.monotonic() - started
            cpu_after = process_cpu(rig, nats)
            await asyncio.sleep(1.0)  # anything late would show now
            counted = await count(rig, plan, webhook_ids)
            dead = await dead_letter_outcomes(rig)
            split = rig.work_split()
        finally:
            await rig.stop()
    return {
        "layout": f"{gateways} gateway(s) + {workers} worker(s)",
        "seconds": round(seconds, 1),
        "events_sent": events,
        "events_delivered": counted["events_delivered"],
        "events_lost": len(counted["events_lost"]),
        "duplicate_side_effects": sum(n - 1 for n in counted["duplicate_creates"].values())
        + sum(n - 1 for n in counted["duplicate_links"].values()),
        "webhooks_sent": webhooks,
        "triggers": counted["webhooks_delivered"],
        "webhooks_lost": len(counted["webhooks_lost"]),
        "duplicate_triggers": sum(n - 1 for n in counted["duplicate_triggers_store"].values())
        + sum(n - 1 for n in counted["duplicate_triggers_bus"].values()),
        "triggers_on_bus": counted["triggers_on_bus"],
        "tave_records": counted["tave_records"],
        "dead_letters": dead["dead_letters"],
        "tasks_delivered_twice": counted["tasks_delivered_twice"],
        "settled": "timed_out" not in settled,
        "requests": {"events": event_stats.requests, "webhooks": hook_stats.requests},
        "split": split,
        "cpu_seconds": {k: round(cpu_after[k] - cpu_before[k], 2) for k in cpu_after},
    }


COMPARED = (
    "events_delivered",
    "events_lost",
    "duplicate_side_effects",
    "triggers",
    "webhooks_lost",
    "duplicate_triggers",
    "triggers_on_bus",
    "tave_records",
    "dead_letters",
    "tasks_delivered_twice",
)


async def compare(
    *,
    server: str,
    events: int,
    webhooks: int,
    studios: int = 4,
    seed: int = 11,
    settle_timeout: float = 600.0,
    root: Path | None = None,
) -> dict[str, Any]:
    """Both layouts on one shared 3-node NATS cluster; the comparison as a dict."""
    workdir = Path(root or tempfile.mkdtemp(prefix="jh-scaleout-"))
    nats = NatsCluster(workdir / "nats", size=3)
    results = []
    try:
        await asyncio.to_thread(nats.start)
        for name, gateways, workers in (("a", 1, 1), ("b", 2, 2)):
            log(f"layout {gateways}+{workers}: {events} events, {webhooks} webhooks")
            results.append(
                await one_layout(
                    name,
                    gateways=gateways,
                    workers=workers,
                    nats=nats,
                    server=server,
                    events=events,
                    webhooks=webhooks,
                    studios=studios,
                    seed=seed,
                    settle_timeout=settle_timeout,
                )
            )
    finally:
        await asyncio.to_thread(nats.stop)
    one, two = results
    same = {key: one[key] == two[key] for key in COMPARED}
    complete = all(
        r["events_delivered"] == events and r["triggers"] == webhooks and r["settled"]
        for r in results
    )
    clean = all(r["duplicate_side_effects"] == 0 and r["duplicate_triggers"] == 0 for r in results)
    return {
        "machine": machine(),
        "results": results,
        "same": same,
        "ok": all(same.values()) and complete and clean,
    }


def print_comparison(report: dict[str, Any]) -> None:
    one, two = report["results"]
    print()
    print(f"machine: {report['machine']}")
    print(f"{'':26} {one['layout']:>28} {two['layout']:>28}  same")
    for key in ("seconds", *COMPARED):
        a, b = one[key], two[key]
        mark = "" if key == "seconds" else ("yes" if a == b else "NO")
        print(f"{key:26} {a!s:>28} {b!s:>28}  {mark}")
    for result in report["results"]:
        print(f"work split, {result['layout']}: {result['split']}")
    for result in report["results"]:
        cpu, requests = result["cpu_seconds"], result["requests"]
        messages = result["events_sent"] + result["webhooks_sent"]
        print(
            f"CPU, {result['layout']}: gateways {cpu['gateways']} s "
            f"({cpu['gateways'] / max(1, sum(requests.values())) * 1e6:.0f} µs per request: "
            f"{requests}), workers {cpu['workers']} s "
            f"({cpu['workers'] / messages * 1e3:.2f} ms per event or webhook), "
            f"NATS {cpu['nats']} s ({cpu['nats'] / messages * 1e3:.2f} ms per message), "
            f"PostgreSQL {cpu['postgres']} s ({cpu['postgres'] / messages * 1e3:.2f} ms per "
            f"message), machine {cpu['machine']} s"
        )
    print("RESULT:", "ok (same results, nothing lost or doubled)" if report["ok"] else "FAILED")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--webhooks", type=int, default=1000)
    parser.add_argument("--studios", type=int, default=4)
    parser.add_argument(
        "--server",
        default=DEFAULT_SERVER,
        help="a PostgreSQL server (any database on it) for the scratch databases",
    )
    parser.add_argument("--settle-timeout", type=float, default=900.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    logging.getLogger("httpx").setLevel(logging.WARNING)
    reason = postgres_reachable(args.server)
    if reason is not None:
        parser.error(f"PostgreSQL is not reachable at {args.server}: {reason}")
    report = asyncio.run(
        compare(
            server=args.server,
            events=args.events,
            webhooks=args.webhooks,
            studios=args.studios,
            settle_timeout=args.settle_timeout,
        )
    )
    print_comparison(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))
    sys.exit(0 if report["ok"] else 1)


if __name__ == "__main__":
    main()
