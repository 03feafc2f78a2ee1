"""The chaos run as a library (bench/chaos/run.py is its command line, and
tests/e2e/test_chaos_short.py its short version): the disruptions (``monkey``), one whole run
(``run``) and its report (``print_report``). See run.py for what a run does."""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from chaos_workload import (
    Options,
    Rig,
    count,
    dead_letter_outcomes,
    plan_events,
    replay_all,
    send_events,
    send_webhooks,
    store_progress,
    wait_settled,
)


@dataclass
class Chaos:
    worker_kills: int = 4
    nats_kill: bool = True
    pg_restart: bool = True
    span: float = 300.0  # seconds over which the disruptions are spread at the latest
    nats_down: float = 0.25  # share of the work done while the NATS node is down


def machine() -> str:
    import os
    import platform

    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"nproc={os.cpu_count()} cpu={model!r} python={platform.python_version()}"


async def monkey(rig: Rig, chaos: Chaos, total: int, stop: asyncio.Event, seed: int) -> None:
    """The disruptions, each at a share of the work done (or of ``span`` seconds)."""
    rng = random.Random(seed)
    schedule: list[tuple[float, str]] = []
    for i in range(chaos.worker_kills):
        schedule.append(((i + 1) / (chaos.worker_kills + 1) * 0.9, "kill_worker"))
    if chaos.nats_kill and len(rig.nats.nodes) > 1:
        schedule.append((0.15, "kill_nats"))
        schedule.append((0.15 + chaos.nats_down, "start_nats"))
    if chaos.pg_restart and rig.pg is not None:
        schedule.append((0.55, "restart_pg"))
    schedule.sort()
    started = time.monotonic()
    victim = None
    done = 0
    while schedule and not stop.is_set():
        share, action = schedule[0]
        with contextlib.suppress(Exception):
            progress = await store_progress(rig)
            done = progress["delivered"] + progress["triggers"] + progress["dead_total"]
        if done / max(1, total) < share and time.monotonic() - started < share * chaos.span:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
            continue
        schedule.pop(0)
        at = f"at {done}/{total} done"
        if action == "kill_worker":
            process = rng.choice(rig.workers)
            process.kill()
            rig.note(f"SIGKILL worker {process.index} (pid {process.pid}) {at}")
            await asyncio.sleep(rng.uniform(0.5, 3.0))
            await rig.restart(process)
            rig.note(f"worker {process.index} started again (pid {process.pid})")
        elif action == "kill_nats":
            victim = rng.choice(rig.nats.nodes)
            victim.kill()
            rig.note(f"SIGKILL nats node {victim.name} {at}")
        elif action == "start_nats" and victim is not None:
            await asyncio.to_thread(victim.start)
            rig.note(f"nats node {victim.name} started again {at}")
            victim = None
        elif action == "restart_pg" and rig.pg is not None:
            seconds = await asyncio.to_thread(rig.pg.restart)
            rig.note(f"PostgreSQL restarted ({seconds:.1f}s) {at}")
    if victim is not None:  # the run ended first: the cluster is whole again for the replay
        await asyncio.to_thread(victim.start)
        rig.note(f"nats node {victim.name} started again (end of run)")


async def check_processes(rig: Rig) -> list[str]:
    """Processes that died without being killed by us (a finding), started again."""
    found = []
    for process in rig.gateways + rig.workers:
        if not process.alive:
            found.append(f"{process.kind} {process.index} had exited on its own")
            await rig.restart(process)
    return found


