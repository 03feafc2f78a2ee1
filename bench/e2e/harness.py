"""Shared plumbing for the outbound benchmarks (bench/e2e and bench/email).

- ``HubProcess``: a real ``journeyhub serve`` child process (gateway + workers + embedded
  nats-server + SQLite under a temporary data dir), with a tenant and keys made beforehand
  through the store, ready when ``/ready`` answers 200; stopped with SIGTERM by its pid.
- ``SandboxProcess``: a vendor sandbox (Tave or Resend) in its own process, so that neither the
  load generator nor the hub shares a GIL with it; the parent asks it for its records over a
  pipe. Every HTTP call it answers is recorded (start/end wall time, method, path, status,
  batch size) by an ASGI wrapper.
- ``cpu_seconds``: user+system CPU of a process tree, from /proc, to say who was saturated.

Every timestamp is ``time.time()`` (wall clock): the sandboxes stamp receipts with it too, so
send times and receipt times compare directly across processes on this machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import multiprocessing as mp
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]


# --- machine and statistics --------------------------------------------------------------------


def machine() -> str:
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"nproc={os.cpu_count()} cpu={model!r} python={platform.python_version()}"


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": pct(values, 50),
        "p95": pct(values, 95),
        "p99": pct(values, 99),
        "max": max(values) if values else math.nan,
    }


def fmt_ms(stats: dict[str, float]) -> str:
    return (
        "  ".join(f"{k}={v * 1000:8.1f}ms" for k, v in stats.items() if k != "n")
        + f"  (n={stats['n']})"
    )


# --- CPU accounting ------------------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                raw = Path(f"/proc/{pid}/task/{task}/children").read_text().split()
                found.extend(int(p) for p in raw)
    return found


def _cpu_of(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime


def _comm(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/comm").read_text().strip()
    return "?"


def cpu_seconds(pid: int) -> dict[str, float]:
    """CPU seconds of ``pid`` and of each child process, by command name."""
    out: dict[str, float] = {"self": _cpu_of(pid)}
    for child in _children(pid):
        out[_comm(child)] = out.get(_comm(child), 0.0) + _cpu_of(child)
    return out


def all_cpu_of(command: str) -> float:
    """CPU seconds of every process of the machine named ``command`` (e.g. PostgreSQL's)."""
    return sum(
        _cpu_of(int(pid))
        for pid in os.listdir("/proc")
        if pid.isdigit() and _comm(int(pid)) == command
    )


def machine_busy() -> float:
    """CPU seconds all processes of the machine have used (every core), from /proc/stat."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / _TICK


def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}


# --- profiling (py-spy, installed apart: never into the project's environment) --------------------


def start_py_spy(py_spy: str, pid: int, seconds: float, out: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            py_spy,
            "record",
            "-p",
            str(pid),
            "-d",
            str(max(1, int(seconds))),
            "-r",
            "100",
            "-f",
            "raw",
            "-o",
            out,
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def py_spy_top(raw: str, root: str = "journeyhub/__main__.py", n: int = 40) -> list[str]:
    """Inclusive share of the busiest frames of the event-loop thread (stacks through ``root``),
    as a share of its samples, and of wall time at 100 Hz."""
    incl: Counter[str] = Counter()
    samples = 0
    with contextlib.suppress(OSError):
        for line in Path(raw).read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            frames = stack.split(";")
            if not any(root in f for f in frames):
                continue
            samples += int(count)
            seen = set()
            for frame in frames:
                name, _, where = frame.partition(" (")
                key = f"{name} ({where.split(':')[0]})"
                if key not in seen:
                    seen.add(key)
                    incl[key] += int(count)
    return [f"{v / max(1, samples):6.1%}  {k}" for k, v in incl.most_common(n)] + [
        f"({samples} samples of the event-loop thread)"
    ]


# --- the hub --------------------------------------------------------------------------------------


class HubProcess:
    """``journeyhub serve`` in a child process, on a fresh data dir and a free port."""

    def __init__(self, log_level: str = "info", keep: bool = False) -> None:
        from journeyhub.bus.embedded import free_port

        self.root = Path(tempfile.mkdtemp(prefix="jh-bench-"))
        self.data_dir = self.root / "data"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_level = log_level
        self.keep = keep
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = self.root / "hub.log"
        self.tenant_id = ""
        self.admin_key = ""
        self.ingest_key = ""

    async def provision(self) -> None:
        """Migrate, then a tenant with an admin and an ingest key (before the hub starts)."""
        from journeyhub.secretbox import load_secret_box
        from journeyhub.settings import load_settings
        from journeyhub.store.db import migrate
        from journeyhub.store.store import Store

        settings = load_settings({}, data_dir=self.data_dir)
        await asyncio.to_thread(migrate, settings)
        store = Store(settings, load_secret_box(settings))
        try:
            self.tenant_id = await store.tenants.add("bench studio")
            self.admin_key = await store.tenants.create_key(self.tenant_id, "admin")
            self.ingest_key = await store.tenants.create_key(self.tenant_id, "ingest")
        finally:
            await store.close()

    async def start(self, timeout: float = 60.0) -> HubProcess:
        await self.provision()
        env = {
            **os.environ,
            "JOURNEYHUB_DATA_DIR": str(self.data_dir),
            "JOURNEYHUB_PORT": str(self.port),
            "JOURNEYHUB_LOG_FORMAT": "json",
            "JOURNEYHUB_LOG_LEVEL": self.log_level,
        }
        env.pop("JOURNEYHUB_NATS_URL", None)
        env.pop("JOURNEYHUB_DATABASE_URL", None)
        self._log = open(self.log_path, "wb")  # noqa: SIM115, ASYNC230
        self.process = subprocess.Popen(  # noqa: ASYNC220 (returns at once)
            [sys.executable, "-m", "journeyhub", "serve"],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient() as client:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"hub exited at start:\n{self.log_path.read_text()[-3000:]}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(self.url + "/ready", timeout=2)).status_code == 200:
                        return self
                if time.monotonic() > deadline:
                    raise RuntimeError("hub not ready in time")
                await asyncio.sleep(0.2)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def nats_url(self) -> str | None:
        with contextlib.suppress(OSError):
            for line in self.log_path.read_text().splitlines():
                if "embedded_nats_started" in line:
                    with contextlib.suppress(ValueError):
                        return json.loads(line).get("url")
        return None

    def log_counts(self) -> Counter[str]:
        """How many log lines of each event name (e.g. rate_limited, push_failed_will_retry)."""
        counts: Counter[str] = Counter()
        with contextlib.suppress(OSError):
            for line in self.log_path.read_text().splitlines():
                with contextlib.suppress(ValueError):
                    record = json.loads(line)
                    counts[f"{record.get('level', '?')}:{record.get('event', '?')}"] += 1
        return counts

    def db_rows(self, query: str) -> list[tuple[Any, ...]]:
        """Read the hub's SQLite store (read-only) after or during the run."""
        import sqlite3

        with contextlib.closing(
            sqlite3.connect(f"file:{self.data_dir / 'journeyhub.db'}?mode=ro", uri=True, timeout=30)
        ) as db:
            return list(db.execute(query))

    async def stream_backlog(self) -> dict[str, int]:
        """Messages waiting in the hub's work-queue streams (events, push)."""
        import nats

        url = self.nats_url()
        if url is None:
            return {}
        nc = await nats.connect(url)
        try:
            js = nc.jetstream()
            out = {}
            for name in ("JH_EVENTS", "JH_PUSH"):
                with contextlib.suppress(Exception):
                    out[name] = (await js.stream_info(name)).state.messages
            return out
        finally:
            await nc.close()

    async def costs(self) -> dict[str, float]:
        """The hub's cost counters now (``/metrics``): store transactions and statements, bus
        calls by kind, vendor HTTP requests; each summed over its labels."""
        async with httpx.AsyncClient() as client:
            text = (await client.get(self.url + "/metrics", timeout=30)).text
        return parse_costs(text)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)  # our own child's group
                self.process.wait(timeout=10)
        if getattr(self, "_log", None) is not None:
            self._log.close()
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)


