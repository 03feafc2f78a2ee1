"""Ingest benchmark: signed Stripe webhooks through the whole ingress, against a bare Litestar
no-op POST endpoint on the same server settings, in one run.

    uv run --frozen python bench/ingest/run.py                # the whole run
    uv run --frozen python bench/ingest/run.py --short                         # smoke run
    uv run --frozen python bench/ingest/run.py --duration 20 --rates 800,1000,1200,1500

It starts everything itself under a temporary directory: its own nats-server (JetStream on
disk), the store, a tenant, an admin key, a Stripe connection with a webhook secret, the
worker (``journeyhub worker``: it turns every webhook into a trigger while the load runs and
competes for the CPU, as in production), the gateway (``journeyhub gateway``, or N processes of
bench/ingest/serve_app.py sharing the port with SO_REUSEPORT), and the bare endpoint on the
same uvicorn settings and process count. wrk (C) makes the load; wrk's Lua has no HMAC, so
the signed requests (one distinct Stripe event id each, timestamps inside Stripe's 300 s
tolerance) are generated just before each run and replayed by webhooks.lua.

Three measurements, one after the other on the same processes:

1. saturation: the bare endpoint, then the gateway, each as fast as wrk's connections go
   (the worker running meanwhile): accepted/s, their ratio, CPU µs per request per process;
2. sustained rate: webhooks offered at a fixed rate (webhooks.lua paces wrk: wrk 4 has no
   ``-R``) for ``--step-seconds``, while the inbound stream's backlog (not yet delivered + not
   yet acknowledged by the worker) is sampled every 0.5 s; a rate is sustained when wrk got
   it (>= 97 %, all answered 2xx) and the backlog did not grow (its slope over the step under
   2 % of the rate, and under one second of webhooks at the end). The rate steps up by
   ``--rate-factor`` from ``--rate-start`` until one is not sustained, then the midpoint is
   tried once; the highest sustained rate is the result. After each step the worker drains.
   The worker's CPU and its store and bus calls per webhook (its own counters, through a
   ``PROMETHEUS_MULTIPROC_DIR`` of its own) are reported per step;
3. nothing lost: once the worker has drained everything, every stored webhook is one trigger
   on the bus and one row in the store, none went to the dead letters, and no accepted request
   was a duplicate.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
LUA = HERE / "webhooks.lua"
SERVE_APP = HERE / "serve_app.py"
# The targets of the delivery core's cost issue, on this 2-core machine.
TARGET_RATIO = 0.45  # gateway accepted/s over the bare endpoint's, same run
TARGET_SUSTAINED = 1000.0  # webhooks/s offered with the backlog not growing
TARGET_WORKER_MS = 0.5  # worker CPU per webhook
WRK_MISSING = """wrk is not installed. It is the load generator of this benchmark (C, cheap enough
to leave the CPU to the server). Install it with:

    sudo apt-get update && sudo apt-get install -y wrk      # Debian / Ubuntu
    brew install wrk                                        # macOS
