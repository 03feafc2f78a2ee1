"""The system under test and its workload, shared by bench/chaos, bench/scaleout and the tests.

``Rig`` starts the real parts (a NATS server or cluster, PostgreSQL or SQLite, N
``journeyhub gateway`` and M ``journeyhub worker`` processes, a Tave and a Stripe sandbox in
this process) and provisions one tenant with a Tave connection (outbound) and a Stripe
connection (inbound, with catch-up through the sandbox's Events API).

The workload: journey events over ``POST /v1/events`` (``journey_started`` for a new client,
then ``step_completed`` for clients already started) and signed Stripe webhooks delivered by
the Stripe sandbox (``deliver``). Both senders behave as the real senders do: a request that
is not acknowledged (connection error, 5xx, timeout) is sent again, with the same ids, until
it is (bounded in attempts and time).

What counts (``count``), at the sandboxes and in the store:
- an event is *delivered* when its side effect is at Tave: the client's contact, the journey's
  job and their link for ``journey_started``; the step's note for ``step_completed``;
- a *duplicated side effect* is a second create call at Tave for one external id (contact per
  client, job per journey, note per step), or a second job-contact link for one pair;
- a webhook is *delivered* when the store holds a trigger for its Stripe event id; a trigger
  is duplicated when the store or the ``JH_TRIGGERS`` stream holds more than one for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import os
import random
import re
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec
from chaos_infra import JhProcess, NatsCluster, ScratchPostgres
from journeyhub.hub import Hub
from journeyhub.model import stable_id
from journeyhub.secretbox import generate_key
from journeyhub.settings import load_settings
from journeyhub.testing.sandbox import Fault
from journeyhub_stripe.sandbox import StripeSandbox, payment_intent
from journeyhub_tave.client import external_id
from journeyhub_tave.sandbox import TaveSandbox

STRIPE_SECRET = "whsec_" + "Y2hhb3MtYmVuY2gtd2ViaG9vay1zZWNyZXQ="
VENDOR_TIMEOUT = 1.0  # the connections' client timeout (s); a "timeout" fault answers later


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- what a run is made of ----------------------------------------------------------------------


@dataclass
class Options:
    events: int = 300
    webhooks: int = 300
    gateways: int = 1
    workers: int = 2
    nats_nodes: int = 3  # 1: a single server; 3: a cluster with streams at 3 replicas
    studios: int = 4  # tenants, each with its own Tave and Stripe connections
    database: str = "sqlite"  # "sqlite", "scratch" (own PostgreSQL cluster) or a URL
    fault_rate: float = 0.3
    stripe_catchup: bool = True  # the Stripe connection pulls /v1/events too (faults apply)
    tave_rate: float = 1000.0  # the Tave connections' rate_limit_per_second (per process)
    max_deliver: int = 5
    ack_wait: int = 10
    breaker_threshold: int = 20
    breaker_cooldown: int = 2
    batch: int = 25  # journey events per POST /v1/events
    concurrency: int = 8  # requests in flight per sender
    seed: int = 7
    keep: bool = False
    log_level: str = "info"
    extra_env: dict[str, str] = field(default_factory=dict)


@dataclass
class Plan:
    events: list[tuple[int, dict[str, Any]]]  # (studio index, journey event), in send order
    started: dict[str, tuple[int, str]]  # event id -> (studio, client id): journey_started
    steps: dict[str, tuple[int, str]]  # event id -> (studio, client id): step_completed


def make_event(event_id: str, event_type: str, client_id: str, **extra: Any) -> dict[str, Any]:
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


def plan_events(
    count: int, prefix: str, seed: int, studios: int = 1, start_share: float = 0.4
) -> Plan:
    """About 40 % ``journey_started`` (a new client each, of studio ``n % studios``), the rest
    ``step_completed`` for one of the 200 clients started last, in send order (a client's
    start is sent before its steps)."""
    rng = random.Random(seed)
    events: list[tuple[int, dict[str, Any]]] = []
    clients: list[tuple[int, str]] = []
    started: dict[str, tuple[int, str]] = {}
    steps: dict[str, tuple[int, str]] = {}
    for i in range(count):
        event_id = f"{prefix}-e{i}"
        if not clients or rng.random() < start_share:
            studio, client = len(clients) % studios, f"{prefix}-c{len(clients)}"
            clients.append((studio, client))
            events.append((studio, make_event(event_id, "journey_started", client)))
            started[event_id] = (studio, client)
        else:
            studio, client = rng.choice(clients[-200:])
            step = {"name": f"step {event_id}", "type": "task"}
            events.append((studio, make_event(event_id, "step_completed", client, step=step)))
            steps[event_id] = (studio, client)
    return Plan(events, started, steps)


@dataclass
class Studio:
    """One tenant: its keys, its Tave connection, its Stripe connection and Stripe account."""

    index: int
    tenant_id: str
    admin_key: str
    ingest_key: str
    stripe: StripeSandbox
    tave_id: str = ""
    stripe_id: str = ""


# --- the system under test ------------------------------------------------------------------------


class Rig:
    def __init__(
        self, options: Options, root: Path | None = None, nats: NatsCluster | None = None
    ) -> None:
        self.options = options
        self.own_root = root is None
        self.root = Path(root or tempfile.mkdtemp(prefix="jh-chaos-"))
        self.logs = self.root / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.prefix = f"r{int(time.time()) % 100000}"
        self.own_nats = nats is None  # a shared cluster is started and stopped by its owner
        self.nats = nats or NatsCluster(self.root / "nats", size=options.nats_nodes)
        self.pg: ScratchPostgres | None = None
        self.database_url: str | None = None
        self.key = generate_key()
        self.hub: Hub | None = None
        self.gateways: list[JhProcess] = []
        self.workers: list[JhProcess] = []
        self.tave = TaveSandbox()
        self.studios: list[Studio] = []
        self.http: httpx.AsyncClient | None = None
        self.events: list[str] = []  # what happened, for the report
        self.started_at = time.monotonic()

    def note(self, what: str) -> None:
        stamp = time.monotonic() - self.started_at
        self.events.append(f"{stamp:7.1f}s {what}")
        log(what)

    # --- start and stop ----------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        o = self.options
        env = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEYHUB_")}
        env.update(
            {
                "JOURNEYHUB_DATA_DIR": str(self.root / "data"),
                "JOURNEYHUB_NATS_URL": self.nats.url,
                "JOURNEYHUB_STREAM_REPLICAS": str(self.nats.replicas),
                "JOURNEYHUB_SECRET_KEYS": self.key,
                "JOURNEYHUB_MAX_DELIVER": str(o.max_deliver),
                # pushes too: max_deliver attempts, 1 s apart and doubling
                "JOURNEYHUB_RETRY_SCHEDULE": ",".join(
                    f"{2**n}s" for n in range(max(1, o.max_deliver - 1))
                ),
                "JOURNEYHUB_ACK_WAIT_SECONDS": str(o.ack_wait),
                "JOURNEYHUB_BREAKER_THRESHOLD": str(o.breaker_threshold),
                "JOURNEYHUB_BREAKER_COOLDOWN_SECONDS": str(o.breaker_cooldown),
                "JOURNEYHUB_SYNC_TICK_SECONDS": "1",
                "JOURNEYHUB_LOG_FORMAT": "json",
                "JOURNEYHUB_LOG_LEVEL": o.log_level,
            }
        )
        if self.database_url:
            env["JOURNEYHUB_DATABASE_URL"] = self.database_url
        env.update(o.extra_env)
        return env

    async def start(self) -> Rig:
        o = self.options
        self.note(
            f"starting: NATS x{o.nats_nodes}, database {o.database}, "
            f"{o.gateways} gateway(s), {o.workers} worker(s)"
        )
        if self.own_nats:
            await asyncio.to_thread(self.nats.start)
        if o.database == "scratch":
            self.pg = await asyncio.to_thread(ScratchPostgres().start)
            self.database_url = self.pg.url
        elif o.database != "sqlite":
            self.database_url = o.database
        (self.root / "data").mkdir(exist_ok=True)
        settings = load_settings(self.env())
        self.hub = await Hub.start(settings)  # migrates and provisions the streams, once
        await self.provision()
        self.tave.start()
        for studio in self.studios:
            studio.stripe.start()
        self.gateways = [JhProcess("gateway", self.env(), self.logs, i) for i in range(o.gateways)]
        self.workers = [JhProcess("worker", self.env(), self.logs, i) for i in range(o.workers)]
        await asyncio.gather(*(asyncio.to_thread(p.start) for p in self.gateways + self.workers))
        self.http = httpx.AsyncClient(
            timeout=httpx.Timeout(15.0, connect=5.0), limits=httpx.Limits(max_connections=64)
        )
        await self.create_connections()
        self.note("rig ready")
        return self

    async def provision(self) -> None:
        """The studios' tenants and keys, straight in the store (as the CLI does)."""
        assert self.hub is not None
        store = self.hub.store
        for index in range(self.options.studios):
            tenant_id = await store.tenants.add(f"chaos studio {index}")
            self.studios.append(
                Studio(
                    index,
                    tenant_id,
                    await store.tenants.create_key(tenant_id, "admin"),
                    await store.tenants.create_key(tenant_id, "ingest"),
                    StripeSandbox(),
                )
            )

    async def create_connections(self) -> None:
        """Through the API, as a user would: the plugins validate config and credentials.
        Every studio's Tave connection reaches the one Tave sandbox (client ids are unique)."""
        for studio in self.studios:
            tave = await self.api(
                "POST",
                "/v1/connections",
                studio,
                json={
                    "vendor": "tave",
                    "name": "studio crm",
                    "direction": "outbound",
                    "config": {
                        "api_base": self.tave.api_base,
                        "timeout_seconds": VENDOR_TIMEOUT,
                        "rate_limit_per_second": self.options.tave_rate,
                    },
                    "credentials": {"api_key": self.tave.api_key},
                },
            )
            credentials: dict[str, Any] = {"webhook_secret": STRIPE_SECRET}
            config: dict[str, Any] = {
                "api_base": studio.stripe.url,
                "timeout_seconds": VENDOR_TIMEOUT,
            }
            if self.options.stripe_catchup:
                credentials["api_key"] = studio.stripe.api_key
                config["pull_interval_seconds"] = 5
            stripe = await self.api(
                "POST",
                "/v1/connections",
                studio,
                json={
                    "vendor": "stripe",
                    "name": "payments",
                    "direction": "inbound",
                    "config": config,
                    "credentials": credentials,
                },
            )
            studio.tave_id, studio.stripe_id = tave["id"], stripe["id"]

    async def api(
        self, method: str, path: str, studio: Studio, *, attempts: int = 30, **kwargs: Any
    ) -> Any:
        """An admin API call through the gateways (round robin), retried while the hub
        recovers."""
        assert self.http is not None
        key = studio.admin_key
        last = ""
        for attempt in range(attempts):
            gateway = self.gateways[attempt % len(self.gateways)]
            try:
                answer = await self.http.request(
                    method,
                    gateway.url + path,
                    headers={"authorization": f"Bearer {key}"},
                    **kwargs,
                )
            except httpx.HTTPError as exc:
                last = repr(exc)
            else:
                if answer.status_code < 300:
                    return answer.json() if answer.content else None
                last = f"{answer.status_code} {answer.text[:300]}"
                if answer.status_code < 500:
                    raise RuntimeError(f"{method} {path}: {last}")
            await asyncio.sleep(min(2.0, 0.2 * (attempt + 1)))
        raise RuntimeError(f"{method} {path} failed {attempts} times: {last}")

    async def stop(self) -> None:
        """End everything we started, each by its own pid, whatever failed before."""
        for process in self.gateways + self.workers:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(process.stop)
        if self.http is not None:
            with contextlib.suppress(Exception):
                await self.http.aclose()
        if self.hub is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.hub.close(), 20)
        for sandbox in [self.tave, *(s.stripe for s in self.studios)]:
            with contextlib.suppress(Exception):
                sandbox.stop()
        if self.own_nats:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.nats.stop)
        if self.pg is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.pg.stop)
        if self.own_root and not self.options.keep:
            shutil.rmtree(self.root, ignore_errors=True)

    def work_split(self) -> dict[str, dict[str, int]]:
        """What each process did: pushes delivered and webhooks processed per worker, from
        their JSON log lines (``delivered``; ``webhooks_processed``, one line per batch listing
        its webhooks); webhooks stored per gateway, from its ``/metrics`` (a gateway logs an
        accepted webhook at debug only). Call it while the gateways run."""
        out: dict[str, dict[str, int]] = {}
        for process in self.workers:
            counts: Counter[str] = Counter()
            for line in process.log_text().splitlines():
                if not line.startswith("{"):
                    continue
                with contextlib.suppress(ValueError):
                    entry = json.loads(line)
                    if entry.get("event") == "delivered":
                        counts["delivered"] += 1
                    elif entry.get("event") == "webhooks_processed":
                        counts["webhook_processed"] += len(entry.get("correlation_ids", []))
            out[f"{process.kind}-{process.index}"] = dict(counts)
        for process in self.gateways:
            stored = 0.0
            for line in httpx.get(f"{process.url}/metrics", timeout=10).text.splitlines():
                if line.startswith("journeyhub_webhooks_received_total{") and (
                    'outcome="accepted"' in line or 'outcome="duplicate"' in line
                ):
                    stored += float(line.rsplit(" ", 1)[1])
            out[f"{process.kind}-{process.index}"] = {"webhook_stored": int(stored)}
        return out

    def worker_log_lines(self) -> list[tuple[int, str]]:
        """Every line the workers logged, with the worker's index (read once, for ``explain``)."""
        return [(p.index, line) for p in self.workers for line in p.log_text().splitlines()]

    # --- faults --------------------------------------------------------------------------------

    def faults_on(self, rate: float, seed: int) -> None:
        """``rate`` of the sandboxes' answers are a 500, 502, 503, a 429 (Retry-After 1) or a
        timeout: the answer comes after the client's timeout, and the call still takes effect
        (as a vendor that commits and answers too late)."""
        faults = (
            Fault(status=500),
            Fault(status=502),
            Fault(status=503),
            Fault(status=429, retry_after=1),
            Fault(delay=VENDOR_TIMEOUT + 0.5),
        )
        self.tave.faults.chaos(rate, *faults, seed=seed)
        for studio in self.studios:
            studio.stripe.faults.chaos(rate, *faults, seed=seed + 1 + studio.index)

    def faults_off(self) -> None:
        self.tave.faults.clear()
        for studio in self.studios:
            studio.stripe.faults.clear()

    def injected(self) -> dict[str, dict[int, int]]:
        stripe: Counter[int] = Counter()
        for studio in self.studios:
            stripe.update(studio.stripe.faults.injected)
        return {"tave": dict(self.tave.faults.injected), "stripe": dict(stripe)}

    # --- workers ---------------------------------------------------------------------------------

    async def restart(self, process: JhProcess, attempts: int = 10) -> None:
        """Start again; a start can fail while the bus or the store is down: try again."""
        for attempt in range(attempts):
            try:
                await asyncio.to_thread(process.start, 90)
                return
            except RuntimeError as exc:
                self.note(
                    f"{process.kind} {process.index} start failed ({attempt + 1}): "
                    f"{str(exc).splitlines()[0][:120]}"
                )
                await asyncio.to_thread(process.stop)
                await asyncio.sleep(2)
        raise RuntimeError(f"{process.kind} {process.index} would not start again")


