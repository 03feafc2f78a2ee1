"""The task gate and the outcome recorder, on the store alone: no bus, no vendor.

``decide`` is pure (rows in, decisions out); ``TaskGate`` and ``Recorder`` run on the test
database (SQLite, or PostgreSQL in CI) through a hub whose bus is never connected, and whose
connectors are stand-ins declared here (no plugin is loaded).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import msgspec
import pytest
import pytest_asyncio
from journeyhub.bus.jetstream import Bus
from journeyhub.delivery.gate import Decision, Offer, TaskGate, Verdict, decide, order_wait
from journeyhub.delivery.outcomes import Outcome, Recorder
from journeyhub.hookspecs import hookimpl
from journeyhub.hub import Hub
from journeyhub.model import (
    Connection,
    ConnectorInfo,
    DeliveryTask,
    JourneyEvent,
    SyncedRecord,
    utcnow,
)
from journeyhub.plugins import get_plugin_manager
from journeyhub.resilience.breaker import Breakers
from journeyhub.secretbox import load_secret_box
from journeyhub.settings import load_settings
from journeyhub.store.db import migrate
from journeyhub.store.store import Store
from journeyhub.store.tasks import Pending, TaskState
from journeyhub.testing.fixtures import database_url_for_tests
from journeyhub.vendor_http import VendorHttp
from sqlalchemy import event as sa_event

from ..conftest import event

NOW = utcnow()


def task(n: int, client: str = "cl_1", connection: str = "con_1", **extra: object) -> DeliveryTask:
    """The n-th task of a client: its sequence is n."""
    body = event(f"ev-{uuid.uuid4().hex[:8]}", client_id=client)
    return DeliveryTask(
        id=f"dlv_{uuid.uuid4().hex[:12]}",
        tenant_id="ten_1",
        connection_id=connection,
        vendor="tave",
        kind="event",
        order_key=client,
        sequence=n,
        event=msgspec.convert(body, JourneyEvent),
        **extra,
    )


def row(
    t: DeliveryTask,
    state: str = "pending",
    held_by: str | None = "me",
    held_until: object = NOW + timedelta(seconds=30),
    attempts: int = 1,
) -> TaskState:
    return TaskState(t.id, state, attempts, 0, held_by, held_until)  # type: ignore[arg-type]


def verdicts(decisions: list[Decision]) -> list[str]:
    return [d.verdict.value for d in decisions]


# --- decide: the rules, pure ------------------------------------------------------------------


def test_finished_dead_and_unknown_tasks_are_not_pushed() -> None:
    done, dropped, dead, unknown = task(1, "a"), task(1, "b"), task(1, "c"), task(1, "d")
    rows = {
        done.id: row(done, "done"),
        dropped.id: row(dropped, "dropped"),
        dead.id: row(dead, "dead"),
    }
    decisions = decide(
        [Offer(t) for t in (done, dropped, dead, unknown)],
        rows,
        {},
        holder="me",
        now=NOW,
        busy=set(),
        held_wait=5,
    )
    assert verdicts(decisions) == ["finished", "finished", "dead", "finished"]


def test_an_unfinished_earlier_task_of_the_client_holds_the_later_ones_back() -> None:
    first, second, third = task(1), task(2), task(3)
    pending = {
        ("con_1", "cl_1"): [
            Pending(1, first.id, False),
            Pending(2, second.id, False),
            Pending(3, third.id, False),
        ]
    }
    rows = {t.id: row(t) for t in (second, third)}
    decisions = decide(
        [Offer(second, offered=1), Offer(third, offered=4)],
        rows,
        pending,
        holder="me",
        now=NOW,
        busy=set(),
        held_wait=5,
    )
    assert verdicts(decisions) == ["wait", "wait"]
    assert decisions[0].delay == pytest.approx(0.3)  # the first hold-back is short
    assert 1.2 <= decisions[1].delay <= 2.4  # and it grows with every offer


def test_a_clients_tasks_in_one_batch_are_ready_in_order_until_one_must_wait() -> None:
    first, second, third = task(1), task(2), task(3)
    other = task(2, client="cl_2")
    held = row(second, held_by="another worker")
    rows = {first.id: row(first), second.id: held, third.id: row(third), other.id: row(other)}
    pending = {
        ("con_1", "cl_1"): [
            Pending(1, first.id, False),
            Pending(2, second.id, True),
            Pending(3, third.id, False),
        ],
        ("con_1", "cl_2"): [Pending(2, other.id, False)],
    }
    offers = [Offer(third), Offer(other), Offer(first), Offer(second)]  # any order
    decisions = decide(offers, rows, pending, holder="me", now=NOW, busy=set(), held_wait=5)
    by_task = {o.task.id: d for o, d in zip(offers, decisions, strict=True)}
    assert by_task[first.id].verdict == Verdict.READY
    assert by_task[other.id].verdict == Verdict.READY  # another client is not held back
    assert by_task[second.id].reason == "held by another worker"
    assert by_task[third.id].reason == "an earlier task of the client"


def test_a_task_held_elsewhere_waits_until_the_hold_runs_out() -> None:
    t = task(1)
    pending = {("con_1", "cl_1"): [Pending(1, t.id, False)]}
    live = {t.id: row(t, held_by="another worker")}
    expired = {t.id: row(t, held_by="another worker", held_until=NOW - timedelta(seconds=1))}
    assert verdicts(
        decide([Offer(t)], live, pending, holder="me", now=NOW, busy=set(), held_wait=5)
    ) == ["wait"]
    assert verdicts(
        decide([Offer(t)], expired, pending, holder="me", now=NOW, busy=set(), held_wait=5)
    ) == ["ready"]


def test_a_task_pushed_here_already_or_twice_in_a_batch_waits() -> None:
    t, u = task(1), task(1, client="cl_2")
    rows = {t.id: row(t), u.id: row(u)}
    pending = {
        ("con_1", "cl_1"): [Pending(1, t.id, False)],
        ("con_1", "cl_2"): [Pending(1, u.id, False)],
    }
    decisions = decide(
        [Offer(t), Offer(u), Offer(u)],
        rows,
        pending,
        holder="me",
        now=NOW,
        busy={t.id},
        held_wait=5,
    )
    assert verdicts(decisions) == ["wait", "ready", "wait"]


def test_a_replayed_task_waits_for_a_later_one_of_its_client_under_way() -> None:
    """A dead letter replayed goes back before tasks of its client that went on meanwhile; one
    of those being pushed (held, by anyone) holds it back; held only by this batch's own claim,
    it does not."""
    replayed, later = task(1), task(2)
    rows = {replayed.id: row(replayed)}
    pending = {("con_1", "cl_1"): [Pending(1, replayed.id, True), Pending(2, later.id, True)]}
    waiting = decide(
        [Offer(replayed)], rows, pending, holder="me", now=NOW, busy=set(), held_wait=5
    )
    assert waiting[0].reason == "a later task of the client under way"
    pushing_here = decide(
        [Offer(replayed)], rows, pending, holder="me", now=NOW, busy={later.id}, held_wait=5
    )
    assert pushing_here[0].reason == "a later task of the client under way"
    rows[later.id] = row(later)
    both = decide(
        [Offer(later), Offer(replayed)],
        rows,
        pending,
        holder="me",
        now=NOW,
        busy=set(),
        held_wait=5,
    )
    assert verdicts(both) == ["ready", "ready"]  # in order: the push worker pushes 1, then 2


def test_the_order_wait_grows_and_stays_bounded() -> None:
    assert order_wait(1) == pytest.approx(0.3)
    assert all(0.3 <= order_wait(3) <= 1.2 for _ in range(50))
    assert all(2.5 <= order_wait(20) <= 5.0 for _ in range(50))


def test_a_batch_the_gate_could_not_decide_comes_back_soon() -> None:
    """The store away: the wait grows with the gate's failures in a row, to 10 s at most, and
    starts well under a second (a task's count of offers, waits behind its client included,
    made it five minutes)."""
    from journeyhub.workers.push import STORE_AWAY_WAIT_MAX, store_away_wait

    assert all(0.2 <= store_away_wait(1) <= 0.5 for _ in range(50))
    assert all(store_away_wait(n) <= STORE_AWAY_WAIT_MAX == 10.0 for n in range(1, 200))
    assert all(store_away_wait(30) >= 5.0 for _ in range(50))


# --- the gate and the recorder on the store ----------------------------------------------------


@pytest_asyncio.fixture(scope="module")
async def ledger(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Hub]:
    """A hub with its store, plugins and connection cache, and a bus it never connects: what
    the gate and the recorder need, without NATS."""
    settings = load_settings(
        {},
        data_dir=Path(tmp_path_factory.mktemp("gate")),
        database_url=database_url_for_tests(),
        ack_wait_seconds=10,
    )
    await asyncio.to_thread(migrate, settings)
    store = Store(settings, load_secret_box(settings))
    registry = get_plugin_manager(load_entry_points=False)
    registry.register(CrmStandIn(), name="tave")
    registry.register(MailStandIn(), name="resend")
    hub = Hub(settings, registry, store, Bus(settings, "nats://127.0.0.1:9"), VendorHttp())
    yield hub
    await hub.http.aclose()
    await store.close()


class CrmStandIn:
    """The gate's view of Tave's connector: a push that takes the vendor id map (``known``).
    The gate never pushes."""

    @hookimpl
    def journeyhub_connector(self) -> ConnectorInfo:
        return ConnectorInfo(
            vendor="tave",
            display_name="a CRM (stand-in)",
            capabilities=frozenset({"push"}),
            auth_kind="api_key",
        )

    @hookimpl
    async def journeyhub_push(self, task: DeliveryTask, known: object) -> None:
        raise AssertionError("the gate never pushes")


class MailStandIn:
    """The gate's view of Resend's connector: a push that takes the suppressed addresses."""

    @hookimpl
    def journeyhub_connector(self) -> ConnectorInfo:
        return ConnectorInfo(
            vendor="resend",
            display_name="a mail service (stand-in)",
            capabilities=frozenset({"push"}),
            auth_kind="api_key",
        )

    @hookimpl
    async def journeyhub_push(self, task: DeliveryTask, suppressed: frozenset[str]) -> None:
        raise AssertionError("the gate never pushes")


@dataclass
class Studio:
    hub: Hub
    tenant_id: str
    tave: Connection
    resend: Connection

    def gate(self, holder: str, hold_seconds: float = 30) -> TaskGate:
        breakers = Breakers(self.hub.store, holder=holder)
        return TaskGate(self.hub, breakers, holder=holder, hold_seconds=hold_seconds)

    def task(self, n: int, client: str, connection: Connection | None = None) -> DeliveryTask:
        connection = connection or self.tave
        return DeliveryTask(
            **{
                f: getattr(task(n, client), f)
                for f in ("id", "kind", "order_key", "sequence", "event")
            },
            tenant_id=self.tenant_id,
            connection_id=connection.id,
            vendor=connection.vendor,
        )

    async def route(self, *tasks: DeliveryTask) -> None:
        await self.hub.store.run(lambda conn: self.hub.store.tasks.add(conn, list(tasks)))


@pytest_asyncio.fixture
async def studio(ledger: Hub) -> Studio:
    store = ledger.store
    tenant_id = await store.tenants.add("gate studio")
    common = dict(
        tenant_id=tenant_id,
        direction="outbound",
        enabled=True,
        event_types=[],
        field_mappings=[],
        actor="test",
    )
    tave = await store.connections.create(
        vendor="tave",
        name="crm",
        config={"api_base": "http://127.0.0.1:9/api/v2"},
        credentials={"api_key": "tave-key-for-the-gate"},
        **common,
    )
    resend = await store.connections.create(
        vendor="resend",
        name="mail",
        credentials={"api_key": "re_gate_key_0123456789abcdef"},
        config={"api_base": "http://127.0.0.1:9", "from_address": "Studio <hi@example.com>"},
        **common,
    )
    return Studio(ledger, tenant_id, tave, resend)


@contextlib.contextmanager
def transactions_of(store: Store) -> Iterator[list[object]]:
    """The transactions this store begins meanwhile (the process-wide counter would also count
    those of any other hub running in the same test session)."""
    engines = [e for e in (store.engine.sync_engine, store._quick, store._patient) if e]
    begun: list[object] = []

    def count(connection: object) -> None:
        begun.append(connection)

    for engine in engines:
        sa_event.listen(engine, "begin", count)
    try:
        yield begun
    finally:
        for engine in engines:
            sa_event.remove(engine, "begin", count)


async def admit(gate: TaskGate, *tasks: DeliveryTask, offered: int = 1) -> dict[str, Decision]:
    decisions = await gate.admit([Offer(t, offered) for t in tasks])
    return {t.id: d for t, d in zip(tasks, decisions, strict=True)}


async def test_a_batch_is_decided_in_one_store_transaction(studio: Studio) -> None:
    """Once the connection and its breaker state are cached (read once per connection every
    few seconds, not per batch)."""
    warm, *tasks = [studio.task(1, f"cl_batch_{n}") for n in range(51)]
    await studio.route(warm, *tasks)
    gate = studio.gate("worker-a")
    await admit(gate, warm)
    with transactions_of(studio.hub.store) as begun:
        decided = await admit(gate, *tasks)
    assert len(begun) == 1
    assert {d.verdict for d in decided.values()} == {Verdict.READY}
    assert {d.attempt for d in decided.values()} == {1}


async def test_two_workers_admitting_the_same_tasks_get_each_one_once(studio: Studio) -> None:
    tasks = [studio.task(1, f"cl_race_{n}") for n in range(30)]
    await studio.route(*tasks)
    a, b = studio.gate("worker-a"), studio.gate("worker-b")
    first, second = await asyncio.gather(admit(a, *tasks), admit(b, *tasks))
    ready_a = {t for t, d in first.items() if d.verdict == Verdict.READY}
    ready_b = {t for t, d in second.items() if d.verdict == Verdict.READY}
    assert ready_a | ready_b == {t.id for t in tasks} and not ready_a & ready_b
    assert all(second[t].reason == "held by another worker" for t in ready_a)


async def test_a_clients_order_holds_across_two_workers(studio: Studio) -> None:
    """Four tasks of one client offered to two workers over and over: only the earliest
    unfinished one is ever ready, and only to one of them."""
    tasks = [studio.task(n, "cl_order") for n in range(1, 5)]
    await studio.route(*tasks)
    gates = [studio.gate("worker-a"), studio.gate("worker-b")]
    pushed: list[str] = []
    for round_ in range(8):
        gate = gates[round_ % 2]
        decided = await admit(gate, *reversed(tasks))  # newest first, as a redelivery may come
        ready = [t for t in tasks if decided[t.id].verdict == Verdict.READY]
        unfinished = [t for t in tasks if t.id not in pushed]
        if not unfinished:
            assert not ready
            continue
        assert [t.id for t in ready] == [t.id for t in unfinished]  # all of it, in order
        for t in ready[:1]:  # push the first, and give the rest back: its push "failed"
            await Recorder(studio.hub.store, gate.holder).record(
                Outcome(task=t, status="delivered", attempt=decided[t.id].attempt)
            )
            gate.settled(t.id)
            pushed.append(t.id)
        await gate.give_back([t.id for t in ready[1:]])
    assert pushed == [t.id for t in tasks]


async def test_a_client_waits_only_behind_its_own_tasks_at_its_own_connection(
    studio: Studio,
) -> None:
    """The store is asked per column (connections, clients): the Tave task of X and the Resend
    task of Y wait, the Tave task of Y and the Resend task of X, which the same lists cover,
    do not."""
    x_tave, y_resend = studio.task(1, "cl_x"), studio.task(1, "cl_y", connection=studio.resend)
    y_tave, x_resend = studio.task(2, "cl_y"), studio.task(2, "cl_x", connection=studio.resend)
    await studio.route(x_tave, y_resend, y_tave, x_resend)
    await admit(studio.gate("worker-a"), x_tave, y_resend)  # held, unfinished
    decided = await admit(studio.gate("worker-b"), y_tave, x_resend)
    assert {d.verdict for d in decided.values()} == {Verdict.READY}


async def test_suppressions_are_matched_per_tenant(studio: Studio) -> None:
    from journeyhub.store.suppressions import suppressed_among

    other = await studio.hub.store.tenants.add("another studio")
    await studio.hub.store.triggers.suppress(studio.tenant_id, "x@example.com", "bounced")
    await studio.hub.store.triggers.suppress(other, "y@example.com", "bounced")
    wanted = {
        (studio.tenant_id, "y@example.com"),
        (other, "x@example.com"),
        (other, "y@example.com"),
    }
    found = await studio.hub.store.run(lambda conn: suppressed_among(conn, wanted))
    assert found == {(other, "y@example.com")}


async def test_attempts_and_failures_are_counted_and_a_replay_counts_afresh(
    studio: Studio,
) -> None:
    first, later = studio.task(1, "cl_count"), studio.task(2, "cl_count")
    await studio.route(first, later)
    gate = studio.gate("worker-a")
    decided = await admit(gate, later, first)
    assert decided[first.id].attempt == 1 and decided[later.id].attempt == 1
    assert decided[later.id].known.first_attempt  # nothing of the client can be unknown
    await gate.give_back([later.id])  # never pushed: no attempt was begun
    recorder = Recorder(studio.hub.store, gate.holder)
    await recorder.record(Outcome(task=first, status="failed", attempt=1, error="503"))
    gate.settled(first.id)
    decided = await admit(gate, first)
    assert (decided[first.id].attempt, decided[first.id].failures) == (2, 1)
    await recorder.record(Outcome(task=first, status="rate_limited", attempt=2))  # not a failure
    gate.settled(first.id)
    decided = await admit(gate, first)
    assert (decided[first.id].attempt, decided[first.id].failures) == (3, 1)
    await recorder.record(Outcome(task=first, status="dead", attempt=3, error="gone"))
    gate.settled(first.id)
    assert (await admit(gate, first))[first.id].verdict == Verdict.DEAD
    going_on = (await admit(gate, later))[later.id]
    assert going_on.verdict == Verdict.READY  # no longer held back
    # The dead task's attempts may have written what no outcome reported: look up first.
    assert going_on.known.after_dead_letter and not going_on.known.first_attempt
    await studio.hub.store.run(  # the dead letter replayed while `later` is under way
        lambda conn: studio.hub.store.tasks.reopen(conn, first)
    )
    replayed = (await admit(studio.gate("worker-b"), first))[first.id]
    assert replayed.reason == "a later task of the client under way"
    await gate.give_back([later.id])
    assert (await admit(gate, later))[later.id].reason == "an earlier task of the client"
    decided = await admit(gate, first)
    assert decided[first.id].verdict == Verdict.READY and decided[first.id].failures == 0


async def test_a_hold_runs_out_and_only_its_holder_extends_it(studio: Studio) -> None:
    kept, lapsed = studio.task(1, "cl_kept"), studio.task(1, "cl_lapsed")
    await studio.route(kept, lapsed)
    a, b = studio.gate("worker-a", hold_seconds=0.3), studio.gate("worker-b")
    await admit(a, kept, lapsed)
    until = utcnow() + timedelta(seconds=30)
    await studio.hub.store.tasks.extend([kept.id], "worker-a", until)
    await studio.hub.store.tasks.extend([lapsed.id], "worker-b", until)  # not b's: no effect
    await asyncio.sleep(0.5)
    decided = await admit(b, kept, lapsed)
    assert decided[kept.id].reason == "held by another worker"
    assert decided[lapsed.id].verdict == Verdict.READY  # a's hold ran out: b has it


async def test_a_gone_connection_finishes_its_tasks(studio: Studio) -> None:
    t = studio.task(1, "cl_gone")
    await studio.route(t)
    await studio.hub.store.connections.update(
        studio.tave.id, studio.tenant_id, {"enabled": False}, actor="test"
    )
    studio.hub.connection_cache.invalidate(studio.tave.id, studio.tenant_id)
    decided = await admit(studio.gate("worker-a"), t)
    assert decided[t.id].verdict == Verdict.FINISHED
    assert (await studio.hub.store.tasks.get(t.id)).state == "dropped"  # type: ignore[union-attr]


async def test_the_vendor_id_map_and_suppressions_go_to_the_plugins_that_take_them(
    studio: Studio,
) -> None:
    """Tave's push takes ``known``; Resend's takes ``suppressed``. What a push reported (and a
    record found deleted later) is what the next task of the client knows."""
    start, step = studio.task(1, "cl_known"), studio.task(2, "cl_known")
    mail = studio.task(1, "cl_known", connection=studio.resend)
    await studio.route(start, step, mail)
    gate = studio.gate("worker-a")
    decided = await admit(gate, start)
    assert decided[start.id].known.records == () and decided[start.id].known.first_attempt
    contact = SyncedRecord(
        kind="contact",
        vendor_id="c-1",
        our_id="cl_known",
        email="cl_known@example.com",
        fields={"name": "Ada"},
    )
    job = SyncedRecord(kind="job", vendor_id="j-1", our_id="cl_known", ref="ji_cl_known")
    await Recorder(studio.hub.store, gate.holder).record(
        Outcome(task=start, status="delivered", attempt=1, records=[contact, job])
    )
    gate.settled(start.id)
    await studio.hub.store.triggers.suppress(studio.tenant_id, "CL_KNOWN@example.com", "bounced")
    decided = await admit(gate, step, mail)
    known = decided[step.id].known
    assert known.find("contact").vendor_id == "c-1"  # type: ignore[union-attr]
    assert known.find("contact").fields == {"name": "Ada"}  # type: ignore[union-attr]
    assert known.find("job", ref="ji_cl_known").vendor_id == "j-1"  # type: ignore[union-attr]
    assert decided[step.id].suppressed == frozenset()  # Tave sends no email: not asked
    assert decided[mail.id].suppressed == {"cl_known@example.com"}
    assert decided[mail.id].known.records == ()  # Resend does not take the map
    gone = SyncedRecord(kind="job", vendor_id="j-1", our_id="cl_known", deleted=True)
    await Recorder(studio.hub.store, gate.holder).record(
        Outcome(task=step, status="delivered", attempt=1, records=[gone])
    )
    later = studio.task(3, "cl_known")
    await studio.route(later)
    known = (await admit(gate, later))[later.id].known
    assert known.find("job") is None and known.find("contact") is not None


async def test_outcomes_written_meanwhile_share_a_transaction(studio: Studio) -> None:
    tasks = [studio.task(1, f"cl_group_{n}") for n in range(40)]
    await studio.route(*tasks)
    gate = studio.gate("worker-a")
    await admit(gate, *tasks)
    recorder = Recorder(studio.hub.store, gate.holder)
    with transactions_of(studio.hub.store) as begun:
        await asyncio.gather(
            *(recorder.record(Outcome(task=t, status="delivered", attempt=1)) for t in tasks)
        )
    assert len(begun) <= 2  # the first alone, then the rest
    states = {t.id: await studio.hub.store.tasks.get(t.id) for t in tasks}
    assert {s.state for s in states.values() if s} == {"done"}
    assert {s.held_by for s in states.values() if s} == {None}
