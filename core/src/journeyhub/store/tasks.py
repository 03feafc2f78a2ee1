"""Delivery tasks and where each stands (the ``tasks`` table).

Most statements here run inside a transaction the caller runs with ``Store.run``: the
router's, the task gate's, the outcome recorder's, so each of those is one transaction per
batch. The decisions themselves are made in ``journeyhub.delivery.gate``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import (
    BindParameter,
    Connection,
    bindparam,
    func,
    literal_column,
    or_,
    select,
    update,
)

from journeyhub.model import DeliveryTask, utcnow
from journeyhub.store.tables import TaskRow, table_of

if TYPE_CHECKING:
    from journeyhub.store.store import Store

TASKS = table_of(TaskRow)
PENDING, DONE, DEAD, DROPPED = "pending", "done", "dead", "dropped"
# Written as a literal, not a bound parameter: only then can SQLite and PostgreSQL see that a
# query's rows are all in the partial index of pending tasks.
IS_PENDING = TASKS.c.state == literal_column(f"'{PENDING}'")
IS_DEAD = TASKS.c.state == literal_column(f"'{DEAD}'")
OrderKey = tuple[str, str]  # (connection id, client key)


class Pending(NamedTuple):
    """A pending task of a client, as the gate sees it."""

    sequence: int
    task_id: str
    held: bool  # a worker holds it now: being pushed, or queued to be
    next_at: datetime | None = None  # given back after an attempt: when it is tried again


STATE_COLUMNS = (
    TASKS.c.task_id,
    TASKS.c.state,
    TASKS.c.attempts,
    TASKS.c.failures,
    TASKS.c.held_by,
    TASKS.c.held_until,
)


# The gate's and the recorder's statements, built once: they run for every batch, and
# building a statement anew costs more than SQLite takes to run it.
_IDS: BindParameter[Any] = bindparam("ids", expanding=True)
_CLAIM = (
    update(TASKS)
    .where(
        TASKS.c.task_id.in_(_IDS),
        IS_PENDING,
        or_(
            TASKS.c.held_by.is_(None),
            TASKS.c.held_until < bindparam("now"),
            TASKS.c.held_by == bindparam("holder"),
        ),
    )
    .values(
        held_by=bindparam("holder"), held_until=bindparam("until"), attempts=TASKS.c.attempts + 1
    )
    .returning(*STATE_COLUMNS)
)
_UNCLAIM = (
    update(TASKS)
    .where(TASKS.c.task_id.in_(_IDS), TASKS.c.held_by == bindparam("holder"))
    .values(held_by=None, held_until=None, attempts=TASKS.c.attempts - 1)
)
_STATES = select(*STATE_COLUMNS).where(TASKS.c.task_id.in_(_IDS))
_PENDING_AROUND = (
    select(
        TASKS.c.connection_id,
        TASKS.c.order_key,
        TASKS.c.sequence,
        TASKS.c.task_id,
        TASKS.c.held_until,
        TASKS.c.next_attempt_at,
    )
    .where(
        IS_PENDING,
        # An IN list per column, not a row-value IN: SQLite would scan every pending task.
        TASKS.c.connection_id.in_(bindparam("connections", expanding=True)),
        TASKS.c.order_key.in_(bindparam("order_keys", expanding=True)),
        or_(TASKS.c.sequence <= bindparam("upto"), TASKS.c.held_until > bindparam("now")),
    )
    .order_by(TASKS.c.sequence)
)
_DEAD_AMONG = (
    select(TASKS.c.connection_id, TASKS.c.order_key)
    .where(
        IS_DEAD,
        TASKS.c.connection_id.in_(bindparam("connections", expanding=True)),
        TASKS.c.order_key.in_(bindparam("order_keys", expanding=True)),
    )
    .distinct()
)
_FINISH = (
    update(TASKS)
    .where(TASKS.c.task_id.in_(_IDS))
    .values(
        state=bindparam("new_state"), held_by=None, held_until=None, finished_at=bindparam("now")
    )
)
# One row per task given back (executemany): each has its own next attempt time.
_RETRY = (
    update(TASKS)
    .where(TASKS.c.task_id == bindparam("id"), TASKS.c.held_by == bindparam("holder"))
    .values(held_by=None, held_until=None, next_attempt_at=bindparam("next_at"))
)
_RETRY_FAILED = _RETRY.values(failures=TASKS.c.failures + 1)


@dataclass(frozen=True)
class TaskState:
    task_id: str
    state: str
    attempts: int
    failures: int
    held_by: str | None
    held_until: datetime | None


def pending_row(task: DeliveryTask, now: datetime) -> dict[str, Any]:
    return {
        "task_id": task.id,
        "connection_id": task.connection_id,
        "order_key": task.order_key,
        "sequence": task.sequence,
        "state": PENDING,
        "attempts": 0,
        "failures": 0,
        "created_at": now,
    }


class TaskRepo:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._add = store.insert(TASKS).on_conflict_do_nothing(index_elements=["task_id"])

    # --- routing ----------------------------------------------------------------------------------

    def add(self, conn: Connection, tasks: list[DeliveryTask]) -> None:
        """Put routed tasks in their clients' order. A task known already (routed twice, or
        finished) keeps its row as it is: a finished task is not put back in the order."""
        if not tasks:
            return
        now = utcnow()
        conn.execute(self._add, [pending_row(t, now) for t in tasks])

    # --- the task gate ----------------------------------------------------------------------------

    def claim(
        self, conn: Connection, task_ids: list[str], holder: str, until: datetime
    ) -> dict[str, TaskState]:
        """Hold the free pending tasks among ``task_ids`` for ``holder`` until ``until``, and
        count an attempt begun on each; returns the rows claimed.

        The write comes first in the gate's transaction: on PostgreSQL a second process
        claiming the same rows waits for this transaction and then finds them held; on SQLite
        the transaction holds the one write lock from its start."""
        if not task_ids:
            return {}
        claimed = conn.execute(
            _CLAIM, {"ids": task_ids, "now": utcnow(), "holder": holder, "until": until}
        )
        return {row[0]: TaskState(*row) for row in claimed.all()}

    def unclaim(self, conn: Connection, task_ids: list[str], holder: str) -> None:
        """Give back tasks ``holder`` claimed and will not push now: no attempt was begun."""
        if task_ids:
            conn.execute(_UNCLAIM, {"ids": task_ids, "holder": holder})

    def states(self, conn: Connection, task_ids: list[str]) -> dict[str, TaskState]:
        if not task_ids:
            return {}
        return {row[0]: TaskState(*row) for row in conn.execute(_STATES, {"ids": task_ids})}

    def pending_around(
        self, conn: Connection, upto: dict[OrderKey, int], now: datetime
    ) -> dict[OrderKey, list[Pending]]:
        """For each (connection, client) key, its pending tasks in order: those up to the key's
        sequence in ``upto``, and later ones held by a worker until after ``now``."""
        if not upto:
            return {}
        found: dict[OrderKey, list[Pending]] = defaultdict(list)
        rows = conn.execute(
            _PENDING_AROUND,
            {
                "connections": sorted({key[0] for key in upto}),
                "order_keys": sorted({key[1] for key in upto}),
                "upto": max(upto.values()),
                "now": now,
            },
        )
        for connection_id, order_key, sequence, task_id, held_until, next_at in rows:
            limit = upto.get((connection_id, order_key))
            held = held_until is not None and held_until > now
            if limit is not None and (sequence <= limit or held):
                found[(connection_id, order_key)].append(
                    Pending(int(sequence), task_id, held, next_at)
                )
        return found

    def with_dead(self, conn: Connection, keys: set[OrderKey]) -> set[OrderKey]:
        """The (connection, client) keys among ``keys`` that have a dead-lettered task."""
        if not keys:
            return set()
        rows = conn.execute(
            _DEAD_AMONG,
            {
                "connections": sorted({k[0] for k in keys}),
                "order_keys": sorted({k[1] for k in keys}),
            },
        )
        return {(connection_id, order_key) for connection_id, order_key in rows} & keys

    # --- outcomes ---------------------------------------------------------------------------------

    def finish(self, conn: Connection, task_ids: list[str], state: str, now: datetime) -> None:
        """Out of the order for good (``done``, ``dropped``) or until replayed (``dead``)."""
        if task_ids:
            conn.execute(_FINISH, {"ids": task_ids, "new_state": state, "now": now})

    def retry(
        self,
        conn: Connection,
        retries: list[tuple[str, datetime | None]],
        holder: str,
        *,
        failed: bool,
    ) -> None:
        """Give ``holder``'s tasks back for a later attempt, each (task id, when the bus offers
        it again); ``failed`` counts it against the limit (a 429 or a connection waiting for
        re-authorisation does not)."""
        if retries:
            conn.execute(
                _RETRY_FAILED if failed else _RETRY,
                [{"id": task_id, "holder": holder, "next_at": at} for task_id, at in retries],
            )

    def reopen(self, conn: Connection, task: DeliveryTask) -> None:
        """A dead task replayed: back in its client's order at its original place, its
        failures counted afresh. A task delivered since (its dead letter replayed before) is
        left done: the replay finds it so and pushes nothing."""
        insert = self.store.insert(TASKS).values(pending_row(task, utcnow()))
        reopened = {
            "state": PENDING,
            "failures": 0,
            "held_by": None,
            "held_until": None,
            "finished_at": None,
            "next_attempt_at": None,
        }
        conn.execute(
            insert.on_conflict_do_update(
                index_elements=["task_id"], set_=reopened, where=TASKS.c.state == DEAD
            )
        )

    # --- on their own -----------------------------------------------------------------------------

    async def extend(self, task_ids: list[str], holder: str, until: datetime) -> None:
        """Hold longer the tasks ``holder`` still holds (a push outlasting its hold). It takes
        no free task, so a task given back for its retry is never taken again by a late beat."""
        if not task_ids:
            return
        statement = (
            update(TASKS)
            .where(TASKS.c.task_id.in_(task_ids), TASKS.c.held_by == holder, IS_PENDING)
            .values(held_until=until)
        )
        await self.store.run(lambda conn: conn.execute(statement))

    async def give_back(self, task_ids: list[str], holder: str) -> None:
        if task_ids:
            await self.store.run(lambda conn: self.unclaim(conn, task_ids, holder))

    async def close(self, task_id: str, state: str) -> None:
        await self.store.run(lambda conn: self.finish(conn, [task_id], state, utcnow()))

    async def get(self, task_id: str) -> TaskState | None:
        return (await self.store.run(lambda conn: self.states(conn, [task_id]))).get(task_id)

    async def next_retry_at(self, connection_id: str) -> datetime | None:
        """When the connection's oldest task waiting for a retry (given back after an attempt,
        not held by a worker now) is offered again; None when no task waits for one."""
        now = utcnow()
        query = (
            select(TASKS.c.next_attempt_at)
            .where(
                TASKS.c.connection_id == connection_id,
                IS_PENDING,
                TASKS.c.next_attempt_at.is_not(None),
                or_(TASKS.c.held_until.is_(None), TASKS.c.held_until <= now),
            )
            .order_by(TASKS.c.created_at, TASKS.c.sequence)
            .limit(1)
        )
        return await self.store.run(lambda conn: conn.execute(query).scalar())

    async def pending_count(self, connection_id: str) -> int:
        query = select(func.count()).where(TASKS.c.connection_id == connection_id, IS_PENDING)
        return int(await self.store.run(lambda conn: conn.execute(query).scalar_one()))