# --- sending --------------------------------------------------------------------------------------


@dataclass
class SendStats:
    requests: int = 0
    retries: int = 0
    refused: int = 0  # 4xx: a bug in the sender or the hub
    answers: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0


async def send_events(rig: Rig, plan: Plan, deadline: float) -> SendStats:
    """POST the plan's events in batches (one studio's events per batch, in plan order), each
    batch until 202 (the same ids on a retry: the hub keeps them once)."""
    assert rig.http is not None
    stats = SendStats()
    per_studio: dict[int, list[dict[str, Any]]] = {}
    for studio, event in plan.events:
        per_studio.setdefault(studio, []).append(event)
    batches: list[tuple[Studio, list[dict[str, Any]]]] = []
    size = rig.options.batch
    longest = max((len(v) for v in per_studio.values()), default=0)
    for start in range(0, longest, size):  # interleave the studios' batches
        for studio, events in sorted(per_studio.items()):
            if events[start : start + size]:
                batches.append((rig.studios[studio], events[start : start + size]))
    queue: asyncio.Queue[tuple[int, Studio, list[dict[str, Any]]]] = asyncio.Queue()
    for index, (studio, batch) in enumerate(batches):
        queue.put_nowait((index, studio, batch))
    started = time.monotonic()

    async def sender() -> None:
        while not queue.empty():
            index, studio, batch = queue.get_nowait()
            body = msgspec.json.encode(batch)
            headers = {
                "authorization": f"Bearer {studio.ingest_key}",
                "content-type": "application/json",
            }
            for attempt in range(1000):
                if time.monotonic() > deadline:
                    raise TimeoutError("events not all accepted before the deadline")
                gateway = rig.gateways[(index + attempt) % len(rig.gateways)]
                stats.requests += 1
                try:
                    answer = await rig.http.post(  # type: ignore[union-attr]
                        gateway.url + "/v1/events", content=body, headers=headers
                    )
                    stats.answers[str(answer.status_code)] += 1
                    if answer.status_code == 202:
                        break
                    if 400 <= answer.status_code < 500 and answer.status_code != 429:
                        stats.refused += 1
                        log(f"events refused: {answer.status_code} {answer.text[:200]}")
                        break
                except httpx.HTTPError as exc:
                    stats.answers[type(exc).__name__] += 1
                stats.retries += 1
                await asyncio.sleep(min(2.0, 0.25 * (attempt + 1)))

    await asyncio.gather(*(sender() for _ in range(rig.options.concurrency)))
    stats.seconds = time.monotonic() - started
    return stats


