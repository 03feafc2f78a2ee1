"""The task gate: may a delivery task the bus offers be pushed now?

Every question the push worker must answer before it calls a vendor is answered here, for
all tasks of a fetched batch at once, in one store transaction:

- **finished**: the task was delivered (or skipped), or dropped with its connection, or was
  never routed: acknowledge the message, push nothing.
- **dead**: its dead letter is not replayed yet; the dead letter owns the task, and this
  message (the bus offering a terminated message again) is dropped.
- **wait**, with a delay: an earlier task of the same client on the connection is unfinished
  (if it waits for a retry, until just after that retry's time), or a later one is being
  pushed (a replayed dead letter goes back before tasks already under way; it waits for
  them): one task per client at a time, in order; another worker, or this process, is
  pushing the task; the connection's breaker is open or a 429 pause holds it; it waits for
  re-authorisation; its plugin is not installed in this process.
- **ready**: this process now holds the task in the store (``held_by`` / ``held_until``,
  extended while it pushes, so a redelivery is not pushed by a second worker beside it), with
  its attempt number, its failures so far, and what the push needs: the vendor id map
  (``Known``: complete unless this task was attempted before or an earlier task of the client
  was dead-lettered, either of which may have written what the map lacks) and the suppressed
  addresses, for the connectors that take them.

Per-client order rests on the routers: they put every task in the ``tasks`` table, in its
client's order, before publishing it, one router at a time (``workers/router.py``). So an
earlier task of the client is either finished or pending there when a later one is offered.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from journeyhub.connection_cache import Entry
from journeyhub.hub import Hub
from journeyhub.logs import get_logger
from journeyhub.model import Connection, ConnectorInfo, DeliveryTask, Known, client_of, utcnow
from journeyhub.resilience.breaker import Breakers
from journeyhub.store.suppressions import suppressed_among
from journeyhub.store.tasks import DEAD, DONE, DROPPED, OrderKey, Pending, TaskState

log = get_logger(__name__)
ORDER_WAIT = 0.3  # seconds before a task held back behind its client's earlier one comes back
ORDER_WAIT_MAX = 5.0  # ... about doubling each time it is held back again, up to this
REAUTH_WAIT = 300.0
PLUGIN_MISSING_WAIT = 30.0  # the plugin is not installed here: another worker may have it


class Verdict(StrEnum):
    READY = "ready"
    WAIT = "wait"
    FINISHED = "finished"
    DEAD = "dead"


@dataclass(frozen=True)
class Offer:
    """A task the bus offers, and how many times it has offered this message (1 at first)."""

    task: DeliveryTask
    offered: int = 1


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reason: str = ""
    delay: float = 0.0  # for WAIT: seconds before the bus offers it again
    attempt: int = 0  # for READY: the number of the attempt now starting
    failures: int = 0  # failed attempts so far (since the last replay)
    connection: Connection | None = None
    credentials: dict[str, Any] = field(default_factory=dict)
    info: ConnectorInfo | None = None
    known: Known = field(default_factory=Known)
    suppressed: frozenset[str] = frozenset()


def order_wait(offered: int) -> float:
    """How long a task held back behind an earlier one of its client waits in the bus: 0.3 s
    the first time, then about doubling with every offer, up to 5 s, with jitter. With a
    backlog behind a failing vendor, a fixed short wait made held-back tasks come back so
    often that they took the whole worker and starved the tasks they waited for."""
    held = max(0, offered - 1)
    if held == 0:
        return ORDER_WAIT
    ceiling = min(ORDER_WAIT_MAX, ORDER_WAIT * 2 ** min(held, 10))
    return random.uniform(ceiling / 2, ceiling)


def retry_wait(pending: Iterable[Pending], sequence: int, now: datetime) -> float:
    """Seconds until the latest retry among a task's earlier pending tasks that wait for one
    (not held now), a moment after it: nothing of the client can go before then, and behind
    a retry hours away the task would otherwise come back every few seconds to find so."""
    times = [p.next_at for p in pending if p.sequence < sequence and not p.held and p.next_at]
    latest = max((_aware(t) for t in times), default=None)
    return 0.0 if latest is None else max(0.0, (latest - now).total_seconds()) + ORDER_WAIT


def _aware(moment: datetime) -> datetime:
    """SQLite hands timestamps back naive; they were written in UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def order_key(task: DeliveryTask) -> OrderKey:
    return (task.connection_id, task.order_key)


