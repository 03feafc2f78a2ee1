"""bench/e2e: journey events over HTTP → hub → Tave sandbox; receipt latency per event.

    uv run --frozen python bench/e2e/run.py                 # 200/s for 60 s
    uv run --frozen python bench/e2e/run.py --smoke         # 20/s for 5 s

What runs: a real ``journeyhub serve`` process (gateway, router, push worker, embedded
nats-server, SQLite), a Tave sandbox in its own process, and this load generator. Events are
sent open-loop on a fixed schedule, one event per ``POST /v1/events`` (``--batch N`` groups N
consecutive events in one request). The mix: ``journey_started`` for a new client, and, for
clients whose start was sent at least ``--followup-delay`` seconds earlier,
``step_completed`` (a note on the job) and ``client_updated`` (name and wedding date change:
PUTs of the contact and the job).

Latency of one event = the sandbox's receipt time (``TaveSandbox.received_at``, ``time.time()``)
of the last record the event makes (journey_started: the job-contact link, after the contact
and the job; step_completed: the note; client_updated: the last PUT, timed by an ASGI recorder
in the sandbox process) - ``time.time()`` just before this process sends the HTTP request.

Baseline, in the same run and against the same sandbox process (reset in between): the Tave
plugin's own ``journeyhub_push`` called directly (no gateway, bus, router, store or limiter),
first one call at a time (unloaded), then open-loop at the same rate and mix.

Counts: sent (202), delivered (receipt seen), lost (no receipt when the drain window closes,
with the hub's backlog at that moment, to tell late from lost), duplicated (sandbox create
calls > 1 for one external id).

The Tave plugin declares 5 requests/s (an assumption: VSCO publishes none) and the kernel's
limiter takes one token per *push*; at 200 events/s that caps the hub at 4.75 events/s, so by
default the connection overrides it (``config.rate_limit_per_second``, ``--tave-rate``) with a
rate above the offered load; ``--tave-rate 0`` keeps the plugin's declared limit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (
    HubProcess,
    LoadClient,
    SandboxProcess,
    cost_delta,
    cpu_delta,
    cpu_seconds,
    fmt_ms,
    machine,
    machine_busy,
    make_event,
    py_spy_top,
    start_py_spy,
    summary,
)

STEP_NAME = re.compile(r"<strong>([^<]+)</strong>")
UPDATED_NAME = "Ada King"
UPDATED_DATE = "2026-10-03"


@dataclass
class Planned:
    offset: float  # seconds after the start of the run
    body: dict[str, Any]
    due: float = 0.0  # when the schedule wanted it sent (wall clock)
    sent: float = 0.0
    acked: float = 0.0
    status: int = 0
    receipt: float | None = None


def cpu_now(hub: HubProcess, sandbox: SandboxProcess) -> dict[str, dict[str, float]]:
    own = os.times()
    return {
        "hub": cpu_seconds(hub.pid),
        "sandbox": cpu_seconds(sandbox.pid),
        "bench": {"self": own.user + own.system},
        "machine": {"all": machine_busy()},
    }


def plan(
    rate: float,
    duration: float,
    mix: dict[str, float],
    followup_delay: float,
    prefix: str,
    seed: int = 7,
) -> list[Planned]:
    """The events of a run, each at its offset, reproducible for a seed."""
    rng = random.Random(seed)
    total = int(rate * duration)
    started: list[tuple[float, str]] = []  # (offset, client id), in order
    eligible = 0  # started[:eligible] were started at least followup_delay ago
    updated: set[str] = set()
    steps: dict[str, int] = {}
    out: list[Planned] = []
    kinds = list(mix)
    weights = [mix[k] for k in kinds]
    for i in range(total):
        offset = i / rate
        while eligible < len(started) and started[eligible][0] <= offset - followup_delay:
            eligible += 1
        kind = rng.choices(kinds, weights)[0]
        if kind != "started" and eligible == 0:
            kind = "started"
        if kind == "update":
            candidates = [
                c for _, c in started[max(0, eligible - 50) : eligible] if c not in updated
            ]
            if not candidates:
                kind = "step"
        event_id = f"{prefix}-e{i}"
        if kind == "started":
            client = f"{prefix}-c{len(started)}"
            started.append((offset, client))
            body = make_event(event_id, "journey_started", client)
        elif kind == "step":
            client = started[rng.randrange(eligible)][1]
            steps[client] = steps.get(client, 0) + 1
            body = make_event(
                event_id, "step_completed", client, step={"name": event_id, "type": "task"}
            )
        else:
            client = rng.choice(candidates)
            updated.add(client)
            body = make_event(event_id, "client_updated", client)
            body["client"]["name"] = UPDATED_NAME
            body["wedding"]["date"] = UPDATED_DATE
        out.append(Planned(offset, body))
    return out


def receipts(events: list[Planned], report: dict[str, Any]) -> None:
    """Fill each event's receipt time from the sandbox's records."""
    notes: dict[str, float | None] = {}
    for html_text, at in report["notes"].items():
        found = STEP_NAME.search(html_text)
        if found:
            notes[found.group(1)] = at
    contacts, jobs, links, puts = (report[k] for k in ("contacts", "jobs", "links", "puts"))
    for ev in events:
        body = ev.body
        kind = body["type"]
        if kind == "journey_started":
            job = jobs.get(body["journey_instance_id"])
            ev.receipt = links.get(job[0]) if job else None
        elif kind == "step_completed":
            ev.receipt = notes.get(body["id"])
        else:
            contact = contacts.get(body["client"]["id"])
            job = jobs.get(body["journey_instance_id"])
            times = [
                t
                for rid in (contact and contact[0], job and job[0])
                if rid
                for t in puts.get(rid, [])
                if t >= ev.sent
            ]
            # Both the contact and the job must have been updated.
            ev.receipt = max(times) if contact and job and len(times) >= 2 else None


def duplicates(report: dict[str, Any]) -> dict[str, int]:
    """External ids created more than once, by resource."""
    out: dict[str, int] = {}
    for key, n in report["creates"].items():
        resource, ext = key.split("|", 1)
        if ext != "None" and n > 1:
            out[resource] = out.get(resource, 0) + 1
    return out


# --- sending ------------------------------------------------------------------------------------


async def send_open_loop(
    events: list[Planned], send_batch: Any, batch: int, concurrency: int
) -> tuple[float, list[float]]:
    """Fire ``send_batch(group)`` at each group's planned time, without waiting for answers
    (at most ``concurrency`` in flight: the rest wait, and their wait counts from ``due``).
    Returns the start time and how late each task was started against the schedule."""
    semaphore = asyncio.Semaphore(concurrency)
    groups = [events[i : i + batch] for i in range(0, len(events), batch)]
    lateness: list[float] = []
    tasks: list[asyncio.Task[None]] = []
    start = time.time()
    clock0 = time.perf_counter()

    async def one(group: list[Planned]) -> None:
        async with semaphore:
            await send_batch(group)

    for group in groups:
        due = clock0 + group[-1].offset
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        lateness.append(max(0.0, time.perf_counter() - due))
        for ev in group:
            ev.due = start + group[-1].offset
        tasks.append(asyncio.create_task(one(group)))
    await asyncio.gather(*tasks)
    return start, lateness


def hub_sender(client: LoadClient, key: str) -> Any:
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}

    async def send(group: list[Planned]) -> None:
        payload = group[0].body if len(group) == 1 else [g.body for g in group]
        content = msgspec.json.encode(payload)
        sent = [0.0]

        def on_send() -> None:
            sent[0] = time.time()

        try:
            status, _ = await client.post("/v1/events", content, headers, on_send)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            status = -1
        acked = time.time()
        for ev in group:
            ev.sent, ev.acked, ev.status = sent[0] or acked, acked, status

    return send


def direct_sender(http: Any, api_base: str, api_key: str) -> Any:
    """The Tave plugin's push hook, called directly: what the push worker would call, with the
    vendor id map kept here from each push's records as the hub keeps it in its store."""
    from journeyhub.mapping import apply_mappings
    from journeyhub.model import Connection, DeliveryTask, JourneyEvent, Known, stable_id
    from journeyhub_tave import plugin

    connection = Connection(
        id="con_direct",
        tenant_id="ten_direct",
        vendor="tave",
        name="direct",
        direction="outbound",
        config={"api_base": api_base},
    )
    # What the kernel decodes from the connection and its credentials before a push.
    config = msgspec.convert(connection.config, plugin.TaveConfig)
    creds = plugin.TaveCredentials(api_key=api_key)
    known: dict[str, Known] = {}  # client id -> its vendor id map

    async def send(group: list[Planned]) -> None:
        for ev in group:
            event = msgspec.convert(ev.body, JourneyEvent)
            task = DeliveryTask(
                id=stable_id("dlv", "ten_direct", event.id, connection.id),
                tenant_id="ten_direct",
                connection_id=connection.id,
                vendor="tave",
                kind="event",
                order_key=event.client.id,
                sequence=0,
                event=event,
                mapped=apply_mappings(plugin.DEFAULT_FIELD_MAPPINGS, event),  # as the router does
            )
            ev.sent = time.time()
            try:
                result = await plugin.journeyhub_push(
                    task=task,
                    config=config,
                    creds=creds,
                    idempotency_key=task.idempotency_key,
                    http=http,
                    known=known.get(event.client.id, Known()),
                )
                known[event.client.id] = known.get(event.client.id, Known()).learn(result.records)
                ev.status = 202
            except Exception as exc:  # counted, reported
                ev.status = -1
                print(f"  direct push failed: {exc!r}")
            ev.acked = time.time()

    return send