async def send_webhooks(rig: Rig, count: int, deadline: float) -> tuple[SendStats, dict[str, int]]:
    """Emit ``count`` Stripe events (webhook i in studio ``i % studios``) and deliver each,
    signed, until a 2xx, as Stripe's sender retries. Returns the event ids -> studio."""
    assert rig.http is not None
    stats = SendStats()
    ids: dict[str, int] = {}
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)
    started = time.monotonic()

    async def sender() -> None:
        while not queue.empty():
            i = queue.get_nowait()
            studio = rig.studios[i % len(rig.studios)]
            obj = payment_intent(amount=1000 + i, metadata={"client_id": f"{rig.prefix}-w{i}"})
            event = studio.stripe.emit("payment_intent.succeeded", obj)
            ids[event["id"]] = studio.index
            for attempt in range(1000):
                if time.monotonic() > deadline:
                    raise TimeoutError("webhooks not all acknowledged before the deadline")
                gateway = rig.gateways[(i + attempt) % len(rig.gateways)]
                url = f"{gateway.url}/webhooks/stripe/{studio.stripe_id}"
                stats.requests += 1
                try:
                    answer = await studio.stripe.deliver(event, url, [STRIPE_SECRET], rig.http)  # type: ignore[arg-type]
                    stats.answers[str(answer.status_code)] += 1
                    if answer.status_code < 300:
                        break
                    if answer.status_code in (400, 401, 404, 413):
                        stats.refused += 1
                        log(f"webhook refused: {answer.status_code} {answer.text[:200]}")
                        break
                except httpx.HTTPError as exc:
                    stats.answers[type(exc).__name__] += 1
                stats.retries += 1
                await asyncio.sleep(min(2.0, 0.25 * (attempt + 1)))

    await asyncio.gather(*(sender() for _ in range(rig.options.concurrency * 2)))
    stats.seconds = time.monotonic() - started
    return stats, ids