async def run(
    options: Options,
    chaos: Chaos,
    *,
    settle_timeout: float,
    send_timeout: float,
    budget: float | None = None,
) -> dict[str, Any]:
    """One chaos run; the report as a dict (``ok`` says whether the goal was met). With
    ``budget`` (seconds), the waits end in time for the counting and the report: a task that
    never settles shows up in the report as lost, with its story, rather than as a timeout."""
    rig = Rig(options)
    report: dict[str, Any] = {
        "machine": machine(),
        "options": vars(options) | {},
        "chaos": vars(chaos) | {},
    }
    began = time.monotonic()
    # (counting and stopping take a few seconds, the 2 s pause after the replay among them)
    end_by = began + budget - 20 if budget is not None else float("inf")

    def waiting(timeout: float) -> float:
        return max(1.0, min(timeout, end_by - time.monotonic()))

    try:
        await rig.start()
        plan = plan_events(options.events, rig.prefix, options.seed, options.studios)
        rig.faults_on(options.fault_rate, options.seed)
        stop = asyncio.Event()
        total = options.events + options.webhooks
        chaos_task = asyncio.create_task(monkey(rig, chaos, total, stop, options.seed))
        t0 = time.monotonic()
        deadline = t0 + send_timeout
        (event_stats, (hook_stats, webhook_ids)) = await asyncio.gather(
            send_events(rig, plan, deadline), send_webhooks(rig, options.webhooks, deadline)
        )
        rig.note(
            f"sent: {options.events} events ({event_stats.requests} requests), "
            f"{options.webhooks} webhooks ({hook_stats.requests} requests)"
        )
        settled = await wait_settled(rig, options.events, options.webhooks, waiting(settle_timeout))
        processing = time.monotonic() - t0
        rig.note(f"settled under chaos after {processing:.0f}s: {settled}")
        stop.set()
        await chaos_task
        report["died_on_their_own"] = await check_processes(rig)

        rig.faults_off()
        before = await dead_letter_outcomes(rig)
        # Replay every dead letter; a task still in backoff when the faults went off may die
        # after a round (its last attempt under faults), so go round again, a few times.
        replayed = 0
        after_replay: dict[str, int] = {}
        for round_ in range(5):
            now = await replay_all(rig)
            replayed += now
            rig.note(f"faults off; replay round {round_ + 1}: {now} dead letter(s)")
            if now == 0 and after_replay and "timed_out" not in after_replay:
                break
            if time.monotonic() >= end_by:
                rig.note("out of time: counting what there is")
                break
            after_replay = await wait_settled(
                rig, options.events, options.webhooks, waiting(settle_timeout)
            )
        await asyncio.sleep(2.0)  # anything late would show now
        counted = await count(rig, plan, webhook_ids)
        outcome = await dead_letter_outcomes(rig)
        report.update(
            {
                "sent": {
                    "events": options.events,
                    "webhooks": options.webhooks,
                    "event_requests": event_stats.requests,
                    "event_answers": dict(event_stats.answers),
                    "event_send_seconds": round(event_stats.seconds, 1),
                    "webhook_requests": hook_stats.requests,
                    "webhook_answers": dict(hook_stats.answers),
                    "webhook_send_seconds": round(hook_stats.seconds, 1),
                    "refused": event_stats.refused + hook_stats.refused,
                },
                "processing_seconds_under_chaos": round(processing, 1),
                "settled_under_chaos": settled,
                "dead_lettered_under_chaos": before,
                "replayed": replayed,
                "after_replay": after_replay,
                "counted": counted,
                "dead_letters": outcome,
                "timeline": rig.events,
            }
        )
    finally:
        report["duration_seconds"] = round(time.monotonic() - began, 1)
        await rig.stop()
    c, d = report["counted"], report["dead_letters"]
    report["summary"] = {
        "events": {
            "sent": options.events,
            "delivered": c["events_delivered"],
            "lost": len(c["events_lost"]),
            "duplicated": sum(n - 1 for n in c["duplicate_creates"].values())
            + sum(n - 1 for n in c["duplicate_links"].values()),
        },
        "webhooks": {
            "sent": options.webhooks,
            "delivered": c["webhooks_delivered"],
            "lost": len(c["webhooks_lost"]),
            "duplicated": sum(n - 1 for n in c["duplicate_triggers_store"].values())
            + sum(n - 1 for n in c["duplicate_triggers_bus"].values()),
        },
        "dead_lettered": d["dead_letters"],
        "replayed": d["replayed"],
        "replayed_not_delivered": len(d["replayed_not_delivered"]),
        "out_of_order": len(c["notes_out_of_order"]),
        "duration_seconds": report["duration_seconds"],
    }
    s = report["summary"]
    report["ok"] = (
        s["events"]["lost"] == 0
        and s["webhooks"]["lost"] == 0
        and s["events"]["duplicated"] == 0
        and s["webhooks"]["duplicated"] == 0
        and s["dead_lettered"] == s["replayed"]
        and s["replayed_not_delivered"] == 0
        and s["out_of_order"] == 0
        and not report["sent"]["refused"]
    )
    return report