"""
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- small helpers -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """utime + stime of a live process (0 once it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def busy_seconds() -> float:
    """CPU seconds all processes of the machine have used (every core, from /proc/stat)."""
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / CLK_TCK


def machine() -> dict[str, Any]:
    model = "?"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.popen.pid


@dataclass
class Phase:
    name: str
    requests: int = 0
    accepted: int = 0  # 2xx
    non_2xx: int = 0
    socket_errors: int = 0
    seconds: float = 0.0
    rate: float = 0.0
    p50_ms: float = 0.0
    p90_ms: float = 0.0
    p99_ms: float = 0.0
    p999_ms: float = 0.0
    max_ms: float = 0.0
    exhausted: bool = False
    cpu_percent: dict[str, float] = field(default_factory=dict)
    cpu_us_per_request: dict[str, float] = field(default_factory=dict)


# --- the signed Stripe webhooks ------------------------------------------------------------------


def stripe_template() -> tuple[str, str, str]:
    """A realistic ``payment_intent.succeeded`` event, pretty-printed as Stripe sends it,
    with placeholders for the event id and the PaymentIntent id."""
    from journeyhub_stripe.sandbox import StripeSandbox, new_id, payment_intent

    intent = payment_intent(185_000, customer=new_id("cus"), receipt_email="ava.noah@example.com")
    event = StripeSandbox().emit("payment_intent.succeeded", intent)
    event_id, intent_id = event["id"], intent["id"]
    text = json.dumps(event, indent=2)
    return text, event_id, intent_id


def write_requests(path: Path, count: int, secret: str, tag: str) -> int:
    """``count`` lines ``<Stripe-Signature>\\t<body with \\n written as \\x01>``, each a distinct
    event signed now. Returns the body size in bytes."""
    from journeyhub_stripe.sandbox import StripeSandbox

    template, event_id, intent_id = stripe_template()
    timestamp = int(time.time())
    size = 0
    with path.open("w", encoding="utf-8") as out:
        for i in range(count):
            unique = f"{tag}{i:016d}"  # 24 characters, as Stripe's ids
            body = template.replace(event_id, f"evt_{unique}").replace(intent_id, f"pi_{unique}")
            raw = body.encode()
            size = len(raw)
            header = StripeSandbox.signature_header(raw, [secret], timestamp)
            out.write(header + "\t" + body.replace("\n", "\x01") + "\n")
    return size


# --- wrk ------------------------------------------------------------------------------------------


def run_wrk(
    args: argparse.Namespace,
    url: str,
    requests_file: Path,
    mode: str,
    seconds: float,
    watch: dict[str, int],
    rate: float | None = None,
) -> tuple[dict[str, Any], dict[str, float]]:
    """Run wrk once (paced at ``rate`` requests/s when given); return its result and the CPU %
    (of one core) each watched process used."""
    command = [
        "wrk",
        "-t",
        str(args.threads),
        "-c",
        str(args.connections),
        "-d",
        f"{seconds:g}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA),
        url,
        "--",
        str(requests_file),
        mode,
        str(args.threads),
    ]
    before = {name: cpu_seconds(pid) for name, pid in watch.items()}
    busy_before = busy_seconds()
    started = time.monotonic()
    env = {**os.environ, "WEBHOOKS_RATE": f"{rate:g}"} if rate else None
    wrk = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True, env=env
    )
    set_nice(wrk.pid, args.nice)
    _, status, usage = os.wait4(wrk.pid, 0)
    wall = time.monotonic() - started
    after = {name: cpu_seconds(pid) for name, pid in watch.items()}
    busy = busy_seconds() - busy_before
    out = wrk.stdout.read().decode() if wrk.stdout else ""
    err = wrk.stderr.read().decode() if wrk.stderr else ""
    wrk.returncode = os.waitstatus_to_exitcode(status)
    lines = [line for line in out.splitlines() if line.startswith("WRK_RESULT ")]
    if wrk.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({wrk.returncode}):\n{out}\n{err}")
    cpu = {name: 100 * (after[name] - before[name]) / wall for name in watch}
    cpu["wrk"] = 100 * (usage.ru_utime + usage.ru_stime) / wall
    # Whatever else ran on the machine meanwhile (other jobs, the kernel): figures taken while
    # this is high are not the machine's.
    cpu["other"] = max(0.0, 100 * busy / wall - sum(cpu.values()))
    return json.loads(lines[-1].removeprefix("WRK_RESULT ")), cpu