# --- counting -------------------------------------------------------------------------------------


def task_id(rig: Rig, studio: int, event_id: str) -> str:
    """The delivery task's id as the router makes it (the Tave note's external id)."""
    s = rig.studios[studio]
    return stable_id("dlv", s.tenant_id, event_id, s.tave_id)


async def store_progress(rig: Rig) -> dict[str, int]:
    """Tasks delivered, dead letters not yet replayed, triggers recorded (all studios)."""
    from journeyhub.store.tables import DeadLetter, Delivery, TriggerRow
    from sqlalchemy import distinct, func, select

    assert rig.hub is not None
    tave_ids = [s.tave_id for s in rig.studios]
    stripe_ids = [s.stripe_id for s in rig.studios]
    tenants = [s.tenant_id for s in rig.studios]
    async with rig.hub.store.session() as s:
        delivered = (
            await s.execute(
                select(func.count(distinct(Delivery.task_id))).where(
                    Delivery.connection_id.in_(tave_ids), Delivery.status == "delivered"
                )
            )
        ).scalar_one()
        triggers = (
            await s.execute(select(func.count()).where(TriggerRow.connection_id.in_(stripe_ids)))
        ).scalar_one()
        dead_rows = (
            await s.execute(
                select(DeadLetter.stage, DeadLetter.replayed_at.is_(None), func.count())
                .where(DeadLetter.tenant_id.in_(tenants))
                .group_by(DeadLetter.stage, DeadLetter.replayed_at.is_(None))
            )
        ).all()
    dead: Counter[str] = Counter()
    for stage, pending, n in dead_rows:
        dead[f"{stage}{'_pending' if pending else '_replayed'}"] += int(n)
    return {
        "delivered": int(delivered),
        "triggers": int(triggers),
        "dead_push_pending": dead["push_pending"],
        "dead_inbound_pending": dead["inbound_pending"],
        "dead_total": sum(dead.values()),
    }


