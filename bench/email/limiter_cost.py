"""bench/email/limiter_cost: what a shared rate budget costs per acquire, kept in the bus (NATS
KV, what ``journeyhub.resilience.budget.BusLedger`` does) or in the store (the ``leases``
table, the alternative measured here and not shipped), under a low and a high rate.

    uv run --frozen python bench/email/limiter_cost.py
    uv run --frozen python bench/email/limiter_cost.py \\
        --postgres postgresql+psycopg://postgres@127.0.0.1:5432/postgres     # + PostgreSQL

What runs, in this one process: a nats-server of its own (JetStream on disk), a SQLite store
in a temporary directory (and a scratch PostgreSQL database with ``--postgres``: created, then
dropped), and three "workers": three ``SharedLimiter`` for one connection, each with a ledger
of its own (its own NATS connection, or its own SQLAlchemy engine), as three worker processes
would have. The same limiter code runs on every ledger; the ``memory`` ledger (one dict in
this process) is the baseline: the limiter's own cost, with no round trip at all.

Loads (each for ``--seconds``):
- ``low``: 2 requests/s (Resend), each worker with one caller always waiting;
- ``high``: 2,000 requests/s (the e2e Tave setting), each worker with 8 callers each calling
  about 17 times a second (400 calls/s in all, as the e2e benchmark makes);
- ``trickle``: 2,000 requests/s, one caller per worker, about 133 calls/s each (the worst case
  for chunking: callers one at a time, spread out);
- with ``--busy-store``: the high load again while 200 write transactions/s go to the store
  beside it, as the push worker's outcome records would.

Per run: calls made, the most in any 1 s window (must be <= the limit), reservations, round
trips per acquire (bus: NATS requests; store: transactions and SQL statements), a
reservation's wall time (p50 / p95), and the process's CPU per acquire above the memory
baseline. All in one process on a shared 2-core machine: the CPU and latency figures include
the other workers' turns; compare them with each other, not with a quiet host.

Figures (2026-12-06, 5 s per run, ``--postgres ... --busy-store``; other sessions kept the
machine at a load average of 1.3 to 3.8):

| load | ledger | round trips / call | CPU above baseline / call | reservation p50 / p95 |
| --- | --- | --- | --- | --- |
| high (400 calls/s at 2,000/s) | bus (NATS KV) | 0.090 requests | 79 us | 1.75 / 3.5 ms |
| | store, SQLite | 0.041 transactions (0.124 with statements) | 163 us | 3.6 / 7.5 ms |
| | store, PostgreSQL | 0.039 transactions (0.116) | 177 us | 5.1 / 9.8 ms |
| high, beside 200 writes/s (SQLite) | bus | 0.093 | 88 us | 2.7 / 5.6 ms |
| | store, SQLite | 0.043 transactions | 118 us | 4.4 / 8.7 ms |
| high, beside 200 writes/s (PostgreSQL) | bus | 0.086 | 36 us | 2.8 / 6.0 ms |
| | store, PostgreSQL | 0.045 transactions | 84 us | 6.0 / 17.2 ms |
| trickle (3 x 133 calls/s, one at a time) | bus | 0.103 | 80 us | 2.1 / 4.3 ms |
| | store, SQLite | 0.046 transactions | 181 us | 4.1 / 10.1 ms |
| | store, PostgreSQL | 0.045 transactions | 178 us | 4.9 / 7.5 ms |
| low (2/s, 3 workers) | bus | 2.36 | 1.2 ms | 1.9 / 3.6 ms |
| | store, SQLite | 1.27 transactions (3.8) | 4.7 ms | 4.5 / 12.9 ms |
| | store, PostgreSQL | 1.27 transactions (3.8) | 4.6 ms | 8.8 / 37.9 ms |

Every run kept to the limit (most calls in any second: 2 of 2, at most 400 of 2,000). One
reservation alone (one worker, nothing else running) is one NATS request: 0.36 ms p50, 182 us
of CPU. The bus costs half the CPU of the store per call and answers in half the time; a store
reservation is a write transaction, which on SQLite queues behind the push worker's own
writes (the busy rows' figures mix the writer's CPU in: read them side by side only). At the
low rate both are negligible (1 to 5 ms of CPU per call at 2 calls/s). So: the bus.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

from journeyhub import metrics
from journeyhub.bus.embedded import EmbeddedNats
from journeyhub.bus.jetstream import Bus
from journeyhub.resilience.budget import BusLedger, Grant, State, conform, take
from journeyhub.resilience.limits import SharedLimiter
from journeyhub.secretbox import load_secret_box
from journeyhub.settings import Settings, load_settings
from journeyhub.store.db import migrate
from journeyhub.store.store import Store
from journeyhub.store.tables import Lease
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError, OperationalError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "chaos"))
from chaos_infra import scratch_database


class MemoryLedger:
    """The baseline: the budget in a dict shared by this process's limiters, no round trip."""

    def __init__(self, states: dict[str, State]) -> None:
        self.states = states
        self.round_trips = 0

    async def reserve(
        self,
        key: str,
        *,
        interval: float,
        lanes: int,
        want: int,
        count: int,
        lead: float = 0.0,
        avoid: Collection[int] = (),
    ) -> list[Grant]:
        now = time.time()
        state = conform(self.states.get(key, State(0.0, 0, [], 0)), interval, lanes, now)
        grants = take(
            state.until,
            interval=interval,
            lanes=lanes,
            want=want,
            count=count,
            at=now + lead,
            avoid=avoid,
        )
        for grant in grants:
            state.until[grant.lane] = grant.first + count * grant.step
        self.states[key] = state
        return grants


