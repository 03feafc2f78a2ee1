"""The inbound worker's own cost per webhook, in-process: CPU time, store transactions and
statements, bus calls, with the trigger router's cost apart.

    uv run --frozen python bench/ingest/worker_cost.py [--webhooks 5000]
    uv run --frozen python bench/ingest/worker_cost.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres

It starts its own nats-server and store (SQLite in a temporary directory, or a fresh database
created on the PostgreSQL server given, dropped at the end), a tenant with a Stripe connection,
and sync links for half the Stripe customers (so that client ids are resolved, as in
production). Then, for each of ``--rounds``:

1. ``--webhooks`` signed-and-verified Stripe webhooks are stored on ``jh.inbound.stripe.<id>``
   exactly as the gateway stores them (a ``StoredWebhook``, the same ``Nats-Msg-Id``);
2. the real inbound loop (``journeyhub.workers.inbound.run``) drains them: timed in this
   process's CPU time (the nats-server's is its own), with the cost counters' deltas;
3. the real trigger router (``journeyhub.workers.router.run_triggers``) routes the triggers it
   made, timed the same way: it runs in the same ``journeyhub worker`` process in production,
   so its cost is in that process's figures (run.py's), not in the inbound worker's.

CPU time, not wall time: the figures hold on a machine shared with other jobs. The webhooks
wait on the bus before the loop starts, so the loop fetches full batches: this is the cost
under load. A webhook processed again (``--redeliver``: every webhook stored twice, under two
message ids, as a redelivery after the bus's duplicate window) must make no second trigger.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import stripe_template  # noqa: E402

COUNTERS = {
    "transactions": "journeyhub_store_transactions_total",
    "statements": "journeyhub_store_statements_total",
}


def counters() -> dict[str, float]:
    """This process's cost counters, summed over their labels."""
    from prometheus_client import REGISTRY

    out: dict[str, float] = {}
    for family in REGISTRY.collect():
        for sample in family.samples:
            if not sample.name.endswith("_total"):
                continue
            for key, name in COUNTERS.items():
                if sample.name == name:
                    out[key] = out.get(key, 0.0) + sample.value
            # CONSUMER.INFO: this script's own polling for the end of the drain
            if sample.name == "journeyhub_bus_calls_total" and sample.labels["kind"] != (
                "CONSUMER.INFO"
            ):
                kind = f"bus:{sample.labels['kind']}"
                out[kind] = out.get(kind, 0.0) + sample.value
    return out


async def stored_webhooks(hub: Any, connection: Any, count: int, customers: int) -> list[bytes]:
    """``count`` StoredWebhook payloads as the gateway makes them (verified first)."""
    import msgspec
    from journeyhub.model import StoredWebhook, utcnow
    from journeyhub_stripe.sandbox import StripeSandbox

    template, event_id, intent_id = stripe_template()
    secret = (await hub.connection_cache.get(connection.id))[1]["webhook_secret"]
    customer = json.loads(template)["data"]["object"]["customer"]
    tag = secrets.token_hex(4)
    now = int(time.time())
    out = []
    for i in range(count):
        unique = f"{tag}{i:016d}"
        body = (
            template.replace(event_id, f"evt_{unique}")
            .replace(intent_id, f"pi_{unique}")
            .replace(customer, f"cus_bench{i % customers:08d}")
        ).encode()
        headers = {
            "stripe-signature": StripeSandbox.signature_header(body, [secret], now),
            "content-type": "application/json",
        }
        receipt = await hub.registry.call(
            "stripe",
            "journeyhub_verify_webhook",
            connection=connection,
            credentials={"webhook_secret": secret},
            headers=headers,
            body=body,
            now=utcnow(),
            query={},
        )
        stored = StoredWebhook(
            vendor="stripe",
            connection_id=connection.id,
            tenant_id=connection.tenant_id,
            event_id=receipt.event_id,
            event_type=receipt.event_type,
            received_at=utcnow(),
            headers=headers,
            body=body,
            correlation_id=f"req-{unique}",
        )
        out.append(msgspec.json.encode(stored))
    return out


async def store_them(hub: Any, connection: Any, payloads: list[bytes], suffix: str) -> None:
    subject = hub.bus.subjects.inbound("stripe", connection.id)
    sem = asyncio.Semaphore(256)

    async def one(i: int, payload: bytes) -> None:
        async with sem:
            await hub.bus.publish(subject, payload, msg_id=f"bench:{suffix}:{i}")

    await asyncio.gather(*(one(i, p) for i, p in enumerate(payloads)))


async def backlog(hub: Any, durable: str, stream: str) -> int:
    info = await hub.bus.js.consumer_info(hub.bus.subjects.stream(stream), durable)
    return info.num_pending + info.num_ack_pending


async def timed_loop(
    hub: Any, loop: Any, durable: str, stream: str, timeout: float
) -> tuple[float, float, dict[str, float]]:
    """Run ``loop(hub, stop)`` until its consumer has nothing left: (CPU s, wall s, costs)."""
    stop = asyncio.Event()
    before = counters()
    cpu, wall = time.process_time(), time.monotonic()
    task = asyncio.create_task(loop(hub, stop))
    try:
        while await backlog(hub, durable, stream) > 0:
            if time.monotonic() - wall > timeout:
                raise RuntimeError(f"{durable} did not drain in {timeout:.0f}s")
            await asyncio.sleep(0.05)
    finally:
        cpu, wall = time.process_time() - cpu, time.monotonic() - wall
        stop.set()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(task, 10)
    after = counters()
    return cpu, wall, {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}