def print_explained(why: dict[str, Any], indent: str) -> None:
    for key, value in why.items():
        if key == "blocker":
            print(f"{indent}blocked by:")
            print_explained(value, indent + "    ")
        elif isinstance(value, list):
            print(f"{indent}{key}:")
            for item in value:
                print(f"{indent}  {item}")
        else:
            print(f"{indent}{key}: {value}")


def print_report(report: dict[str, Any]) -> None:
    s = report["summary"]
    print()
    print(f"machine: {report['machine']}")
    print("timeline:")
    for line in report["timeline"]:
        print(f"  {line}")
    print(f"{'':10} {'sent':>7} {'delivered':>10} {'lost':>6} {'duplicated':>11}")
    for kind in ("events", "webhooks"):
        k = s[kind]
        print(f"{kind:10} {k['sent']:7} {k['delivered']:10} {k['lost']:6} {k['duplicated']:11}")
    d = report["dead_letters"]
    print(
        f"dead-lettered {s['dead_lettered']} (by stage {d['by_stage']}), replayed "
        f"{s['replayed']}, replayed but not delivered {s['replayed_not_delivered']}"
    )
    print(f"dead-letter errors: {d['errors']}")
    print(f"faults injected: {report['counted']['faults_injected']}")
    print(
        f"tasks pushed to success more than once (redelivered while in flight): "
        f"{report['counted']['tasks_delivered_twice']}"
    )
    print(
        f"notes made out of their client's order: {s['out_of_order']} "
        f"{report['counted']['notes_out_of_order'][:10]}"
    )
    print(f"send: {report['sent']['event_answers']} / {report['sent']['webhook_answers']}")
    print(
        f"processing under chaos: {report['processing_seconds_under_chaos']}s; "
        f"whole run {s['duration_seconds']}s"
    )
    if report.get("died_on_their_own"):
        print(f"processes that died on their own: {report['died_on_their_own']}")
    c = report["counted"]
    for kind, left in c.get("left_in_queues", {}).items():
        print(f"left in the {kind} queue:")
        print_explained(left if isinstance(left, dict) else {"state": left}, "    ")
    for name in ("order_explained", "duplicates_explained"):
        for client, story in c.get(name, {}).items():
            print(f"{name.split('_')[0]}: {client}:")
            print_explained(story, "    ")
    for event_id, why in c.get("lost_explained", {}).items():
        print(f"lost {event_id}:")
        print_explained(why, "    ")
    for name in ("events_lost", "webhooks_lost"):
        if c[name]:
            print(f"{name}: {c[name][:10]}")
    for name in (
        "duplicate_creates",
        "duplicate_links",
        "duplicate_triggers_store",
        "duplicate_triggers_bus",
    ):
        if c[name]:
            print(f"{name}: {dict(list(c[name].items())[:10])}")
    if d["replayed_not_delivered"]:
        print(f"replayed_not_delivered: {d['replayed_not_delivered'][:10]}")
    print(
        "RESULT:",
        "ok (0 lost, 0 duplicated, every dead letter replayed)" if report["ok"] else "FAILED",
    )