def memory_ledgers() -> list[MemoryLedger]:
    shared: dict[str, State] = {}
    return [MemoryLedger(shared) for _ in range(3)]


class StoreLedger:
    """The same budget in a ``leases`` row per connection: the state JSON in ``state``, a
    revision in ``holder``; read, then a conditional update naming that revision, in one
    transaction (SQLite refuses the write when another one committed since the read)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.round_trips = 0
        self.conflicts = 0

    async def reserve(
        self,
        key: str,
        *,
        interval: float,
        lanes: int,
        want: int,
        count: int,
        lead: float = 0.0,
        avoid: Collection[int] = (),
    ) -> list[Grant]:
        name = f"ratelimit:{key}"
        while True:
            try:
                async with self.store.session() as s:
                    row = await s.get(Lease, name)
                    raw = (row.state or {}) if row is not None else {}
                    revision = int(row.holder or 0) if row is not None else 0
                    stored = State(
                        float(raw.get("i", 0.0)),
                        int(raw.get("m", 0)),
                        [float(t) for t in raw.get("t", [])],
                        revision,
                    )
                    now = time.time()
                    state = conform(stored, interval, lanes, now)
                    grants = take(
                        state.until,
                        interval=interval,
                        lanes=lanes,
                        want=want,
                        count=count,
                        at=now + lead,
                        avoid=avoid,
                    )
                    for grant in grants:
                        state.until[grant.lane] = grant.first + count * grant.step
                    value = {"i": interval, "m": lanes, "t": state.until}
                    if row is None:
                        s.add(Lease(name=name, holder="1", expires_at=None, state=value))
                    else:
                        result = await s.execute(
                            update(Lease)
                            .where(Lease.name == name, Lease.holder == str(revision))
                            .values(holder=str(revision + 1), state=value)
                        )
                        if result.rowcount != 1:
                            raise _Conflict
                self.round_trips += 1
                return grants
            except (_Conflict, IntegrityError, OperationalError):
                self.round_trips += 1
                self.conflicts += 1


class _Conflict(Exception):
    pass


# --- loads ----------------------------------------------------------------------------------------


async def caller(limiter: SharedLimiter, stamps: list[float], until: float, pace: float) -> None:
    while time.time() < until:
        await limiter.acquire()
        stamps.append(time.time())
        if pace:
            await asyncio.sleep(pace)


def most_in_window(times: list[float], window: float = 1.0) -> int:
    ordered, most, start = sorted(times), 0, 0
    for end, at in enumerate(ordered):
        while at - ordered[start] >= window:
            start += 1
        most = max(most, end - start + 1)
    return most


def timed(ledger: Any, latencies: list[float]) -> None:
    """Note every reservation's wall time."""
    reserve = ledger.reserve

    async def reserve_timed(*args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        try:
            return await reserve(*args, **kwargs)
        finally:
            latencies.append(time.perf_counter() - began)

    ledger.reserve = reserve_timed


async def busy_writer(store: Store, until: float, per_second: float) -> int:
    """Small write transactions on the store, as the push worker's outcome records would."""
    n = 0
    while time.time() < until:
        async with store.session() as s:
            await s.execute(
                update(Lease).where(Lease.name == f"bench-busy:{n % 50}").values(holder=str(n))
            )
        n += 1
        await asyncio.sleep(1 / per_second)
    return n


LOADS = {  # name: (requests per second, callers per worker, pause between a caller's calls)
    "low": (2.0, 1, 0.0),
    "high": (2000.0, 8, 8 / 133),
    "trickle": (2000.0, 1, 1 / 133),
}


async def one_run(
    kind: str,
    ledgers: list[Any],
    load: str,
    seconds: float,
    busy: Store | None = None,
    busy_label: str = "",
) -> dict[str, Any]:
    requests, callers, pace = LOADS[load]
    key = f"con_bench{os.urandom(4).hex()}"
    latencies: list[float] = []
    for ledger in ledgers:
        timed(ledger, latencies)
    limiters = [SharedLimiter(ledger, key, requests, 1.0) for ledger in ledgers]
    for limiter in limiters:  # the bucket or the row exists, as in a running hub
        await limiter.acquire()
    stamps: list[float] = []
    trips0 = sum(ledger.round_trips for ledger in ledgers)
    sent0 = [ledger.bus.nc.stats["out_msgs"] for ledger in ledgers if kind == "bus"]
    tx0, st0 = metrics.store_transactions._value.get(), metrics.store_statements._value.get()
    latencies.clear()
    cpu0, began = time.process_time(), time.time()
    until = began + seconds
    tasks = [caller(lim, stamps, until, pace) for lim in limiters for _ in range(callers)]
    writer = [busy_writer(busy, until, 200)] if busy is not None else []
    done = await asyncio.gather(*tasks, *writer)
    written = done[-1] if busy is not None else 0  # the writer's transactions, one statement each
    elapsed, cpu = time.time() - began, time.process_time() - cpu0
    n = len(stamps)
    out = {
        "ledger": kind,
        "load": load + (f" +busy {busy_label}" if busy is not None else ""),
        "limit": requests,
        "calls": n,
        "calls_per_s": n / elapsed,
        "most_in_1s": most_in_window(stamps),
        "reservations": len(latencies),
        "round_trips": sum(ledger.round_trips for ledger in ledgers) - trips0,
        "reserve_p50_ms": statistics.median(latencies) * 1000 if latencies else 0.0,
        "reserve_p95_ms": (
            sorted(latencies)[int(0.95 * (len(latencies) - 1))] * 1000 if latencies else 0.0
        ),
        "cpu_us_per_call": cpu / max(1, n) * 1e6,
        "forfeited": sum(lim.forfeited for lim in limiters),
    }
    if kind == "bus":
        sent = [ledger.bus.nc.stats["out_msgs"] for ledger in ledgers]
        out["nats_requests"] = sum(a - b for a, b in zip(sent, sent0, strict=True))
    if kind.startswith("store"):
        out["transactions"] = metrics.store_transactions._value.get() - tx0 - written
        out["statements"] = metrics.store_statements._value.get() - st0 - written
    return out


# --- the rig --------------------------------------------------------------------------------------


async def stores(settings: Settings, count: int) -> list[Store]:
    await asyncio.to_thread(migrate, settings)
    return [Store(settings, load_secret_box(settings)) for _ in range(count)]


async def run(args: argparse.Namespace) -> None:
    root = Path(tempfile.mkdtemp(prefix="jh-limiter-cost-"))
    nats = EmbeddedNats(root / "nats").start()
    results: list[dict[str, Any]] = []
    try:
        base = load_settings({}, data_dir=root / "data", nats_url=nats.url)
        targets: list[tuple[str, Settings]] = [("store-sqlite", base)]
        pg = contextlib.ExitStack()
        if args.postgres:
            url = pg.enter_context(scratch_database(args.postgres, "jh_limiter_cost"))
            targets.append(
                ("store-postgres", load_settings({}, data_dir=root / "pg", database_url=url))
            )
        with pg:
            for load in args.loads:
                results.append(await one_run("memory", memory_ledgers(), load, args.seconds))
                buses = [await Bus(base, nats.url).connect() for _ in range(3)]
                try:
                    results.append(
                        await one_run("bus", [BusLedger(b) for b in buses], load, args.seconds)
                    )
                    for kind, settings in targets:
                        opened = await stores(settings, 3)
                        try:
                            ledgers = [StoreLedger(s) for s in opened]
                            results.append(await one_run(kind, ledgers, load, args.seconds))
                            if args.busy_store and load == "high":
                                # The same three ledgers again, beside 200 store writes/s.
                                label = kind.removeprefix("store-")
                                for again, ledgers in (
                                    ("memory", memory_ledgers()),
                                    ("bus", [BusLedger(b) for b in buses]),
                                    (kind, [StoreLedger(s) for s in opened]),
                                ):
                                    results.append(
                                        await one_run(
                                            again, ledgers, load, args.seconds, opened[0], label
                                        )
                                    )
                        finally:
                            for s in opened:
                                await s.close()
                finally:
                    for b in buses:
                        await b.close()
    finally:
        nats.stop()
        shutil.rmtree(root, ignore_errors=True)
    report(results, args)


def report(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    baseline = {r["load"]: r["cpu_us_per_call"] for r in results if r["ledger"] == "memory"}
    print(f"3 workers (one process), {args.seconds:g} s per run; CPU above the memory baseline")
    head = (
        f"{'ledger':15} {'load':18} {'calls/s':>8} {'max/1s':>7} {'reserv.':>7} "
        f"{'trips/call':>10} {'tx+stmt/call':>12} {'reserve p50/p95 ms':>19} "
        f"{'CPU us/call':>12} {'+ledger':>8}"
    )
    print(head)
    for r in results:
        sql = ""
        if "transactions" in r:
            sql = f"{(r['transactions'] + r['statements']) / max(1, r['calls']):.3f}"
        extra = r["cpu_us_per_call"] - baseline.get(r["load"], 0.0)
        print(
            f"{r['ledger']:15} {r['load']:18} {r['calls_per_s']:8.1f} "
            f"{r['most_in_1s']:>4}/{r['limit']:<4g}{r['reservations']:>5} "
            f"{r['round_trips'] / max(1, r['calls']):10.3f} {sql:>12} "
            f"{r['reserve_p50_ms']:9.2f} /{r['reserve_p95_ms']:7.2f} "
            f"{r['cpu_us_per_call']:12.0f} {extra:8.0f}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--loads", nargs="+", default=list(LOADS), choices=list(LOADS))
    parser.add_argument("--postgres", help="a PostgreSQL server URL: also a scratch database")
    parser.add_argument(
        "--busy-store", action="store_true", help="the high load again beside 200 store writes/s"
    )
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