async def backlog(rig: Rig) -> dict[str, int]:
    """Messages still in the work-queue streams."""
    assert rig.hub is not None
    out = {}
    for kind in ("events", "push", "inbound"):
        with contextlib.suppress(Exception):
            info = await rig.hub.bus.js.stream_info(rig.hub.bus.subjects.stream(kind))
            out[kind] = info.state.messages
    return out


async def wait_settled(
    rig: Rig, events: int, webhooks: int, timeout: float, every: float = 2.0
) -> dict[str, int]:
    """Until every event's task is delivered or dead, every webhook has a trigger or is dead,
    and the work queues are empty; or ``timeout``."""
    deadline = time.monotonic() + timeout
    last: dict[str, int] = {}
    last_print = 0.0
    while time.monotonic() < deadline:
        try:
            last = await store_progress(rig)
            queues = await backlog(rig)
        except Exception as exc:  # the store restarting
            log(f"progress unavailable: {type(exc).__name__}")
            await asyncio.sleep(every)
            continue
        done_events = last["delivered"] + last["dead_push_pending"] >= events
        done_hooks = last["triggers"] + last["dead_inbound_pending"] >= webhooks
        if done_events and done_hooks and not any(queues.values()):
            return last
        if time.monotonic() - last_print > 10:
            last_print = time.monotonic()
            log(f"waiting: {last} queues={queues}")
        await asyncio.sleep(every)
    return {**last, "timed_out": 1}


async def leftovers(rig: Rig, limit: int = 10) -> dict[str, Any]:
    """What is still in the work queues after the run, and what their consumers say of it: a
    task the workers never settle (in progress for ever, held back for ever) and a message
    the bus kept although its consumer acked it look alike in the counts and differ here."""
    from journeyhub.bus.jetstream import CONSUMERS, STREAMS
    from nats.js.api import RetentionPolicy

    assert rig.hub is not None
    js = rig.hub.bus.js
    queues = {s.kind for s in STREAMS if s.retention == RetentionPolicy.WORK_QUEUE}
    out: dict[str, Any] = {}
    for spec in (c for c in CONSUMERS if c.stream_kind in queues):
        stream = rig.hub.bus.subjects.stream(spec.stream_kind)
        try:
            info = await js.stream_info(stream)
            if not info.state.messages:
                continue
            consumer = await js.consumer_info(stream, spec.durable)
        except Exception as exc:
            out[spec.stream_kind] = f"unavailable: {type(exc).__name__}"
            continue
        messages = []
        seq, last = info.state.first_seq, info.state.last_seq
        while seq <= last and len(messages) < limit:
            with contextlib.suppress(Exception):  # deleted (acked) sequences are gaps
                raw = await js.get_msg(stream, seq)
                task = _task_id(raw.data or b"", "?")
                messages.append(f"seq {seq} {raw.subject} task={task}")
            seq += 1
        out[spec.stream_kind] = {
            "messages": info.state.messages,
            "consumer": (
                f"delivered={consumer.delivered.stream_seq if consumer.delivered else None} "
                f"ack_floor={consumer.ack_floor.stream_seq if consumer.ack_floor else None} "
                f"pending={consumer.num_pending} ack_pending={consumer.num_ack_pending} "
                f"redelivered={consumer.num_redelivered} waiting={consumer.num_waiting}"
            ),
            "first": messages,
        }
    return out


