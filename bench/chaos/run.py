"""bench/chaos: journey events and Stripe webhooks through a hub that is being broken.

    uv run --frozen python bench/chaos/run.py                  # 10,000 + 10,000
    uv run --frozen python bench/chaos/run.py --events 300 --webhooks 300 \\
        --nats-nodes 1 --database sqlite --no-pg-restart                       # a quick look

What runs (all on loopback, every process ended by its pid at the end, also on failure):
a 3-node NATS cluster (streams at 3 replicas), a scratch PostgreSQL cluster of its own, one
``journeyhub gateway`` and two ``journeyhub worker`` processes, and in this process a Tave
sandbox and a Stripe sandbox (see workload.py for the workload and how it is counted).

While the events and webhooks are sent and processed:
(a) a random worker is SIGKILLed and started again, ``--worker-kills`` times;
(b) one NATS node is SIGKILLed, and started again later (same ports, same store);
(c) PostgreSQL is restarted once (``pg_ctl restart -m fast``);
(d) the sandboxes answer ``--fault-rate`` of calls with 500/502/503, 429 or a timeout.
Each disruption fires when a share of the work is done (progress), or at the latest after its
share of ``--chaos-span`` seconds, so it lands while work is in flight however fast the run is.

Then the faults go off, every dead letter is replayed (``POST /v1/dlq/replay``), the run waits
for them, and the report says: sent, delivered, lost, duplicated side effects, dead-lettered,
replayed, and whether every replay was delivered. Exit status 0 only for 0 lost, 0 duplicated
and every dead letter replayed to success.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from chaos_infra import postgres_bin_dir
from chaos_run import Chaos, machine, print_report, run
from chaos_workload import Options, log


def stop_on_sigterm() -> None:
    """SIGTERM (``timeout``, a CI runner) ends the run as Ctrl-C does: through the ``finally``
    that stops every process it started."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--webhooks", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--gateways", type=int, default=1)
    parser.add_argument(
        "--studios", type=int, default=10, help="tenants, each with a Tave and a Stripe connection"
    )
    parser.add_argument("--nats-nodes", type=int, choices=(1, 3), default=3)
    parser.add_argument(
        "--database",
        default="scratch",
        help="scratch (own PostgreSQL cluster), sqlite, or a postgresql+psycopg URL",
    )
    parser.add_argument("--fault-rate", type=float, default=0.3)
    parser.add_argument("--worker-kills", type=int, default=6)
    parser.add_argument("--no-nats-kill", action="store_true")
    parser.add_argument("--no-pg-restart", action="store_true")
    parser.add_argument("--no-stripe-catchup", action="store_true")
    parser.add_argument("--chaos-span", type=float, default=600.0)
    parser.add_argument("--max-deliver", type=int, default=5)
    parser.add_argument("--ack-wait", type=int, default=10)
    parser.add_argument("--settle-timeout", type=float, default=3600.0)
    parser.add_argument("--send-timeout", type=float, default=3600.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the temporary dir (logs)")
    parser.add_argument("--json", type=Path, help="write the whole report here")
    args = parser.parse_args()
    logging.getLogger("httpx").setLevel(logging.WARNING)
    stop_on_sigterm()
    if args.database == "scratch" and postgres_bin_dir() is None:
        parser.error("--database scratch needs initdb/pg_ctl under /usr/lib/postgresql/*/bin")
    options = Options(
        events=args.events,
        webhooks=args.webhooks,
        workers=args.workers,
        gateways=args.gateways,
        studios=args.studios,
        nats_nodes=args.nats_nodes,
        database=args.database,
        fault_rate=args.fault_rate,
        stripe_catchup=not args.no_stripe_catchup,
        max_deliver=args.max_deliver,
        ack_wait=args.ack_wait,
        seed=args.seed,
        keep=args.keep,
    )
    chaos = Chaos(
        worker_kills=args.worker_kills,
        nats_kill=not args.no_nats_kill,
        pg_restart=not args.no_pg_restart,
        span=args.chaos_span,
    )
    log(f"chaos run: {options.events} events, {options.webhooks} webhooks; {machine()}")
    report = asyncio.run(
        run(options, chaos, settle_timeout=args.settle_timeout, send_timeout=args.send_timeout)
    )
    print_report(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))
    sys.exit(0 if report["ok"] else 1)


if __name__ == "__main__":
    main()