def to_phase(name: str, result: dict[str, Any], cpu: dict[str, float]) -> Phase:
    seconds = result["duration_us"] / 1e6
    socket_errors = sum(
        result[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts")
    )
    accepted = result["requests"] - result["status_errors"]
    return Phase(
        name=name,
        requests=result["requests"],
        accepted=accepted,
        non_2xx=result["status_errors"],
        socket_errors=socket_errors,
        seconds=seconds,
        rate=accepted / seconds if seconds else 0.0,
        p50_ms=result["p50_us"] / 1000,
        p90_ms=result["p90_us"] / 1000,
        p99_ms=result["p99_us"] / 1000,
        p999_ms=result["p999_us"] / 1000,
        max_ms=result["max_us"] / 1000,
        exhausted=result["exhausted_threads"] > 0,
        cpu_percent={k: round(v, 1) for k, v in cpu.items()},
        # CPU time per answered request: robust to a busy machine, unlike the rate.
        cpu_us_per_request={
            k: round(v / 100 * seconds / max(1, result["requests"]) * 1e6, 1)
            for k, v in cpu.items()
            if k != "other"
        },
    )


# --- processes ------------------------------------------------------------------------------------


def set_nice(pid: int, nice: int) -> None:
    """Set a process's niceness (below 0 needs root: --nice). With the kernel's autogroup
    scheduling, CPU is shared between sessions first and niceness only counts inside one, so
    the session's autogroup (each process here runs in its own session) gets it too."""
    if nice or os.getpriority(os.PRIO_PROCESS, pid):
        os.setpriority(os.PRIO_PROCESS, pid, nice)
        with contextlib.suppress(OSError):
            Path(f"/proc/{pid}/autogroup").write_text(str(nice))


class Processes:
    def __init__(self, env: dict[str, str], logs: Path, nice: int = 0) -> None:
        self.env = env
        self.logs = logs
        self.nice = nice
        self.running: list[Proc] = []

    def renice_all(self, nice: int) -> None:
        for proc in self.running:
            with contextlib.suppress(OSError):
                set_nice(proc.pid, nice)

    def start(
        self, name: str, command: list[str], nice: int = 0, env: dict[str, str] | None = None
    ) -> Proc:
        log_file = (self.logs / f"{name}.log").open("wb")
        popen = subprocess.Popen(
            command,
            env={**self.env, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        proc = Proc(name, popen)
        set_nice(proc.pid, self.nice + nice)
        self.running.append(proc)
        return proc

    def stop(self, proc: Proc, timeout: float = 20.0) -> None:
        if proc.popen.poll() is None:
            proc.popen.send_signal(signal.SIGTERM)
            try:
                proc.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait(timeout)
        if proc in self.running:
            self.running.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self.running)):
            self.stop(proc)


def cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "journeyhub", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"journeyhub {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout.strip().splitlines()[-1].strip()


def wait_ready(
    procs: list[Proc], port: int, ready_files: list[Path] | None, timeout: float = 60.0
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in procs:
            if proc.popen.poll() is not None:
                raise RuntimeError(f"{proc.name} exited at start (see its log)")
        if ready_files is not None:
            if all(f.exists() for f in ready_files):
                return
        else:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
        time.sleep(0.1)
    raise RuntimeError(f"{[p.name for p in procs]} not ready on port {port} in {timeout}s")


def worker_command(args: argparse.Namespace, run_dir: Path) -> list[str]:
    profile = ["-m", "cProfile", "-o", str(run_dir / "worker.prof")] if args.profile else []
    if args.worker_loops:  # diagnostic: only these loops (serve_app.py worker)
        return [sys.executable, *profile, str(SERVE_APP), "worker", "--loops", args.worker_loops]
    return [sys.executable, *profile, "-m", "journeyhub", "worker"]


def runs_router(args: argparse.Namespace) -> bool:
    return not args.worker_loops or "trigger-router" in args.worker_loops.split(",")


def worker_description(args: argparse.Namespace) -> str:
    when = "after the saturation run (diagnostic)" if args.worker_after else "running"
    nice = f" (nice {args.worker_nice})" if args.worker_nice else ""
    loops = f", loops {args.worker_loops}" if args.worker_loops else ", all loops"
    return when + nice + loops


def start_worker(args: argparse.Namespace, processes: Processes, run_dir: Path) -> Proc:
    """The worker, with a metrics directory of its own: the bench reads its cost counters
    (store transactions and statements, bus calls) from there, as a scrape would."""
    metrics_dir = run_dir / "worker-metrics"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir()
    return processes.start(
        "worker",
        worker_command(args, run_dir),
        nice=args.worker_nice,
        env={"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)},
    )


def worker_costs(run_dir: Path) -> dict[str, float]:
    """The worker's cost counters so far (``bench/e2e/harness.py`` reads the same names)."""
    from prometheus_client import CollectorRegistry, generate_latest, multiprocess

    sys.path.insert(0, str(HERE.parent / "e2e"))
    from harness import parse_costs

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(run_dir / "worker-metrics"))
    return parse_costs(generate_latest(registry).decode())


def start_servers(
    args: argparse.Namespace, processes: Processes, app: str, port: int, run_dir: Path
) -> list[Proc]:
    """The gateway (``app="ingress"``) or the bare endpoint, as ``args.processes`` processes."""
    if app == "ingress" and args.launcher == "cli":
        proc = processes.start(
            "gateway", [sys.executable, "-m", "journeyhub", "gateway", "--port", str(port)]
        )
        wait_ready([proc], port, None)
        return [proc]
    procs, ready = [], []
    for n in range(args.processes):
        ready_file = run_dir / f"{app}-{n}.ready"
        command = [
            sys.executable,
            str(SERVE_APP),
            app,
            "--port",
            str(port),
            "--ready-file",
            str(ready_file),
        ]
        if args.processes > 1:
            command.append("--reuse-port")
        if args.profile and n == 0:
            command += ["--profile", str(run_dir / f"{app}-0.prof")]
        name = "gateway" if app == "ingress" else "bare"
        procs.append(processes.start(f"{name}-{n}", command))
        ready.append(ready_file)
    wait_ready(procs, port, ready)
    return procs


# --- the bus and the store ------------------------------------------------------------------------


async def provision(env: dict[str, str]) -> None:
    from journeyhub.bus.jetstream import Bus
    from journeyhub.settings import load_settings

    settings = load_settings(env)
    bus = await Bus(settings, settings.nats_url or "").connect()
    try:
        await bus.provision()
    finally:
        await bus.close()


async def backlogs(js: Any, router: bool) -> tuple[int, int]:
    """(inbound, triggers) not yet delivered + not yet acknowledged by their consumers; the
    triggers' is 0 when the trigger router does not run (``--worker-loops``)."""
    inbound = await js.consumer_info("JH_INBOUND", "inbound-worker")
    backlog = inbound.num_pending + inbound.num_ack_pending
    if not router:
        return backlog, 0
    triggers = await js.consumer_info("JH_TRIGGERS", "trigger-router")
    return backlog, triggers.num_pending + triggers.num_ack_pending


async def wait_drained(nats_url: str, timeout: float, router: bool) -> tuple[bool, int, float]:
    """Wait until the workers have acknowledged everything: (drained, inbound backlog when
    the wait began, seconds waited)."""
    import nats

    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    started = last_report = time.monotonic()
    at_start: int | None = None
    try:
        while True:
            inbound, triggers = await backlogs(js, router)
            if at_start is None:
                at_start = inbound
            if inbound == 0 and triggers == 0:
                return True, at_start, time.monotonic() - started
            now = time.monotonic()
            if now - started > timeout:
                log(f"the worker did not drain in {timeout:.0f}s: {inbound} left")
                return False, at_start, now - started
            if now - last_report >= 10:
                log(f"worker backlog: {inbound} webhooks")
                last_report = now
            await asyncio.sleep(0.25)
    finally:
        await nc.close()


async def count_bus(nats_url: str) -> dict[str, int]:
    import nats

    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    try:
        states = {
            name: (await js.stream_info(name)).state
            for name in ("JH_INBOUND", "JH_TRIGGERS", "JH_DLQ")
        }
    finally:
        await nc.close()
    return {
        "stored_webhooks": states["JH_INBOUND"].last_seq,
        "inbound_left": states["JH_INBOUND"].messages,
        "bus_triggers": states["JH_TRIGGERS"].messages,
        "dead_letters": states["JH_DLQ"].messages,
    }


class BacklogSampler:
    """The inbound backlog every ``every`` seconds, from a thread of its own (the main thread
    waits on wrk): ``samples`` holds (monotonic time, backlog)."""

    def __init__(self, nats_url: str, every: float = 0.5) -> None:
        self.nats_url = nats_url
        self.every = every
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def __enter__(self) -> BacklogSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)

    async def _run(self) -> None:
        import nats

        nc = await nats.connect(self.nats_url)
        js = nc.jetstream()
        try:
            while not self._stop.is_set():
                inbound, _ = await backlogs(js, router=False)
                self.samples.append((time.monotonic(), inbound))
                await asyncio.sleep(self.every)
        finally:
            await nc.close()


def slope(points: list[tuple[float, int]]) -> float:
    """Least-squares slope of (t, backlog): webhooks per second the backlog grows by."""
    if len(points) < 3:
        return 0.0
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_b = sum(b for _, b in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return 0.0
    return sum((t - mean_t) * (b - mean_b) for t, b in points) / var


@dataclass
class Step:
    """One fixed offered rate of the sustained-rate search."""

    rate: float
    achieved: float = 0.0
    accepted: int = 0
    non_2xx: int = 0
    socket_errors: int = 0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    backlog_end: int = 0
    backlog_max: int = 0
    backlog_slope: float = 0.0  # webhooks/s, over the step after its first 2 s
    sustained: bool = False
    why: str = ""
    drain_seconds: float = 0.0
    cpu_percent: dict[str, float] = field(default_factory=dict)
    cpu_us_per_request: dict[str, float] = field(default_factory=dict)
    worker_cpu_us_per_webhook: float = 0.0
    worker_costs_per_webhook: dict[str, float] = field(default_factory=dict)


def run_step(
    args: argparse.Namespace,
    rate: float,
    url: str,
    secret: str,
    run_dir: Path,
    watch: dict[str, int],
    nats_url: str,
) -> Step:
    """Offer ``rate`` webhooks/s for ``--step-seconds``, watching the inbound backlog; then
    wait for the worker to drain, and charge the worker's CPU and calls to the step."""
    step = Step(rate=rate)
    seconds = args.step_seconds
    requests_file = run_dir / f"step-{rate:g}.requests"
    write_requests(
        requests_file, int(rate * seconds * 1.05) + 64, secret, "st" + secrets.token_hex(3)
    )
    worker_pid = watch.get("worker")
    worker_cpu = cpu_seconds(worker_pid) if worker_pid else 0.0
    costs = worker_costs(run_dir)
    with BacklogSampler(nats_url) as sampler:
        started = time.monotonic()
        result, cpu = run_wrk(args, url, requests_file, "once", seconds, watch, rate=rate)
        ended = time.monotonic()
    phase = to_phase(f"{rate:g}/s", result, cpu)
    step.achieved = phase.rate
    step.accepted, step.non_2xx, step.socket_errors = (
        phase.accepted,
        phase.non_2xx,
        phase.socket_errors,
    )
    step.p50_ms, step.p99_ms = phase.p50_ms, phase.p99_ms
    step.cpu_percent, step.cpu_us_per_request = phase.cpu_percent, phase.cpu_us_per_request
    during = [(t, b) for t, b in sampler.samples if started + 2 <= t <= ended]
    step.backlog_slope = slope(during)
    step.backlog_max = max((b for _, b in sampler.samples), default=0)
    step.backlog_end = sampler.samples[-1][1] if sampler.samples else 0
    drained, _, step.drain_seconds = asyncio.run(
        wait_drained(nats_url, args.drain_timeout, router=runs_router(args))
    )
    webhooks = max(1, step.accepted)
    if worker_pid:
        step.worker_cpu_us_per_webhook = (cpu_seconds(worker_pid) - worker_cpu) / webhooks * 1e6
    after = worker_costs(run_dir)
    step.worker_costs_per_webhook = {
        k: round((after.get(k, 0.0) - costs.get(k, 0.0)) / webhooks, 4) for k in after
    }
    problems = []
    if step.achieved < 0.97 * rate:
        problems.append(f"wrk got {step.achieved:,.0f}/s of {rate:,.0f}/s")
    if step.non_2xx or step.socket_errors:
        problems.append(f"{step.non_2xx} non-2xx, {step.socket_errors} socket errors")
    if step.backlog_slope > 0.02 * rate:
        problems.append(f"backlog grew {step.backlog_slope:,.0f}/s")
    if step.backlog_end > max(rate, 500):
        problems.append(f"backlog {step.backlog_end:,} at the end")
    if not drained:
        problems.append("not drained")
    step.sustained = not problems
    step.why = "; ".join(problems)
    requests_file.unlink(missing_ok=True)
    return step


def sustained_search(
    args: argparse.Namespace,
    url: str,
    secret: str,
    run_dir: Path,
    watch: dict[str, int],
    nats_url: str,
) -> list[Step]:
    """Step the offered rate up until one is not sustained, then try the midpoint once."""
    if args.rates:
        rates = [float(r) for r in args.rates.split(",")]
    else:
        rates = [
            round(args.rate_start * args.rate_factor**i / 25) * 25 for i in range(args.max_steps)
        ]
    steps: list[Step] = []
    for rate in rates:
        log(f"sustained: {rate:g} webhooks/s for {args.step_seconds:g} s")
        step = run_step(args, rate, url, secret, run_dir, watch, nats_url)
        steps.append(step)
        log(
            f"  got {step.achieved:,.0f}/s, backlog slope {step.backlog_slope:+,.0f}/s, end "
            f"{step.backlog_end:,}, max {step.backlog_max:,}: "
            + ("sustained" if step.sustained else f"NOT sustained ({step.why})")
        )
        if not step.sustained:
            break
    passed = [s.rate for s in steps if s.sustained]
    failed = [s.rate for s in steps if not s.sustained]
    if passed and failed and not args.rates:
        middle = round((max(passed) + min(failed)) / 2 / 25) * 25
        if max(passed) < middle < min(failed):
            log(f"sustained: {middle:g} webhooks/s (between)")
            steps.append(run_step(args, middle, url, secret, run_dir, watch, nats_url))
    return steps


def store_triggers(data_dir: Path) -> int:
    with sqlite3.connect(f"file:{data_dir / 'journeyhub.db'}?mode=ro", uri=True) as db:
        return db.execute("select count(*) from triggers").fetchone()[0]


# --- the run --------------------------------------------------------------------------------------


def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    from journeyhub.bus.embedded import EmbeddedNats

    tmp = Path(tempfile.mkdtemp(prefix="jh-bench-ingest-"))
    data_dir = tmp / "data"
    data_dir.mkdir()
    logs = tmp / "logs"
    logs.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("JOURNEYHUB_") and k != "PROMETHEUS_MULTIPROC_DIR"
    }
    env.update(
        JOURNEYHUB_DATA_DIR=str(data_dir),
        JOURNEYHUB_LOG_FORMAT="json",
        JOURNEYHUB_LOG_LEVEL=args.log_level,
    )
    nats_server = EmbeddedNats(tmp / "nats").start()
    env["JOURNEYHUB_NATS_URL"] = nats_server.url
    processes = Processes(env, logs, args.nice)
    set_nice(nats_server.process.pid, args.nice)  # type: ignore[union-attr]
    router = runs_router(args)
    results: dict[str, Any] = {}
    try:
        log(f"temp dir {tmp}; nats-server at {nats_server.url}")
        tenant = cli(env, "tenants", "add", "Bench Photography")
        key = cli(env, "keys", "create", "--tenant", tenant, "--role", "admin")
        asyncio.run(provision(env))

        port, bare_port = free_port(), free_port()
        worker: Proc | None = None
        if not args.worker_after:
            worker = start_worker(args, processes, tmp)
        gateways = start_servers(args, processes, "ingress", port, tmp)
        whsec = "whsec_" + secrets.token_urlsafe(24)
        answer = httpx.post(
            f"http://127.0.0.1:{port}/v1/connections",
            headers={"authorization": f"Bearer {key}"},
            json={
                "vendor": "stripe",
                "name": "Stripe (bench)",
                "direction": "inbound",
                "credentials": {"webhook_secret": whsec},
            },
            timeout=10,
        )
        if answer.status_code != 201:
            raise RuntimeError(f"POST /v1/connections answered {answer.status_code}: {answer.text}")
        webhook_path = "/webhooks/" + answer.json()["webhook_url"].split("/webhooks/", 1)[1]
        ingress_url = f"http://127.0.0.1:{port}{webhook_path}"

        watch = {f"gateway-{i}": p.pid for i, p in enumerate(gateways)}
        watch["nats-server"] = nats_server.process.pid  # type: ignore[union-attr]
        if worker is not None:
            watch["worker"] = worker.pid

        # 1. the bare endpoint: same server, same settings, same number of processes
        bare = start_servers(args, processes, "bare", bare_port, tmp)
        bare_watch = {**watch, **{f"bare-{i}": p.pid for i, p in enumerate(bare)}}
        cycle_file = tmp / "cycle.requests"
        body_bytes = write_requests(cycle_file, 2000, whsec, "bnch" + secrets.token_hex(2))
        bare_url = f"http://127.0.0.1:{bare_port}/noop"
        log(f"bare endpoint: warm-up {args.warmup:g}s, then {args.duration:g}s")
        run_wrk(args, bare_url, cycle_file, "cycle", args.warmup, bare_watch)
        bare_phase = to_phase(
            "bare Litestar no-op",
            *run_wrk(args, bare_url, cycle_file, "cycle", args.duration, bare_watch),
        )
        for proc in bare:
            processes.stop(proc)

        # 2. the ingress at saturation: signed right before the run (Stripe's tolerance is
        # 300 s)
        rate_bound = args.max_rate
        warm_file, run_file = tmp / "warmup.requests", tmp / "run.requests"
        count = args.requests or int(args.duration * rate_bound)
        log(f"signing {count:,} + {int(args.warmup * rate_bound):,} distinct Stripe events")
        write_requests(
            warm_file, max(1, int(args.warmup * rate_bound)), whsec, "wrmp" + secrets.token_hex(2)
        )
        write_requests(run_file, count, whsec, "runn" + secrets.token_hex(2))
        log(f"webhook ingress: warm-up {args.warmup:g}s, then {args.duration:g}s")
        worker_cpu_before = cpu_seconds(worker.pid) if worker is not None else 0.0
        costs_before = worker_costs(tmp) if worker is not None else {}
        warm = to_phase(
            "warm-up", *run_wrk(args, ingress_url, warm_file, "once", args.warmup, watch)
        )
        ingress_phase = to_phase(
            "webhook ingress", *run_wrk(args, ingress_url, run_file, "once", args.duration, watch)
        )
        run_file.unlink()

        # The drain is not timed against a target: every process back to niceness 0 (--nice
        # and --worker-nice apply to the load only).
        if args.nice or args.worker_nice:
            processes.renice_all(0)
            set_nice(nats_server.process.pid, 0)  # type: ignore[union-attr]
        if worker is None:
            worker = start_worker(args, processes, tmp)
            watch["worker"] = worker.pid
        log("waiting for the worker to drain the inbound stream")
        drained, backlog_after_run, drain_seconds = asyncio.run(
            wait_drained(nats_server.url, args.drain_timeout, router)
        )
        saturated = asyncio.run(count_bus(nats_server.url))["stored_webhooks"]
        saturation_worker = {
            "backlog_after_run": backlog_after_run,
            "drain_seconds": round(drain_seconds, 1),
            "drained": drained,
            "worker_cpu_us_per_webhook": round(
                (cpu_seconds(worker.pid) - worker_cpu_before) / max(1, saturated) * 1e6, 1
            ),
            "worker_costs_per_webhook": {
                k: round((v - costs_before.get(k, 0.0)) / max(1, saturated), 4)
                for k, v in worker_costs(tmp).items()
            },
        }

        # 3. the sustained rate
        steps: list[Step] = []
        if not args.no_sustained and drained:
            steps = sustained_search(args, ingress_url, whsec, tmp, watch, nats_server.url)

        # 4. nothing lost: every stored webhook is one trigger, none dead-lettered
        drained_at_end, _, _ = asyncio.run(
            wait_drained(nats_server.url, args.drain_timeout, router)
        )
        counts: dict[str, Any] = asyncio.run(count_bus(nats_server.url))
        counts["store_triggers"] = store_triggers(data_dir)
        answered = warm.accepted + ingress_phase.accepted + sum(s.accepted for s in steps)
        # Requests cut off by wrk's end may be stored without their answer being counted.
        in_flight = 2 * args.connections * (2 + len(steps))
        counts["answered_2xx"] = answered
        problems = []
        if not 0 <= counts["stored_webhooks"] - answered <= in_flight:
            problems.append(f"stored {counts['stored_webhooks']} vs 2xx answers {answered}")
        if router and counts["bus_triggers"] != counts["stored_webhooks"]:
            problems.append(f"bus triggers {counts['bus_triggers']} != stored webhooks")
        if counts["store_triggers"] != counts["stored_webhooks"]:
            problems.append(f"store triggers {counts['store_triggers']} != stored webhooks")
        if not (drained and drained_at_end):
            problems.append(f"not drained in --drain-timeout {args.drain_timeout:g}s")
        if counts["dead_letters"] or counts["inbound_left"]:
            problems.append(
                f"dead letters {counts['dead_letters']}, left in inbound {counts['inbound_left']}"
            )
        if ingress_phase.exhausted or warm.exhausted:
            problems.append("the pre-signed requests ran out: raise --max-rate or --requests")
        counts["ok"] = not problems
        counts["problems"] = problems

        sustained = [s.rate for s in steps if s.sustained]
        results = {
            "machine": machine(),
            "config": {
                "server": f"uvicorn {_version('uvicorn')} "
                + ("(http=httptools" if _has("httptools") else "(http=h11")
                + (", loop=uvloop)" if _has("uvloop") else ", loop=asyncio)"),
                "litestar": _version("litestar"),
                "launcher": args.launcher,
                "processes": args.processes,
                "worker": worker_description(args),
                "log_level": args.log_level,
                "nice": args.nice,
                "wrk_threads": args.threads,
                "connections": args.connections,
                "duration_s": args.duration,
                "step_s": args.step_seconds,
                "body_bytes": body_bytes,
            },
            "bare": asdict(bare_phase),
            "ingress": asdict(ingress_phase),
            "ratio": ingress_phase.rate / bare_phase.rate if bare_phase.rate else 0.0,
            "saturation_worker": saturation_worker,
            "steps": [asdict(s) for s in steps],
            "sustained_rate": max(sustained) if sustained else None,
            "verification": counts,
        }
        if args.keep:
            results["temp_dir"] = str(tmp)
        return results
    finally:
        processes.stop_all()
        nats_server.stop()
        if args.keep or args.profile:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def _version(dist: str) -> str:
    from importlib.metadata import version

    return version(dist)


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _costs(costs: dict[str, float]) -> str:
    keys = ("store_transactions", "sql_statements", "bus:publish", "bus:fetch", "bus:ack")
    named = {"store_transactions": "transactions", "sql_statements": "statements"}
    return ", ".join(f"{named.get(k, k)} {costs.get(k, 0.0):.3f}" for k in keys)


def report(results: dict[str, Any]) -> None:
    m, c = results["machine"], results["config"]
    print(
        f"\ningest benchmark: {m['nproc']} CPU(s), {m['cpu']}, Linux {m['kernel']}, "
        f"Python {m['python']}"
    )
    print(
        f"server: {c['server']}, litestar {c['litestar']}, {c['processes']} process(es) "
        f"[{c['launcher']}], worker {c['worker']}, log level {c['log_level']}"
    )
    if c.get("nice"):
        print(f"every process of the benchmark ran at niceness {c['nice']} during the load")
    print(
        f"load: wrk {c['wrk_threads']} thread(s), {c['connections']} connections, "
        f"{c['duration_s']:g} s per side, {c['body_bytes']} B Stripe event bodies\n"
    )
    print("1. saturation (as fast as wrk's connections go; the worker running meanwhile)")
    header = (
        f"{'':22}{'accepted/s':>11}{'p50 ms':>9}{'p99 ms':>9}{'p99.9 ms':>10}"
        f"{'2xx':>10}{'non-2xx':>9}{'sock err':>9}"
    )
    print(header)
    for key in ("bare", "ingress"):
        p = results[key]
        print(
            f"{p['name']:22}{p['rate']:>11,.0f}{p['p50_ms']:>9.1f}{p['p99_ms']:>9.1f}"
            f"{p['p999_ms']:>10.1f}{p['accepted']:>10,}{p['non_2xx']:>9}"
            f"{p['socket_errors']:>9}"
        )
    ratio = results["ratio"]
    print(f"ratio ingress / bare: {ratio:.0%}")
    for key in ("bare", "ingress"):
        cpu = ", ".join(f"{k} {v:.0f}" for k, v in results[key]["cpu_percent"].items())
        print(f"CPU % of one core during {results[key]['name']}: {cpu}")
        per = ", ".join(f"{k} {v:.0f}" for k, v in results[key]["cpu_us_per_request"].items())
        print(f"  CPU µs per request: {per}")
    other = max(results[k]["cpu_percent"].get("other", 0) for k in ("bare", "ingress"))
    if other > 15:
        print(
            f"WARNING: other processes used up to {other:.0f} % of a core during the runs: "
            "the machine was not quiet, the figures are low"
        )
    w = results["saturation_worker"]
    print(
        f"worker: backlog {w['backlog_after_run']:,} webhooks at the end of the load, "
        + ("drained in" if w["drained"] else "NOT drained after")
        + f" {w['drain_seconds']:g} s; worker CPU {w['worker_cpu_us_per_webhook']:.0f} µs per "
        f"webhook (warm-up to drained); per webhook: {_costs(w['worker_costs_per_webhook'])}"
    )

    steps = results["steps"]
    if steps:
        print(
            f"\n2. sustained rate (offered at a fixed rate for {c['step_s']:g} s each; backlog ="
            " inbound webhooks not yet delivered + not yet acknowledged)"
        )
        print(
            f"{'offered/s':>10}{'got/s':>8}{'p50 ms':>8}{'p99 ms':>8}{'slope/s':>9}{'end':>7}"
            f"{'max':>7}{'gateway µs':>11}{'worker µs':>10}{'other %':>8}  result"
        )
        for s in steps:
            gateway_us = sum(v for k, v in s["cpu_us_per_request"].items() if k.startswith("gat"))
            print(
                f"{s['rate']:>10,.0f}{s['achieved']:>8,.0f}{s['p50_ms']:>8.1f}{s['p99_ms']:>8.1f}"
                f"{s['backlog_slope']:>+9,.0f}{s['backlog_end']:>7,}{s['backlog_max']:>7,}"
                f"{gateway_us:>11,.0f}{s['worker_cpu_us_per_webhook']:>10,.0f}"
                f"{s['cpu_percent'].get('other', 0):>8.0f}  "
                + ("sustained" if s["sustained"] else f"NOT sustained: {s['why']}")
            )
        for s in steps:
            print(
                f"  at {s['rate']:,.0f}/s, worker per webhook: "
                f"{_costs(s['worker_costs_per_webhook'])}"
            )
    best = results["sustained_rate"]
    print(
        "\nsustained rate: "
        + (f"{best:,.0f} webhooks/s" if best else "none of the rates tried")
        + f" (bare endpoint at saturation: {results['bare']['rate']:,.0f}/s, same run)"
    )
    # At the highest sustained rate (the operating point), else over the saturation run.
    at_best = [s for s in steps if s["sustained"] and s["rate"] == best]
    worker_ms = (at_best[0] if at_best else w)["worker_cpu_us_per_webhook"] / 1000
    checks = [
        (f"gateway / bare >= {TARGET_RATIO:.0%}", ratio >= TARGET_RATIO),
        (f"sustained >= {TARGET_SUSTAINED:,.0f}/s", (best or 0) >= TARGET_SUSTAINED),
        (f"worker <= {TARGET_WORKER_MS:g} ms CPU per webhook", worker_ms <= TARGET_WORKER_MS),
    ]
    print("targets: " + "; ".join(f"{name}: {'met' if ok else 'NOT met'}" for name, ok in checks))
    v = results["verification"]
    print(
        f"verification: 2xx answers {v['answered_2xx']:,} (warm-up included), stored webhooks "
        f"{v['stored_webhooks']:,}, triggers on the bus {v['bus_triggers']:,}, triggers in the "
        f"store {v['store_triggers']:,}, dead letters {v['dead_letters']}: "
        + ("OK, nothing lost" if v["ok"] else "FAILED: " + "; ".join(v["problems"]))
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Signed Stripe webhooks through the whole ingress vs a bare Litestar no-op."
    )
    parser.add_argument("--duration", type=float, default=20, help="seconds per side (20)")
    parser.add_argument("--warmup", type=float, default=2, help="warm-up seconds per side (2)")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (64)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (1)")
    parser.add_argument(
        "--processes", type=int, default=1, help="gateway processes, and as many bare ones (1)"
    )
    parser.add_argument(
        "--launcher",
        choices=["cli", "bench"],
        default=None,
        help="cli: `journeyhub gateway` (1 process); bench: serve_app.py "
        "(default: cli for 1 process, bench for more)",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning"],
        help="JOURNEYHUB_LOG_LEVEL of the gateway and the worker (info)",
    )
    parser.add_argument(
        "--worker-after",
        action="store_true",
        help="diagnostic: start the worker only after the saturation load",
    )
    parser.add_argument(
        "--worker-loops",
        help="diagnostic: run only these worker loops, e.g. 'inbound' (without the trigger "
        "router, whose cost then drops out of the worker's figures)",
    )
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="run every process of the benchmark (wrk included) at this niceness during the "
        "load, e.g. -10 as root on a machine shared with other jobs (0)",
    )
    parser.add_argument(
        "--worker-nice",
        type=int,
        default=0,
        help="deployment prototype: run the worker at this niceness (0)",
    )
    parser.add_argument(
        "--max-rate",
        type=float,
        default=8000,
        help="requests/s to pre-sign for the saturation run (duration x this; 8000)",
    )
    parser.add_argument("--requests", type=int, help="pre-signed requests for the run")
    parser.add_argument("--drain-timeout", type=float, default=900)
    sustained = parser.add_argument_group("sustained rate")
    sustained.add_argument(
        "--rates", help="offered rates to try, in order, e.g. 800,1000,1200 (default: stepped)"
    )
    sustained.add_argument("--rate-start", type=float, default=500, help="first rate (500)")
    sustained.add_argument(
        "--rate-factor", type=float, default=1.25, help="each next rate is this times more (1.25)"
    )
    sustained.add_argument("--max-steps", type=int, default=10, help="rates to try at most (10)")
    sustained.add_argument(
        "--step-seconds", type=float, default=20, help="seconds at each rate (20)"
    )
    sustained.add_argument("--no-sustained", action="store_true", help="saturation only")
    parser.add_argument(
        "--short",
        action="store_true",
        help="smoke run: 3 s per side, 1 s warm-up, 16 connections, two 5 s steps",
    )
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="cProfile gateway process 0 and the worker (bench launcher; slows them down)",
    )
    args = parser.parse_args(argv)
    if args.short:
        args.duration, args.warmup, args.connections = 3, 1, 16
        args.max_rate = min(args.max_rate, 8000)
        args.step_seconds = 5
        args.rates = args.rates or "200,400"
    if args.launcher is None:
        needs_bench = args.processes > 1 or args.profile
        args.launcher = "bench" if needs_bench else "cli"
    if args.launcher == "cli" and (args.processes > 1 or args.profile):
        parser.error("--processes > 1 and --profile need --launcher bench")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        print(WRK_MISSING, file=sys.stderr)
        return 2
    results = benchmark(args)
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0 if results["verification"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