async def trigger_stream_counts(rig: Rig, timeout: float = 60.0) -> Counter[tuple[str, str]]:
    """Triggers on ``JH_TRIGGERS`` per (connection, source event id): what a journey engine
    reading the stream would see."""
    assert rig.hub is not None
    js = rig.hub.bus.js
    stream = rig.hub.bus.subjects.stream("triggers")
    total = (await js.stream_info(stream)).state.messages
    seen: Counter[tuple[str, str]] = Counter()
    if total == 0:
        return seen
    got = 0
    done = asyncio.Event()

    async def on_msg(msg: Any) -> None:
        nonlocal got
        got += 1
        with contextlib.suppress(Exception):
            body = msgspec.json.decode(msg.data)
            seen[(body["connection_id"], body["source_event_id"])] += 1
        if got >= total:
            done.set()

    sub = await js.subscribe(
        rig.hub.bus.subjects.wildcard("triggers"), cb=on_msg, ordered_consumer=True, stream=stream
    )
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), timeout)
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
    return seen


def note_ref(note: dict[str, Any]) -> str | None:
    """Our id of a Tave note: the task id in its ``journeyhub ref [<id>]`` line (the published
    Note schema has no externalMappings), as an external id."""
    found = re.search(r"journeyhub ref \[([^\]]+)\]", str(note.get("contentHtml") or ""))
    return external_id(html.unescape(found.group(1))) if found else None


def notes_out_of_order(
    notes: list[dict[str, Any]], tasks: list[Any], dead_tasks: set[str]
) -> list[str]:
    """The tasks whose note Tave made before the note of an earlier task of the same client.
    The client's order is its events' order on the bus (``tasks.sequence``: concurrent
    senders may have it differ from the plan's); a dead-lettered task leaves the order (its
    client's later tasks go on) and comes back when replayed, so it is not compared."""
    made_at = {}  # task id -> position of its note in the sandbox's creation order
    for position, note in enumerate(notes):
        if (ref := note_ref(note)) is not None:
            made_at.setdefault(ref, position)
    by_client: dict[str, list[tuple[int, int, str]]] = {}
    for task_id_, order_key, sequence in tasks:
        position = made_at.get(external_id(task_id_))
        if position is not None and task_id_ not in dead_tasks:
            by_client.setdefault(order_key, []).append((sequence, position, task_id_))
    late = []
    for entries in by_client.values():
        latest = -1
        for _sequence, position, task_id_ in sorted(entries):
            if position < latest:
                late.append(task_id_)
            latest = max(latest, position)
    return late