COST_METRICS = {
    "journeyhub_store_transactions_total": "store_transactions",
    "journeyhub_store_statements_total": "sql_statements",
    "journeyhub_vendor_requests_total": "vendor_calls",
}


def parse_costs(text: str) -> dict[str, float]:
    """The cost counters of a Prometheus text page, summed over their labels; bus calls by kind
    (``bus:<kind>``) and ``bus_requests`` (JetStream API requests: neither publishes, pull
    requests nor acks)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        name_labels, _, value = line.rpartition(" ")
        name, _, labels = name_labels.partition("{")
        if name in COST_METRICS:
            key = COST_METRICS[name]
            out[key] = out.get(key, 0.0) + float(value)
        elif name == "journeyhub_bus_calls_total":
            kind = labels.split('kind="', 1)[1].split('"', 1)[0]
            out[f"bus:{kind}"] = out.get(f"bus:{kind}", 0.0) + float(value)
            if kind not in ("publish", "fetch", "ack", "other"):
                out["bus_requests"] = out.get("bus_requests", 0.0) + float(value)
    return out


def cost_delta(
    before: dict[str, float], after: dict[str, float], scrape: dict[str, float] | None = None
) -> dict[str, float]:
    """``after - before``, less what one scrape of ``/metrics`` costs itself (``scrape``)."""
    scrape = scrape or {}
    keys = set(before) | set(after)
    return {k: after.get(k, 0.0) - before.get(k, 0.0) - scrape.get(k, 0.0) for k in keys}


# --- a sandbox in its own process -----------------------------------------------------------------


class Recorder:
    """ASGI wrapper: every answered call as (start, end, method, path, status, items)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.calls: list[tuple[float, float, str, str, int, int]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.time()
        status = [0]
        chunks: list[bytes] = []
        batch = scope["path"].endswith("/batch")

        async def recv() -> Any:
            message = await receive()
            if batch and message.get("type") == "http.request":
                chunks.append(message.get("body", b""))
            return message

        async def snd(message: Any) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        await self.app(scope, recv, snd)
        items = 1
        if batch:
            with contextlib.suppress(ValueError):
                items = len(json.loads(b"".join(chunks) or b"[]"))
        self.calls.append((start, time.time(), scope["method"], scope["path"], status[0], items))


def _tave_report(sb: Any, recorder: Recorder) -> dict[str, Any]:
    """Receipt times keyed by our ids (from the records' externalMappings)."""
    with sb._lock:
        store = {k: dict(v) for k, v in sb.store.items()}
        received = dict(sb.received_at)
        creates = {f"{res}|{ext}": n for (res, ext), n in sb.create_counts.items()}
    contacts = {}  # client id -> (record id, received_at)
    for rid, rec in store["address-book"].items():
        for m in rec.get("externalMappings") or []:
            contacts[m["id"]] = (rid, received.get(rid))
    jobs = {}  # journey instance id -> (record id, received_at)
    for rid, rec in store["job"].items():
        for m in rec.get("externalMappings") or []:
            jobs[m["id"]] = (rid, received.get(rid))
    links = {}  # job id -> received_at
    for rid, rec in store["job-contact"].items():
        links[rec["jobId"]] = received.get(rid)
    notes = {}  # text of the note -> received_at (the step name is the event id)
    for rid, rec in store["note"].items():
        notes[rec["contentHtml"]] = received.get(rid)
    puts: dict[str, list[float]] = {}  # record id -> times of PUT calls (answered 200)
    for start, _end, method, path, status, _ in recorder.calls:
        if method == "PUT" and status == 200:
            puts.setdefault(path.rsplit("/", 1)[-1], []).append(start)
    return {
        "contacts": contacts,
        "jobs": jobs,
        "links": links,
        "notes": notes,
        "puts": puts,
        "creates": creates,
        "requests": len(recorder.calls),
        "statuses": dict(Counter(c[4] for c in recorder.calls)),
        "by_route": dict(Counter(f"{c[2]} {c[3].split('/')[3]}" for c in recorder.calls)),
        "service_ms": [c[1] - c[0] for c in recorder.calls],
    }


def _resend_report(sb: Any, recorder: Recorder) -> dict[str, Any]:
    with sb._lock:
        emails = [(e["to"][0], e["created_at"], e["tags"]) for e in sb.emails]
        counters = {
            "requests": sb.requests,
            "accepted": sb.accepted,
            "refused_429": sb.refused_429,
            "duplicates": sb.duplicates,
        }
    return {"emails": emails, "counters": counters, "calls": list(recorder.calls)}


def _sandbox_main(kind: str, kwargs: dict[str, Any], conn: Any) -> None:
    from journeyhub.testing.sandbox import SandboxServer

    if kind == "tave":
        from journeyhub_tave.sandbox import TaveSandbox

        sb: Any = TaveSandbox(**kwargs)
        recorder = Recorder(sb.app)
        sb.server = SandboxServer(recorder, port=sb.server.port)
        sb.start()
        info = {"url": sb.url, "api_base": sb.api_base, "api_key": sb.api_key}
        report = _tave_report
    else:
        from journeyhub_resend.sandbox import ResendSandbox

        sb = ResendSandbox(**kwargs)
        recorder = Recorder(sb.app)
        sb._server = SandboxServer(recorder, port=sb._server.port)
        sb.start()
        info = {"url": sb.url, "api_key": sb.api_key}
        report = _resend_report
    conn.send(info)
    try:
        while True:
            command = conn.recv()
            if command == "report":
                conn.send(report(sb, recorder))
            elif command == "count":
                with sb._lock:
                    conn.send(sb.accepted if kind == "resend" else len(sb.received_at))
            elif command == "reset":
                sb.reset()
                recorder.calls.clear()
                conn.send(True)
            elif command == "stop":
                break
    finally:
        sb.stop()
        conn.send("stopped")


class SandboxProcess:
    def __init__(self, kind: str, **kwargs: Any) -> None:
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(
            target=_sandbox_main, args=(kind, kwargs, child), daemon=True, name=f"{kind}-sandbox"
        )
        self.process.start()
        self.info: dict[str, Any] = self.conn.recv()

    def ask(self, command: str) -> Any:
        self.conn.send(command)
        return self.conn.recv()

    async def aask(self, command: str) -> Any:
        return await asyncio.to_thread(self.ask, command)

    @property
    def pid(self) -> int:
        assert self.process.pid is not None
        return self.process.pid

    def stop(self) -> None:
        if self.process.is_alive():
            with contextlib.suppress(Exception):
                self.ask("stop")
            self.process.join(timeout=15)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(timeout=5)


class LoadClient:
    """A minimal HTTP/1.1 keep-alive client for the load generator: up to ``size`` persistent
    connections, no pool scans (httpx's pool costs O(connections) per request, which made the
    generator itself the bottleneck at a few hundred requests in flight on 2 cores)."""

    def __init__(self, url: str, size: int = 64) -> None:
        host_port = url.split("://", 1)[1].rstrip("/")
        self.host, port = host_port.rsplit(":", 1)
        self.port = int(port)
        self.size = size
        self._idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = (
            asyncio.Queue()
        )
        self._open = 0
        self._slots = asyncio.Semaphore(size)

    async def _conn(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if not self._idle.empty():
            return self._idle.get_nowait()
        self._open += 1
        return await asyncio.open_connection(self.host, self.port)

    async def post(
        self, path: str, body: bytes, headers: dict[str, str], on_send: Any = None
    ) -> tuple[int, bytes]:
        """POST and read the answer; ``on_send()`` is called just before the bytes go out."""
        async with self._slots:
            reader, writer = await self._conn()
            head = (
                f"POST {path} HTTP/1.1\r\nhost: {self.host}:{self.port}\r\n"
                f"content-length: {len(body)}\r\n"
                + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
                + "\r\n"
            )
            try:
                if on_send is not None:
                    on_send()
                writer.write(head.encode() + body)
                await writer.drain()
                raw = await reader.readuntil(b"\r\n\r\n")
                lines = raw.decode("latin-1").split("\r\n")
                status = int(lines[0].split(" ", 2)[1])
                length = 0
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value.strip())
                payload = await reader.readexactly(length) if length else b""
            except (OSError, asyncio.IncompleteReadError, ValueError):
                writer.close()
                self._open -= 1
                raise
            self._idle.put_nowait((reader, writer))
            return status, payload

    async def close(self) -> None:
        while not self._idle.empty():
            _, writer = self._idle.get_nowait()
            writer.close()


def make_event(event_id: str, event_type: str, client_id: str, **extra: Any) -> dict[str, Any]:
    """A journey event in the public shape (as tests/conftest.py::event builds it)."""
    body: dict[str, Any] = {
        "id": event_id,
        "type": event_type,
        "occurred_at": "2026-03-01T12:00:00Z",
        "journey_instance_id": f"ji_{client_id}",
        "journey_name": "Wedding onboarding",
        "client": {
            "id": client_id,
            "name": "Ada Lovelace",
            "email": f"{client_id}@example.com",
            "phone": "+44 20 7946 0000",
        },
        "wedding": {
            "date": "2026-09-12",
            "venue": {"name": "Kew Gardens", "address": "Richmond"},
            "guest_count": 120,
        },
    }
    body.update(extra)
    return body