def latencies(
    events: list[Planned], kind: str | None = None, from_due: bool = False
) -> list[float]:
    return [
        ev.receipt - (ev.due if from_due else ev.sent)
        for ev in events
        if ev.receipt is not None and (kind is None or ev.body["type"] == kind)
    ]


# --- the run --------------------------------------------------------------------------------------


async def baseline(
    sandbox: SandboxProcess, args: argparse.Namespace, mix: dict[str, float]
) -> dict[str, Any]:
    info = sandbox.info
    from journeyhub.vendor_http import VendorHttp

    out: dict[str, Any] = {}
    async with VendorHttp(timeout=10.0, connect_timeout=5.0, limit=200) as http:  # the hub's
        send = direct_sender(http, info["api_base"], info["api_key"])
        # Unloaded: one push at a time, same mix (follow-ups after their start).
        seq = plan(args.rate, args.baseline_events / args.rate, mix, 0.0, "base-seq", seed=11)
        own0, sb0 = os.times(), sum(cpu_seconds(sandbox.pid).values())
        for ev in seq:
            await send([ev])
        own1, sb1 = os.times(), sum(cpu_seconds(sandbox.pid).values())
        out["cpu_per_event"] = ((own1.user + own1.system) - (own0.user + own0.system)) / len(seq)
        out["sandbox_cpu_per_event"] = (sb1 - sb0) / len(seq)
        receipts(seq, await sandbox.aask("report"))
        out["unloaded"] = seq
        await sandbox.aask("reset")
        # Open loop at the run's rate and mix, as many in flight as the push worker allows (64).
        loaded = plan(
            args.rate, args.baseline_seconds, mix, args.followup_delay, "base-rate", seed=13
        )
        await send_open_loop(loaded, send, 1, 64)
        report = await sandbox.aask("report")
        receipts(loaded, report)
        out["at_rate"] = loaded
        out["at_rate_dupes"] = duplicates(report)
        await sandbox.aask("reset")
    return out