async def count(rig: Rig, plan: Plan, webhook_ids: dict[str, int]) -> dict[str, Any]:
    """Delivered, lost, duplicated and out of order, at the sandboxes and in the store."""
    from journeyhub.store.tables import Delivery, TaskRow, TriggerRow
    from sqlalchemy import func, select

    assert rig.hub is not None
    tave = rig.tave
    with tave._lock:
        store = {name: [dict(r) for r in records.values()] for name, records in tave.store.items()}
        creates = dict(tave.create_counts)

    def by_ext(resource: str) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for record in store[resource]:
            for mapping in record.get("externalMappings") or []:
                out[mapping["id"]] = record
        return out

    contacts, jobs = by_ext("address-book"), by_ext("job")
    note_refs = Counter(ref for note in store["note"] if (ref := note_ref(note)) is not None)
    notes = set(note_refs)
    links = Counter((r.get("jobId"), r.get("contactId")) for r in store["job-contact"])
    lost_events: list[str] = []
    for event_id, (_studio, client) in plan.started.items():
        contact, job = contacts.get(external_id(client)), jobs.get(external_id(f"ji_{client}"))
        if contact is None or job is None or links[(job["id"], contact["id"])] == 0:
            lost_events.append(event_id)
    for event_id, (studio, _client) in plan.steps.items():
        if external_id(task_id(rig, studio, event_id)) not in notes:
            lost_events.append(event_id)
    duplicate_creates = {
        f"{res}:{ext}": n for (res, ext), n in creates.items() if ext is not None and n > 1
    } | {f"note:{ref}": n for ref, n in note_refs.items() if n > 1}
    duplicate_links = {f"{job}/{contact}": n for (job, contact), n in links.items() if n > 1}

    stripe_ids = {s.stripe_id: s.index for s in rig.studios}
    async with rig.hub.store.session() as s:
        rows = (
            await s.execute(
                select(TriggerRow.connection_id, TriggerRow.source_event_id, func.count())
                .where(TriggerRow.connection_id.in_(list(stripe_ids)))
                .group_by(TriggerRow.connection_id, TriggerRow.source_event_id)
            )
        ).all()
        pushed_twice = (
            await s.execute(
                select(func.count()).select_from(
                    select(Delivery.task_id)
                    .where(
                        Delivery.connection_id.in_([x.tave_id for x in rig.studios]),
                        Delivery.status == "delivered",
                    )
                    .group_by(Delivery.task_id)
                    .having(func.count() > 1)
                    .subquery()
                )
            )
        ).scalar_one()
        tave_ids = [x.tave_id for x in rig.studios]
        tasks = (
            await s.execute(
                select(TaskRow.task_id, TaskRow.order_key, TaskRow.sequence).where(
                    TaskRow.connection_id.in_(tave_ids)
                )
            )
        ).all()
        dead_tasks = set(
            (
                await s.execute(
                    select(Delivery.task_id).where(
                        Delivery.connection_id.in_(tave_ids), Delivery.status == "dead"
                    )
                )
            ).scalars()
        )
    in_store = {(r[0], r[1]): int(r[2]) for r in rows}
    out_of_order = notes_out_of_order(store["note"], tasks, dead_tasks)
    duplicated_clients = [
        ext for (res, ext), n in creates.items() if ext is not None and n > 1 and res != "note"
    ]
    first_of = {}
    for task_id_, order_key, _sequence in tasks:
        first_of.setdefault(order_key, task_id_)
        first_of.setdefault(f"ji_{order_key}", task_id_)
    on_bus = await trigger_stream_counts(rig)
    on_bus = Counter({k: n for k, n in on_bus.items() if k[0] in stripe_ids})
    expected = {(rig.studios[studio].stripe_id, i) for i, studio in webhook_ids.items()}
    lost_webhooks = [i for (c, i) in expected if (c, i) not in in_store]
    return {
        "lost_explained": await explain(rig, plan, lost_events[:20]),
        "left_in_queues": await leftovers(rig),
        "events_delivered": len(plan.events) - len(lost_events),
        "events_lost": lost_events,
        "duplicate_creates": duplicate_creates,
        "duplicate_links": duplicate_links,
        "webhooks_delivered": len(expected) - len(lost_webhooks),
        "webhooks_lost": lost_webhooks,
        "duplicate_triggers_store": {f"{c}/{i}": n for (c, i), n in in_store.items() if n > 1},
        "duplicate_triggers_bus": {f"{c}/{i}": n for (c, i), n in on_bus.items() if n > 1},
        "unexpected_triggers": len(set(in_store) - expected),
        # one task pushed to success more than once: a redelivery while it was in flight
        "tasks_delivered_twice": int(pushed_twice),
        "notes_out_of_order": out_of_order,
        "order_explained": await explain_clients(rig, out_of_order[:3]),
        "duplicates_explained": await explain_clients(
            rig, [first_of[c] for c in duplicated_clients[:3] if c in first_of]
        ),
        "triggers_on_bus": sum(on_bus.values()),
        "tave_records": {k: len(v) for k, v in store.items()},
        "faults_injected": rig.injected(),
    }


def logged_about(lines: list[tuple[int, str]], needle: str, last: int = 12) -> list[str]:
    """The last ``last`` of the workers' log lines that name ``needle``, shortened."""
    found: list[str] = []
    for index, line in lines:
        if needle not in line:
            continue
        try:
            record = json.loads(line)
        except ValueError:
            found.append(f"w{index} - {line[:160]}")
            continue
        keys = ("status", "error", "attempt", "reason", "delay")
        extra = " ".join(f"{k}={str(record[k])[:60]}" for k in keys if k in record)
        stamp = str(record.get("timestamp", ""))[11:23]
        found.append(f"w{index} {stamp} {record.get('event')} {extra}".strip())
    return sorted(found, key=lambda line: line.split(" ", 2)[1])[-last:]


async def explain_clients(rig: Rig, task_ids: list[str]) -> dict[str, Any]:
    """For each task, every task of its client at its connection in the client's order: its
    state, attempts (to the millisecond) and what the workers logged about it; to tell how a
    client's tasks came to overlap."""
    from journeyhub.store.tables import Delivery, TaskRow
    from sqlalchemy import select

    assert rig.hub is not None
    logs = rig.worker_log_lines() if task_ids else []
    out: dict[str, Any] = {}
    async with rig.hub.store.session() as s:
        for tid in task_ids:
            task = await s.get(TaskRow, tid)
            if task is None:
                continue
            siblings = (
                await s.execute(
                    select(TaskRow)
                    .where(
                        TaskRow.connection_id == task.connection_id,
                        TaskRow.order_key == task.order_key,
                    )
                    .order_by(TaskRow.sequence)
                )
            ).scalars()
            story: dict[str, Any] = {}
            for sibling in siblings:
                attempts = (
                    await s.execute(
                        select(Delivery.status, Delivery.created_at, Delivery.error)
                        .where(Delivery.task_id == sibling.task_id)
                        .order_by(Delivery.id)
                    )
                ).all()
                story[f"seq {sibling.sequence} {sibling.task_id} ({sibling.state})"] = [
                    f"{a[1]:%H:%M:%S.%f} {a[0]}: {(a[2] or '')[:50]}" for a in attempts
                ] + logged_about(logs, sibling.task_id)
            out[f"client {task.order_key} of {tid}"] = story
    return out