async def main(args: argparse.Namespace) -> None:
    from journeyhub.bus.embedded import EmbeddedNats
    from journeyhub.hub import Hub
    from journeyhub.logs import configure_logging
    from journeyhub.settings import load_settings
    from journeyhub.workers import inbound, router

    tmp = Path(tempfile.mkdtemp(prefix="jh-bench-worker-"))
    nats_server = EmbeddedNats(tmp / "nats").start()
    database_url, drop = _database(args.database_url, tmp)
    log_sink = (tmp / "worker.log").open("w")
    real_stderr = sys.stderr
    hub = None
    try:
        settings = load_settings(
            {},
            data_dir=tmp / "data",
            nats_url=nats_server.url,
            database_url=database_url,
            log_format="json",
            log_level=args.log_level,
        )
        configure_logging("json", args.log_level)
        hub = await Hub.start(settings)
        tenant = await hub.store.tenants.add("Worker cost")
        connection = await hub.store.connections.create(
            tenant_id=tenant,
            vendor="stripe",
            name="stripe",
            direction="inbound",
            enabled=True,
            config={},
            credentials={"webhook_secret": "whsec_" + secrets.token_urlsafe(24)},
            event_types=[],
            field_mappings=[],
            actor="bench",
        )
        customers = max(1, args.webhooks // 2)
        for i in range(0, customers, 2):  # every other customer is known: a sync link
            await hub.store.sync.link(
                connection.id, "customer", f"cus_bench{i:08d}", our_id=f"cl_{i}"
            )
        rows = []
        for round_ in range(args.rounds):
            payloads = await stored_webhooks(hub, connection, args.webhooks, customers)
            await store_them(hub, connection, payloads, f"{round_}a")
            if args.redeliver:
                await store_them(hub, connection, payloads, f"{round_}b")
            stored = len(payloads) * (2 if args.redeliver else 1)
            sys.stderr = log_sink
            try:
                inbound_cost = await timed_loop(
                    hub, inbound.run, "inbound-worker", "inbound", args.timeout
                )
                router_cost = await timed_loop(
                    hub, router.run_triggers, "trigger-router", "triggers", args.timeout
                )
            finally:
                sys.stderr = real_stderr
            rows.append((stored, inbound_cost, router_cost))
        triggers = await _count_triggers(hub, tenant)
    finally:
        sys.stderr = real_stderr
        log_sink.close()
        if hub is not None:
            await hub.close()
        nats_server.stop()
        drop()
        shutil.rmtree(tmp, ignore_errors=True)

    print(
        f"\ninbound worker, in-process, {args.webhooks:,} Stripe webhooks per round"
        + (" (each stored twice)" if args.redeliver else "")
        + f", {'PostgreSQL' if args.database_url else 'SQLite'}, log level {args.log_level}"
    )
    for n, (stored, (cpu, wall, costs), (rcpu, _rwall, rcosts)) in enumerate(rows, start=1):
        per = {k: v / stored for k, v in costs.items() if v}
        batches = costs.get("bus:fetch", 0.0)
        print(
            f"round {n}: inbound {cpu / stored * 1e6:,.0f} µs CPU per webhook "
            f"({stored / wall:,.0f} webhooks/s wall, {stored / max(1.0, batches):,.0f} per fetch)"
        )
        print("  per webhook: " + ", ".join(f"{k} {v:.3f}" for k, v in sorted(per.items())))
        made = max(1, args.webhooks)
        rper = {k: v / made for k, v in rcosts.items() if v}
        print(
            f"  trigger router (same process in production): {rcpu / made * 1e6:,.0f} µs CPU "
            "per trigger; " + ", ".join(f"{k} {v:.3f}" for k, v in sorted(rper.items()))
        )
    expected = args.webhooks * args.rounds
    print(
        f"triggers in the store: {triggers:,} for {expected:,} distinct webhooks: "
        + ("OK" if triggers == expected else "WRONG")
    )


async def _count_triggers(hub: Any, tenant: str) -> int:
    from journeyhub.store.tables import TriggerRow
    from sqlalchemy import func, select

    async with hub.store.session() as s:
        query = select(func.count()).select_from(TriggerRow).where(TriggerRow.tenant_id == tenant)
        return (await s.execute(query)).scalar_one()


def _database(server: str | None, tmp: Path) -> tuple[str | None, Any]:
    """(the database URL, a function that drops it): None for SQLite under ``tmp``."""
    if not server:
        return None, lambda: None
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"jh_worker_cost_{secrets.token_hex(4)}"
    admin_url = make_url(server).set(drivername="postgresql+psycopg")
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return admin_url.set(database=name).render_as_string(hide_password=False), drop


if __name__ == "__main__":
    import uvloop

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--webhooks", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--redeliver", action="store_true")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning"])
    parser.add_argument("--database-url", help="a PostgreSQL server (default: SQLite)")
    parser.add_argument("--timeout", type=float, default=600)
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    uvloop.run(main(parser.parse_args()))