async def run(args: argparse.Namespace) -> int:
    mix = {"started": args.mix[0], "step": args.mix[1], "update": args.mix[2]}
    print(f"machine: {machine()}")
    print(
        f"load: {args.rate:g} events/s for {args.duration:g} s, mix started/step/update = "
        f"{args.mix}, {args.batch} event(s) per request, follow-ups >= {args.followup_delay:g} s "
        f"after their start"
    )
    sandbox = SandboxProcess("tave")
    hub: HubProcess | None = None
    try:
        print("baseline: the Tave plugin's push called directly (no hub) ...", flush=True)
        base = await baseline(sandbox, args, mix)

        hub = await HubProcess(log_level=args.log_level, keep=args.keep).start()
        print(f"hub: pid {hub.pid} on {hub.url}, data in {hub.data_dir}", flush=True)
        config: dict[str, Any] = {"api_base": sandbox.info["api_base"]}
        if args.tave_rate > 0:
            config["rate_limit_per_second"] = args.tave_rate
        async with httpx.AsyncClient(base_url=hub.url, timeout=30) as client:
            created = await client.post(
                "/v1/connections",
                headers={"authorization": f"Bearer {hub.admin_key}"},
                json={
                    "vendor": "tave",
                    "name": "studio crm",
                    "direction": "outbound",
                    "config": config,
                    "credentials": {"api_key": sandbox.info["api_key"]},
                },
            )
            if created.status_code != 201:
                raise RuntimeError(f"connection refused: {created.status_code} {created.text}")
            events = plan(args.rate, args.duration, mix, args.followup_delay, "run")
            costs0 = await hub.costs()
            scrape = cost_delta(costs0, await hub.costs())  # what a scrape costs itself
            costs0 = await hub.costs()
            cpu0 = cpu_now(hub, sandbox)
            print(f"sending {len(events)} events ...", flush=True)
            spy = None
            if args.py_spy:
                spy = start_py_spy(args.py_spy, hub.pid, args.duration, args.py_spy_out)
            loader = LoadClient(hub.url, size=args.max_in_flight)
            start, lateness = await send_open_loop(
                events, hub_sender(loader, hub.ingest_key), args.batch, 1_000_000
            )
            await loader.close()
            send_end = time.time()
            cpu1 = cpu_now(hub, sandbox)
            accepted = [ev for ev in events if ev.status == 202]
            # Drain: until every accepted event has its receipt, or the window closes.
            deadline = time.monotonic() + args.drain
            while True:
                report = await sandbox.aask("report")
                receipts(events, report)
                done = sum(1 for ev in accepted if ev.receipt is not None)
                if done >= len(accepted) or time.monotonic() > deadline:
                    break
                await asyncio.sleep(2.0)
            drain_end = time.time()
            backlog = await hub.stream_backlog()
            pending = hub.db_rows("select count(*) from tasks where state = 'pending'")[0][0]
            cpu2 = cpu_now(hub, sandbox)
            costs = cost_delta(costs0, await hub.costs(), scrape)
            deliveries = hub.db_rows(
                "select source_id, status, latency_ms, created_at from deliveries"
            )
        log_counts = hub.log_counts()
        if spy is not None:
            spy.wait(timeout=60)
    finally:
        if hub is not None:
            hub.stop()
        sandbox.stop()

    # --- report ---------------------------------------------------------------------------------
    sent = len(events)
    delivered = [ev for ev in accepted if ev.receipt is not None]
    lost = len(accepted) - len(delivered)
    dupes = duplicates(report)
    lat = latencies(events)
    print()
    print(
        f"sent {sent} events in {send_end - start:.1f} s "
        f"(offered {args.rate:g}/s, achieved {sent / max(1e-9, send_end - start):.1f}/s); "
        f"schedule lateness p99 {summary(lateness)['p99'] * 1000:.1f} ms"
    )
    refused = sent - len(accepted)
    print(
        f"accepted (202) {len(accepted)}, refused {refused}; "
        f"gateway answer time: {fmt_ms(summary([ev.acked - ev.sent for ev in accepted]))}"
    )
    print(
        f"delivered {len(delivered)}, lost/undelivered after {args.drain:g} s drain: {lost} "
        f"(hub backlog then: streams {backlog}, pending tasks {pending}); "
        f"duplicated external ids: {sum(dupes.values())} {dupes or ''}"
    )
    print(
        f"last receipt {max((ev.receipt or 0) for ev in events) - send_end:+.1f} s after the "
        f"last send; drain ended {drain_end - send_end:.1f} s after it"
    )
    print()
    print("HTTP send -> Tave sandbox receipt, through the hub:")
    print(f"  all              {fmt_ms(summary(lat))}")
    for kind in ("journey_started", "step_completed", "client_updated"):
        print(f"  {kind:16} {fmt_ms(summary(latencies(events, kind)))}")
    print(
        f"  from schedule    {fmt_ms(summary(latencies(events, from_due=True)))}"
        "  (counts the wait for a free connection: no coordinated omission)"
    )
    # Where the time went, from the hub's own delivery rows.
    by_source = {}
    for source_id, status, latency_ms, created_at in deliveries:
        if status == "delivered":
            at = datetime.fromisoformat(str(created_at))
            at = at if at.tzinfo else at.replace(tzinfo=UTC)
            by_source[source_id] = (at.timestamp(), (latency_ms or 0) / 1000)
    queued, pushing = [], []
    for ev in delivered:
        row = by_source.get(ev.body["id"])
        if row is not None:
            finished, push_s = row
            queued.append(finished - push_s - ev.acked)
            pushing.append(push_s)
    print("  breakdown (hub's delivery rows):")
    print(f"    gateway 202         {fmt_ms(summary([ev.acked - ev.sent for ev in delivered]))}")
    print(f"    202 -> push starts  {fmt_ms(summary(queued))}")
    print(f"    plugin push         {fmt_ms(summary(pushing))}")
    print()
    base_unloaded = latencies(base["unloaded"])
    base_rate = latencies(base["at_rate"])
    print("baseline: Tave plugin push called directly, send -> sandbox receipt:")
    print(f"  unloaded (1 at a time)      {fmt_ms(summary(base_unloaded))}")
    lost_base = sum(1 for ev in base["at_rate"] if ev.receipt is None)
    print(
        f"  open loop {args.rate:g}/s, {args.baseline_seconds:g} s {fmt_ms(summary(base_rate))}"
        f"  lost {lost_base}, dupes {sum(base['at_rate_dupes'].values())}"
    )
    hub_cpu = sum(cpu_delta(cpu0["hub"], cpu2["hub"]).values())
    handled = len(
        delivered
    )  # when some are undelivered, the hub also routed others: an upper bound
    print(
        f"CPU per event: hub {hub_cpu / max(1, handled) * 1000:.1f} ms (hub process + its "
        f"nats-server, sending + draining, / {handled} delivered); direct plugin push "
        f"{base['cpu_per_event'] * 1000:.1f} ms in the calling process; sandbox "
        f"{base['sandbox_cpu_per_event'] * 1000:.1f} ms"
    )
    per_event = {
        "hub_cpu_ms_per_event": hub_cpu / max(1, handled) * 1000,
        **{
            f"{k}_per_event": costs.get(k, 0.0) / max(1, handled)
            for k in ("store_transactions", "sql_statements", "bus_requests", "vendor_calls")
        },
    }
    bus = {
        k[4:]: round(v / max(1, handled), 2)
        for k, v in sorted(costs.items())
        if k.startswith("bus:")
    }
    print("cost per delivered event, counted in the hub process (/metrics):")
    for key, value in per_event.items():
        print(f"  {key:34} {value:8.2f}")
    print(f"  bus calls per event by kind         {bus}")
    h, bu, br = summary(lat), summary(base_unloaded), summary(base_rate)
    print(
        f"ratio hub/direct: p50 x{h['p50'] / bu['p50']:.1f}, p99 x{h['p99'] / bu['p99']:.1f} "
        f"(vs unloaded); p50 x{h['p50'] / br['p50']:.1f}, p99 x{h['p99'] / br['p99']:.1f} "
        f"(vs direct at the same rate)"
    )
    target = "met" if h["p99"] < 1.0 else "MISSED"
    print(f"target p99 < 1 s: {target}  (seed's 30 s: {'met' if h['p99'] < 30 else 'MISSED'})")
    print()
    window = send_end - start
    print(f"CPU seconds while sending ({window:.0f} s wall) and while draining:")
    for who in ("hub", "sandbox", "bench"):
        a, b = cpu_delta(cpu0[who], cpu1[who]), cpu_delta(cpu1[who], cpu2[who])
        parts = ", ".join(f"{k} {v:.1f}" for k, v in a.items() if v >= 0.05)
        print(
            f"  {who:8} sending: {parts} ({sum(a.values()) / window:.0%} of one core); "
            f"draining: {sum(b.values()):.1f}"
        )
    ours = [
        sum(cpu_delta(c0[w], c1[w]).values())
        for c0, c1 in ((cpu0, cpu1), (cpu1, cpu2))
        for w in ("hub", "sandbox", "bench")
    ]
    total_send = cpu1["machine"]["all"] - cpu0["machine"]["all"]
    total_drain = cpu2["machine"]["all"] - cpu1["machine"]["all"]
    print(
        f"  machine  sending: {total_send:.1f} of {window * (os.cpu_count() or 1):.0f} "
        f"core-seconds, other processes {total_send - sum(ours[:3]):.1f}; draining: "
        f"{total_drain:.1f}, other processes {total_drain - sum(ours[3:]):.1f}"
    )
    print(
        f"  sandbox answered {report['requests']} calls {report['by_route']}, "
        f"statuses {report['statuses']}; service time {fmt_ms(summary(report['service_ms']))}"
    )
    notable = {k: v for k, v in log_counts.items() if not k.startswith("info:delivered")}
    print(f"  hub log lines: {dict(notable)}")
    if args.py_spy:
        print("hub event-loop thread while sending (py-spy, inclusive):")
        for line in py_spy_top(args.py_spy_out, n=args.py_spy_top):
            print("  " + line)
    if args.json:
        write_json(
            args.json,
            {
                "rate": args.rate,
                "duration": args.duration,
                "sent": sent,
                "accepted": len(accepted),
                "delivered": len(delivered),
                "lost": lost,
                "duplicated": sum(dupes.values()),
                "latency": h,
                "baseline_unloaded": bu,
                "baseline_at_rate": br,
                **per_event,
                "bus_calls_per_event": bus,
                "baseline_direct_cpu_ms_per_event": base["cpu_per_event"] * 1000,
            },
        )
    return 0 if h["p99"] < 1.0 and lost == 0 and not dupes else 1


