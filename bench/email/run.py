"""bench/email: 10,000 email_requested events → hub → Resend sandbox at 2 requests/s.

    uv run --frozen python bench/email/run.py              # 10,000 emails
    uv run --frozen python bench/email/run.py --smoke      # 1,000 emails
    uv run --frozen python bench/email/run.py --workers 3  # 3 worker processes

What runs: a real ``journeyhub serve`` process (gateway, router, push worker, embedded
nats-server, SQLite); or, with ``--workers N``, ``journeyhub gateway`` and N ``journeyhub
worker`` processes sharing a nats-server of their own and the one SQLite store (the workers
share the connection's rate budget through the bus: N of them must not send more than one
would, nor take longer); a Resend sandbox in its own process with Resend's default limit
(``rate_limit=2, per_seconds=1``; a 3rd call inside any 1 s window is answered 429), and this
load generator, which sends the events (one distinct client each, ``data.template`` naming a
template of the connection) as JSON arrays of ``--array`` (500) to ``POST /v1/events`` as fast
as the gateway answers, ``--concurrency`` requests in flight.

Wall time = the sandbox's ``created_at`` of the email that made the N-th distinct recipient -
``time.time()`` just before the first events request. Lost = events with no email; duplicated
= the sandbox's ``duplicates`` (an email whose task tag it had already accepted); 429-refused
= the sandbox's ``refused_429``; API calls = the sandbox's ``requests``. With workers, also
the work split (delivered tasks per worker, from their logs) and the calls' spacing.

Baseline: the floor set by the vendor, N / 100 emails per batch call / 2 calls per second
(50 s for 10,000), and the kernel's own floor with its 0.95 safety factor on the limiter
(calls spaced 1 / (2 x 0.95) s apart: 99 gaps = 52.1 s for 100 calls).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import os
import shutil
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "chaos"))
from chaos_infra import JhProcess
from harness import (
    HubProcess,
    SandboxProcess,
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
from journeyhub.bus.embedded import EmbeddedNats

BATCH = 100  # Resend's POST /emails/batch maximum
SAFETY = 0.95  # core/src/journeyhub/resilience/limits.py


class SplitHub(HubProcess):
    """``journeyhub gateway`` + ``workers`` x ``journeyhub worker`` on a nats-server started
    here and one SQLite store (a shared data dir: the same store and secret key), each
    process stopped by its pid. Stands in for ``HubProcess`` (one ``journeyhub serve``)."""

    def __init__(self, workers: int, log_level: str = "info", keep: bool = False) -> None:
        super().__init__(log_level=log_level, keep=keep)
        self.workers = workers
        self.nats: EmbeddedNats | None = None
        self.gateway: JhProcess | None = None
        self.worker_processes: list[JhProcess] = []

    async def start(self, timeout: float = 60.0) -> SplitHub:
        await self.provision()
        self.nats = await asyncio.to_thread(EmbeddedNats(self.root / "nats").start)
        env = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEYHUB_")}
        env.update(
            {
                "JOURNEYHUB_DATA_DIR": str(self.data_dir),
                "JOURNEYHUB_NATS_URL": self.nats.url,
                "JOURNEYHUB_LOG_FORMAT": "json",
                "JOURNEYHUB_LOG_LEVEL": self.log_level,
            }
        )
        logs = self.root / "logs"
        logs.mkdir(exist_ok=True)
        # The gateway first: it provisions the streams, so the workers find them made.
        self.gateway = JhProcess("gateway", env, logs)
        await asyncio.to_thread(self.gateway.start, timeout)
        assert self.gateway.port is not None
        self.port, self.url = self.gateway.port, self.gateway.url
        self.worker_processes = [JhProcess("worker", env, logs, i) for i in range(self.workers)]
        await asyncio.gather(*(asyncio.to_thread(w.start, timeout) for w in self.worker_processes))
        return self

    def labelled_pids(self) -> list[tuple[str, int]]:
        found = [
            (f"{p.kind}", p.pid)
            for p in [self.gateway, *self.worker_processes]
            if p is not None and p.pid is not None
        ]
        if self.nats is not None and self.nats.process is not None:
            found.append(("nats-server", self.nats.process.pid))
        return found

    @property
    def pid(self) -> int:  # the one to profile: the first worker
        pid = self.worker_processes[0].pid
        assert pid is not None
        return pid

    def nats_url(self) -> str | None:
        return self.nats.url if self.nats is not None else None

    def log_counts(self) -> Counter[str]:
        counts: Counter[str] = Counter()
        for process in [self.gateway, *self.worker_processes]:
            if process is not None:
                counts.update(count_events(process.log_text()))
        return counts

    def work_split(self) -> dict[str, int]:
        """Delivered tasks per worker process, from its log."""
        return {
            f"worker-{p.index}": count_events(p.log_text()).get("info:delivered", 0)
            for p in self.worker_processes
        }

    def stop(self) -> None:
        for process in [*self.worker_processes, self.gateway]:
            if process is not None:
                process.stop()
        if self.nats is not None:
            self.nats.stop()
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)


def count_events(text: str) -> Counter[str]:
    """How many log lines of each level and event name in ``text`` (JSON lines)."""
    counts: Counter[str] = Counter()
    for line in text.splitlines():
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            counts[f"{record.get('level', '?')}:{record.get('event', '?')}"] += 1
    return counts


def pids_of(hub: HubProcess) -> list[tuple[str, int]]:
    return hub.labelled_pids() if isinstance(hub, SplitHub) else [("serve", hub.pid)]


def cpu_of(hub: HubProcess) -> dict[str, float]:
    """CPU seconds of every process of the hub (and their children), by kind."""
    total: dict[str, float] = {}
    for label, pid in pids_of(hub):
        for name, seconds in cpu_seconds(pid).items():
            key = label if name == "self" else name
            total[key] = total.get(key, 0.0) + seconds
    return total


async def run(args: argparse.Namespace) -> int:
    n = args.emails
    print(f"machine: {machine()}")
    print(
        f"load: {n} email_requested events (distinct clients) in arrays of {args.array}, "
        f"{args.concurrency} request(s) in flight; Resend sandbox limit "
        f"{args.limit} requests / {args.per_seconds:g} s"
    )
    sandbox = SandboxProcess("resend", rate_limit=args.limit, per_seconds=args.per_seconds)
    hub: HubProcess | None = None
    try:
        if args.workers:
            hub = await SplitHub(args.workers, log_level=args.log_level, keep=args.keep).start()
            print(
                f"hub: gateway + {args.workers} worker(s), pids {[p for _, p in pids_of(hub)]} on "
                f"{hub.url}, "
                f"data in {hub.data_dir}",
                flush=True,
            )
        else:
            hub = await HubProcess(log_level=args.log_level, keep=args.keep).start()
            print(f"hub: pid {hub.pid} on {hub.url}, data in {hub.data_dir}", flush=True)
        async with httpx.AsyncClient(base_url=hub.url, timeout=60) as client:
            created = await client.post(
                "/v1/connections",
                headers={"authorization": f"Bearer {hub.admin_key}"},
                json={
                    "vendor": "resend",
                    "name": "mail",
                    "direction": "outbound",
                    "config": {
                        "from_address": "Studio <hello@example.com>",
                        "api_base": sandbox.info["url"],
                        "templates": {
                            "welcome": {
                                "subject": "Welcome {{ client.first_name }}",
                                "html": "<p>See you at {{ wedding.venue.name }}</p>",
                            }
                        },
                    },
                    "credentials": {"api_key": sandbox.info["api_key"]},
                },
            )
            if created.status_code != 201:
                raise RuntimeError(f"connection refused: {created.status_code} {created.text}")
            events = [
                make_event(
                    f"mail-e{i}", "email_requested", f"mail-c{i}", data={"template": "welcome"}
                )
                for i in range(n)
            ]
            arrays = [
                msgspec.json.encode(events[i : i + args.array]) for i in range(0, n, args.array)
            ]
            headers = {
                "authorization": f"Bearer {hub.ingest_key}",
                "content-type": "application/json",
            }
            semaphore = asyncio.Semaphore(args.concurrency)
            answers: list[tuple[int, float]] = []

            gateway_429 = [0]

            async def post(body: bytes) -> None:
                # The gateway's per-tenant events limit answers 429 + Retry-After (nothing
                # stored): wait and send the same events again, as a client should.
                async with semaphore:
                    while True:
                        began = time.time()
                        answer = await client.post("/v1/events", content=body, headers=headers)
                        answers.append((answer.status_code, time.time() - began))
                        if answer.status_code != 429:
                            return
                        gateway_429[0] += 1
                        await asyncio.sleep(float(answer.headers.get("retry-after", "1")))

            cpu0, sb0, busy0 = cpu_of(hub), cpu_seconds(sandbox.pid), machine_busy()
            own0 = os.times()
            spy = None
            if args.py_spy:
                spy = start_py_spy(args.py_spy, hub.pid, args.py_spy_seconds, args.py_spy_out)
            first_sent = time.time()
            await asyncio.gather(*(post(body) for body in arrays))
            ingest_done = time.time()
            cpu1 = cpu_of(hub)
            print(
                f"ingested {n} events in {ingest_done - first_sent:.2f} s "
                f"({len(arrays)} arrays, {gateway_429[0]} answered 429 by the gateway's "
                f"events limit and sent again; statuses {dict(Counter(s for s, _ in answers))}, "
                f"answer time {fmt_ms(summary([t for _, t in answers]))})",
                flush=True,
            )
            deadline = time.monotonic() + args.timeout
            last_print = time.monotonic()
            while time.monotonic() < deadline:
                accepted = await sandbox.aask("count")
                if accepted >= n:
                    break
                if time.monotonic() - last_print > 10:
                    print(
                        f"  {time.time() - first_sent:5.0f} s: {accepted} emails accepted",
                        flush=True,
                    )
                    last_print = time.monotonic()
                await asyncio.sleep(0.25)
            await asyncio.sleep(args.settle)  # late duplicates, if any, would land here
            cpu2, sb2, busy2 = cpu_of(hub), cpu_seconds(sandbox.pid), machine_busy()
            own2 = os.times()
            report = await sandbox.aask("report")
            statuses = dict(hub.db_rows("select status, count(*) from deliveries group by status"))
            backlog = await hub.stream_backlog()
        log_counts = hub.log_counts()
        split = hub.work_split() if isinstance(hub, SplitHub) else {}
        delivered_at = hub.db_rows(
            "select created_at from deliveries where status = 'delivered' order by id"
        )
        if spy is not None:
            spy.wait(timeout=120)
    finally:
        if hub is not None:
            hub.stop()
        sandbox.stop()

    # --- report ---------------------------------------------------------------------------------
    wanted = {e["client"]["email"] for e in events}
    seen: set[str] = set()
    nth_at = math.nan
    for to, created_at, _tags in sorted(report["emails"], key=lambda e: e[1]):
        if to in wanted and to not in seen:
            seen.add(to)
            if len(seen) == n:
                nth_at = datetime.fromisoformat(created_at).timestamp()
    counters = report["counters"]
    calls = [c for c in report["calls"] if c[3].startswith("/emails")]
    ok_calls = [c for c in calls if c[4] == 200]
    starts = sorted(c[0] for c in calls)
    ok_starts = sorted(c[0] for c in ok_calls)
    gaps = [b - a for a, b in itertools.pairwise(ok_starts)]
    sizes = Counter(c[5] for c in ok_calls)
    lost = n - len(seen)
    wall = nth_at - first_sent
    floor = n / BATCH / (args.limit / args.per_seconds)
    kernel_floor = (math.ceil(n / BATCH) - 1) / (SAFETY * args.limit / args.per_seconds)
    print()
    print(f"wall time, first event sent -> {n}th distinct email accepted: {wall:.1f} s")
    print(
        f"  lost {lost}, duplicated {counters['duplicates']}, 429-refused "
        f"{counters['refused_429']}, API calls {counters['requests']} "
        f"({len(ok_calls)} accepted: batch sizes {dict(sorted(sizes.items()))})"
    )
    if starts:
        print(
            f"  first API call {starts[0] - first_sent:.2f} s after the first event was sent "
            f"(ingest took {ingest_done - first_sent:.2f} s); last accepted call at "
            f"{ok_starts[-1] - first_sent:.1f} s"
        )
    if calls:
        print(
            f"  most calls in any {args.per_seconds:g} s window (the sandbox's count): "
            f"{most_in_window(starts, args.per_seconds)} (limit {args.limit})"
        )
    if gaps:
        print(
            f"  gaps between accepted calls: min {min(gaps):.3f} s, "
            f"p50 {summary(gaps)['p50']:.3f} s, "
            f"p95 {summary(gaps)['p95']:.3f} s, max {max(gaps):.3f} s, "
            f"sum above {1 / (SAFETY * args.limit):.3f} s: "
            f"{sum(max(0.0, g - 1 / (SAFETY * args.limit)) for g in gaps):.1f} s"
        )
    if args.timeline and ok_starts:
        print("  API calls (s after the first event: emails in the call, status):")
        line = []
        for c in sorted(calls):
            line.append(f"{c[0] - first_sent:6.2f}:{c[5]}{'' if c[4] == 200 else '/' + str(c[4])}")
        for i in range(0, len(line), 10):
            print("   " + " ".join(line[i : i + 10]))
    print(
        f"baseline: vendor floor {n} / {BATCH} per call / {args.limit / args.per_seconds:g} "
        f"calls/s = {floor:.1f} s; the kernel's own floor with its {SAFETY} safety factor "
        f"{kernel_floor:.1f} s"
    )
    print(
        f"ratio to the vendor floor: x{wall / floor:.3f}; target <= 55 s: "
        f"{'met' if wall <= 55 else 'MISSED'}"
    )
    hub_cpu = cpu_delta(cpu0, cpu2)
    print(
        f"hub CPU: {sum(cpu_delta(cpu0, cpu1).values()):.1f} s during ingest, "
        f"{sum(hub_cpu.values()):.1f} s in all "
        f"({', '.join(f'{k} {v:.1f}' for k, v in hub_cpu.items())})"
    )
    generator = (own2.user + own2.system) - (own0.user + own0.system)
    mine = sum(hub_cpu.values()) + sum(cpu_delta(sb0, sb2).values()) + generator
    print(
        f"machine: {busy2 - busy0:.1f} core-seconds used during the run, of which other "
        f"processes (not the hub, its nats-server, the sandbox or this generator) about "
        f"{busy2 - busy0 - mine:.1f}; hub CPU per email "
        f"{sum(hub_cpu.values()) / n * 1000:.1f} ms"
    )
    print(f"hub deliveries by status: {statuses}; streams at the end: {backlog}")
    if split:
        print(f"work split (delivered tasks per worker, from their logs): {split}")
    notable = {k: v for k, v in log_counts.items() if not k.startswith("info:delivered")}
    print(f"hub log lines: {dict(notable)}")
    if delivered_at:
        # The hub's own record of each email: when its delivery row was written (after the call).
        stamps = [datetime.fromisoformat(str(r[0])) for r in delivered_at]
        stamps = [s if s.tzinfo else s.replace(tzinfo=UTC) for s in stamps]
        secs = [s.timestamp() - first_sent for s in stamps]
        print(f"hub delivery rows written: first at {min(secs):.1f} s, last at {max(secs):.1f} s")
    if args.py_spy:
        print(f"hub event-loop thread, first {args.py_spy_seconds:g} s (py-spy, inclusive):")
        for line in py_spy_top(args.py_spy_out, n=args.py_spy_top):
            print("  " + line)
    if args.json:
        write_json(
            args.json,
            {
                "workers": args.workers,
                "split": split,
                "emails": n,
                "wall_s": wall,
                "lost": lost,
                "duplicated": counters["duplicates"],
                "refused_429": counters["refused_429"],
                "api_calls": counters["requests"],
                "floor_s": floor,
                "ratio": wall / floor,
                "first_sent": first_sent,
                "calls": [[c[0], c[4], c[5]] for c in sorted(calls)],  # (start, status, emails)
            },
        )
    good = wall <= 55 and lost == 0 and counters["duplicates"] == 0
    return 0 if good else 1


def most_in_window(times: list[float], window: float) -> int:
    """The most of ``times`` inside any window of ``window`` seconds."""
    ordered, most, start = sorted(times), 0, 0
    for end, at in enumerate(ordered):
        while at - ordered[start] >= window:
            start += 1
        most = max(most, end - start + 1)
    return most


def write_json(path: str, figures: dict[str, Any]) -> None:
    Path(path).write_text(json.dumps(figures, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--emails", type=int, default=10_000)
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="gateway + N worker processes (0: one journeyhub serve)",
    )
    parser.add_argument("--array", type=int, default=500, help="events per HTTP request")
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight")
    parser.add_argument("--limit", type=int, default=2, help="sandbox requests per window")
    parser.add_argument("--per-seconds", type=float, default=1.0, help="sandbox window")
    parser.add_argument("--timeout", type=float, default=300.0, help="max seconds to wait")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds to wait after the last")
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--keep", action="store_true", help="keep the hub's data dir and log")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--py-spy", help="path of a py-spy binary: profile the hub")
    parser.add_argument("--py-spy-seconds", type=float, default=40.0)
    parser.add_argument("--py-spy-out", default="/tmp/jh-bench-email-hub.pyspy.txt")
    parser.add_argument("--py-spy-top", type=int, default=60)
    parser.add_argument("--timeline", action="store_true", help="print every API call")
    parser.add_argument("--smoke", action="store_true", help="1,000 emails")
    args = parser.parse_args()
    if args.smoke:
        args.emails, args.timeout = 1000, 120.0
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(asyncio.run(run(args)))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