def decide(
    offers: list[Offer],
    rows: dict[str, TaskState],
    pending: dict[OrderKey, list[Pending]],
    *,
    holder: str,
    now: datetime,
    busy: set[str],
    held_wait: float,
) -> list[Decision]:
    """The store's side of the decision, for offers whose connection may push now.

    ``rows``: the tasks' rows after this holder claimed the free ones; ``pending``: per client
    key, its pending tasks up to the batch's last task of that key and the later ones held;
    ``busy``: tasks this process is pushing already. A client's tasks are decided in their
    order, and a task of the client ready in this batch does not hold back the next one (the
    push worker pushes them one after the other, in order)."""
    decisions: list[Decision | None] = [None] * len(offers)
    ready: set[str] = set()
    # The batch's tasks are held by this holder's claim a moment ago; they are decided here.
    deciding = {offer.task.id for offer in offers} - busy
    by_key: dict[OrderKey, list[int]] = defaultdict(list)
    for index, offer in enumerate(offers):
        by_key[order_key(offer.task)].append(index)
    for key, indexes in by_key.items():
        indexes.sort(key=lambda i: offers[i].task.sequence)
        blocked = False
        for index in indexes:
            task, row = offers[index].task, rows.get(offers[index].task.id)
            if row is None:
                decision = Decision(Verdict.FINISHED, "unknown task")
            elif row.state in (DONE, DROPPED):
                decision = Decision(Verdict.FINISHED, row.state)
            elif row.state == DEAD:
                decision = Decision(Verdict.DEAD, "dead letter not replayed")
            elif task.id in busy or task.id in ready:
                decision = Decision(Verdict.WAIT, "pushing here already", held_wait)
            elif (
                row.held_by not in (None, holder)
                and row.held_until is not None
                and row.held_until > now
            ):
                decision = Decision(Verdict.WAIT, "held by another worker", held_wait)
                blocked = True
            elif blocked or any(
                p.sequence < task.sequence and p.task_id not in ready for p in pending.get(key, ())
            ):
                delay = max(
                    order_wait(offers[index].offered),
                    retry_wait(pending.get(key, ()), task.sequence, now),
                )
                decision = Decision(Verdict.WAIT, "an earlier task of the client", delay)
                blocked = True
            elif any(
                p.sequence > task.sequence and p.held and p.task_id not in deciding
                for p in pending.get(key, ())
            ):
                delay = order_wait(offers[index].offered)
                decision = Decision(Verdict.WAIT, "a later task of the client under way", delay)
                blocked = True
            else:
                decision = Decision(Verdict.READY, attempt=row.attempts, failures=row.failures)
                ready.add(task.id)
            decisions[index] = decision
    return [d for d in decisions if d is not None]