def write_json(path: str, figures: dict[str, Any]) -> None:
    Path(path).write_text(json.dumps(figures, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=200.0, help="events per second")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of sending")
    parser.add_argument("--batch", type=int, default=1, help="events per HTTP request")
    parser.add_argument(
        "--mix",
        type=lambda s: tuple(float(x) for x in s.split(",")),
        default=(0.5, 0.35, 0.15),
        help="started,step,update weights",
    )
    parser.add_argument("--followup-delay", type=float, default=2.0)
    parser.add_argument(
        "--tave-rate",
        type=float,
        default=2000.0,
        help="connection rate_limit_per_second; 0 keeps the plugin's 5/s",
    )
    parser.add_argument(
        "--drain", type=float, default=120.0, help="max seconds to wait after sending"
    )
    parser.add_argument(
        "--max-in-flight",
        type=int,
        default=256,
        help="HTTP connections to the gateway (requests in flight)",
    )
    parser.add_argument("--baseline-events", type=int, default=100)
    parser.add_argument("--baseline-seconds", type=float, default=10.0)
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--keep", action="store_true", help="keep the hub's data dir and log")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--py-spy", help="path of a py-spy binary: profile the hub while sending")
    parser.add_argument("--py-spy-out", default="/tmp/jh-bench-e2e-hub.pyspy.txt")
    parser.add_argument("--py-spy-top", type=int, default=60)
    parser.add_argument("--smoke", action="store_true", help="20/s for 5 s, short baseline")
    args = parser.parse_args()
    if args.smoke:
        args.rate, args.duration, args.drain = 20.0, 5.0, 30.0
        args.baseline_events, args.baseline_seconds, args.followup_delay = 20, 2.0, 1.0
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