async def explain(rig: Rig, plan: Plan, event_ids: list[str]) -> dict[str, Any]:
    """For events not delivered: their task's attempts, dead letters, task state (and the task
    its client waits behind, if another), and what the workers logged about them."""
    from journeyhub.store.tables import DeadLetter, Delivery, TaskRow
    from sqlalchemy import select

    assert rig.hub is not None
    studio_of = {e["id"]: studio for studio, e in plan.events}
    logs = rig.worker_log_lines() if event_ids else []
    out: dict[str, Any] = {}
    async with rig.hub.store.session() as s:

        async def about(tid: str) -> dict[str, Any]:
            attempts = (
                await s.execute(
                    select(Delivery.status, Delivery.error, Delivery.created_at)
                    .where(Delivery.task_id == tid)
                    .order_by(Delivery.id)
                )
            ).all()
            dead = (
                await s.execute(
                    select(DeadLetter.id, DeadLetter.replayed_at).where(DeadLetter.msg_id == tid)
                )
            ).all()
            task = await s.get(TaskRow, tid)
            found: dict[str, Any] = {
                "task": tid,
                "attempts": [f"{a[2]:%H:%M:%S} {a[0]}: {(a[1] or '')[:60]}" for a in attempts],
                "dead_letters": [f"{d[0]} replayed={d[1] is not None}" for d in dead],
                "state": None,
                "logged": logged_about(logs, tid),
            }
            if task is not None:
                found["state"] = (
                    f"{task.state} seq {task.sequence} attempts={task.attempts} "
                    f"failures={task.failures} held_by={task.held_by} "
                    f"held_until={task.held_until}"
                )
            if task is not None and task.state == "pending":
                first = (
                    await s.execute(
                        select(TaskRow.task_id)
                        .where(
                            TaskRow.connection_id == task.connection_id,
                            TaskRow.order_key == task.order_key,
                            TaskRow.state == "pending",
                        )
                        .order_by(TaskRow.sequence)
                        .limit(1)
                    )
                ).scalar_one()
                if first != tid:
                    found["waits_behind"] = first
            return found

        for event_id in event_ids:
            out[event_id] = await about(task_id(rig, studio_of[event_id], event_id))
            if blocker := out[event_id].get("waits_behind"):
                out[event_id]["blocker"] = await about(blocker)
    return out


async def dead_letter_outcomes(rig: Rig) -> dict[str, Any]:
    """Every dead letter of the studios: replayed? and is its work done now?"""
    from journeyhub.store.tables import DeadLetter, Delivery, TriggerRow
    from sqlalchemy import select

    assert rig.hub is not None
    tenants = [s.tenant_id for s in rig.studios]
    async with rig.hub.store.session() as s:
        dead = list(
            (await s.execute(select(DeadLetter).where(DeadLetter.tenant_id.in_(tenants)))).scalars()
        )
        delivered = set(
            (
                await s.execute(
                    select(Delivery.task_id).where(
                        Delivery.connection_id.in_([x.tave_id for x in rig.studios]),
                        Delivery.status == "delivered",
                    )
                )
            ).scalars()
        )
        triggers = set(
            (
                await s.execute(
                    select(TriggerRow.source_event_id).where(
                        TriggerRow.connection_id.in_([x.stripe_id for x in rig.studios])
                    )
                )
            ).scalars()
        )
    not_replayed, not_done = [], []
    stages: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    for row in dead:
        stages[row.stage] += 1
        errors[row.error.split(":")[0][:60]] += 1
        if row.replayed_at is None:
            not_replayed.append(row.id)
        if row.stage == "push":
            # The task's id from the payload: a dead letter of a replay has the replay's
            # message id, not the task's.
            ok = _task_id(row.payload, row.msg_id) in delivered
        else:  # inbound: stripe:<connection>:<event id>
            ok = row.msg_id.rsplit(":", 1)[-1] in triggers
        if not ok:
            not_done.append(f"{row.id} ({row.stage}: {row.error[:80]})")
    return {
        "dead_letters": len(dead),
        "by_stage": dict(stages),
        "errors": dict(errors),
        "replayed": len(dead) - len(not_replayed),
        "not_replayed": not_replayed,
        "replayed_not_delivered": not_done,
    }


async def replay_all(rig: Rig, rounds: int = 200, chunk: int = 200) -> int:
    """``POST /v1/dlq/replay`` for every studio, ``chunk`` dead letters a call (a call must end
    well inside the client's timeout: a retried call would replay beside the first), until
    none is left unreplayed."""
    total = 0
    for studio in rig.studios:
        for _ in range(rounds):
            answer = await rig.api(
                "POST", "/v1/dlq/replay", studio, json={"limit": chunk}, timeout=120.0
            )
            replayed = len(answer.get("replayed", []))
            total += replayed
            if replayed < chunk:
                break
    return total


def _task_id(payload: bytes, fallback: str) -> str:
    try:
        return str(json.loads(payload)["id"])
    except (ValueError, KeyError, TypeError):
        return fallback