class TaskGate:
    """Decides for a process's push worker, and keeps what that process holds."""

    def __init__(self, hub: Hub, breakers: Breakers, *, holder: str, hold_seconds: float) -> None:
        self.hub = hub
        self.breakers = breakers
        self.holder = holder
        self.hold_seconds = hold_seconds
        self.held_wait = max(1.0, hub.settings.ack_wait_seconds / 2)
        self.in_hand: set[str] = set()  # tasks this process holds: being pushed, or queued

    async def admit(self, offers: list[Offer]) -> list[Decision]:
        """One decision per offer, in order; the ready ones are now held by this process."""
        decisions: list[Decision | None] = [None] * len(offers)
        asking: list[int] = []  # offers the store decides
        dropped: list[str] = []
        entries: dict[str, Entry] = {}
        for index, offer in enumerate(offers):
            entry = await self.hub.connection_cache.get(offer.task.connection_id)
            early = await self._connection_check(entry)
            if early is None:
                asking.append(index)
                entries[offer.task.connection_id] = entry  # type: ignore[assignment]
            else:
                decisions[index] = early
                if early.reason == "connection gone":
                    dropped.append(offer.task.id)
        if asking or dropped:
            asked = [offers[i] for i in asking]
            busy = set(self.in_hand)
            stored = await self.hub.store.run(
                lambda conn: self._decide_in_store(conn, asked, dropped, busy, entries)
            )
            for index, decision in zip(asking, stored, strict=True):
                decisions[index] = decision
                if decision.verdict == Verdict.READY:
                    self.in_hand.add(offers[index].task.id)
        return [d for d in decisions if d is not None]

    async def _connection_check(self, entry: Entry | None) -> Decision | None:
        """The checks that need no store transaction (the connection is cached, the breaker's
        state too): a Decision when the task cannot go now, None when the store decides."""
        if entry is None or not entry[0].enabled:
            return Decision(Verdict.FINISHED, "connection gone")
        connection = entry[0]
        if connection.status == "needs_reauth":
            return Decision(Verdict.WAIT, "needs re-authorisation", REAUTH_WAIT)
        if connection.vendor not in self.hub.registry.connectors:
            return Decision(Verdict.WAIT, "plugin not installed here", PLUGIN_MISSING_WAIT)
        allowed = await self.breakers.allow(connection.id)
        if not allowed.allowed:
            return Decision(Verdict.WAIT, allowed.reason, max(0.2, allowed.wait))
        return None

    def _decide_in_store(
        self,
        conn: Any,
        offers: list[Offer],
        dropped: list[str],
        busy: set[str],
        entries: dict[str, Entry],
    ) -> list[Decision]:
        """The gate's one transaction: claim, read, decide, give back what waits, and read
        what the ready tasks' pushes take."""
        tasks = self.hub.store.tasks
        now = utcnow()
        tasks.finish(conn, dropped, DROPPED, now)
        claimed = tasks.claim(
            conn,
            sorted({o.task.id for o in offers} - busy),
            self.holder,
            now + timedelta(seconds=self.hold_seconds),
        )
        rows = claimed | tasks.states(conn, sorted({o.task.id for o in offers} - set(claimed)))
        upto: dict[OrderKey, int] = {}
        for offer in offers:
            key = order_key(offer.task)
            upto[key] = max(upto.get(key, 0), offer.task.sequence)
        decisions = decide(
            offers,
            rows,
            tasks.pending_around(conn, upto, now),
            holder=self.holder,
            now=now,
            busy=busy,
            held_wait=self.held_wait,
        )
        ready = {
            o.task.id for o, d in zip(offers, decisions, strict=True) if d.verdict == Verdict.READY
        }
        tasks.unclaim(conn, [t for t in claimed if t not in ready], self.holder)
        return self._with_context(conn, offers, decisions, entries)

    def _with_context(
        self, conn: Any, offers: list[Offer], decisions: list[Decision], entries: dict[str, Entry]
    ) -> list[Decision]:
        """Ready decisions get the connection and what its push takes: the vendor id map and
        the suppressed addresses, read in the gate's transaction for the whole batch."""
        registry = self.hub.registry
        ready: list[tuple[int, DeliveryTask, bool]] = []
        wanted_known: list[tuple[str, str, str | None]] = []
        known_keys: set[OrderKey] = set()
        wanted_suppressed: set[tuple[str, str]] = set()
        for index, (offer, decision) in enumerate(zip(offers, decisions, strict=True)):
            if decision.verdict != Verdict.READY:
                continue
            vendor = entries[offer.task.connection_id][0].vendor
            if registry.takes(vendor, "journeyhub_push", "known"):
                client, email = client_of(offer.task)
                if client is not None:
                    wanted_known.append((offer.task.connection_id, client, email))
                    known_keys.add(order_key(offer.task))
            mails = registry.takes(vendor, "journeyhub_push", "suppressed") or registry.takes(
                vendor, "journeyhub_push_batch", "suppressed"
            )
            if mails:
                wanted_suppressed |= {(offer.task.tenant_id, e) for e in recipients(offer.task)}
            ready.append((index, offer.task, mails))
        known = self.hub.store.sync.known(conn, wanted_known)
        after_dead = self.hub.store.tasks.with_dead(conn, known_keys)
        suppressed = suppressed_among(conn, wanted_suppressed)
        out = list(decisions)
        for index, task, mails in ready:
            connection, credentials = entries[task.connection_id]
            client, _ = client_of(task)
            decision = decisions[index]
            out[index] = Decision(
                Verdict.READY,
                attempt=decision.attempt,
                failures=decision.failures,
                connection=connection,
                credentials=credentials,
                info=registry.connectors[connection.vendor].info,
                known=Known(
                    records=known.get((connection.id, client), ()) if client else (),
                    attempt=decision.attempt,
                    after_dead_letter=order_key(task) in after_dead,
                ),
                suppressed=frozenset(
                    e for e in recipients(task) if mails and (task.tenant_id, e) in suppressed
                ),
            )
        return out

    def settled(self, task_id: str) -> None:
        """The task's message is settled (acked, retried, dead-lettered): not held here."""
        self.in_hand.discard(task_id)

    async def give_back(self, task_ids: list[str]) -> None:
        """Tasks this process held but will not push now (its client's earlier task failed,
        its batching sender stopped): free in the store for whoever gets them next."""
        try:
            await self.hub.store.tasks.give_back(task_ids, self.holder)
        finally:
            # Not held here any more either way: if the store was away, the holds are no
            # longer extended (keep_holds) and run out, so another offer can take the tasks.
            self.in_hand.difference_update(task_ids)

    async def keep_holds(self) -> None:
        """Extend the holds of every task this process still holds, every third of a hold: a
        push that outlasts its hold (queued behind a rate limiter in a loaded worker) must not
        be taken by a second worker when the bus offers its message again. If this process
        dies the beats stop and the holds expire."""
        while True:
            await asyncio.sleep(self.hold_seconds / 3)
            holding = sorted(self.in_hand)
            with contextlib.suppress(Exception):  # the store away: the next beat will do
                until = utcnow() + timedelta(seconds=self.hold_seconds)
                await self.hub.store.tasks.extend(holding, self.holder, until)


def recipients(task: DeliveryTask) -> list[str]:
    """The addresses a mail of this task would go to (lower-case): the client's, and the
    mapped ``to`` / ``cc`` / ``bcc``."""
    found: list[str] = []
    if task.event is not None and task.event.client.email:
        found.append(task.event.client.email.lower())
    for key in ("to", "cc", "bcc"):
        value = task.mapped.get(key)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and "@" in item:
                found.append(item.lower())
    return found
