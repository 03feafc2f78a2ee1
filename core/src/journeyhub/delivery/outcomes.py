"""Recording what each push attempt came to, many attempts per store transaction.

An outcome is written with everything that must change with it, in one transaction: the
attempt's delivery row, the task's state (done; given back for a retry, its failure counted
and its next attempt's time; dead, with its dead letter), and the records the push wrote or
found at the vendor (the sync links the next push of the client reads back as ``Known``).
Outcomes submitted while a write runs go into the next one (group commit), so under load one
transaction serves many pushes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from journeyhub.groupcommit import GroupCommit
from journeyhub.model import DeliveryTask, SyncedRecord, utcnow
from journeyhub.store.client_rows import client_of_task
from journeyhub.store.ids import new_id
from journeyhub.store.store import Store
from journeyhub.store.tables import DeadLetter, Delivery, table_of
from journeyhub.store.tasks import DEAD, DONE

INSERT_ATTEMPTS = table_of(Delivery).insert()
INSERT_DEAD_LETTERS = table_of(DeadLetter).insert()
FINISHED = {"delivered": DONE, "skipped": DONE, "dead": DEAD}
COUNTED_FAILURE = "failed"  # a 429 or a wait for re-authorisation is not a failed attempt
# Outcome writes follow each other no closer than this: under load, outcomes finishing a few
# milliseconds apart share a transaction; one after a quiet spell is written at once.
COMMIT_INTERVAL = 0.01


@dataclass(frozen=True)
class DeadLetterDraft:
    subject: str
    msg_id: str
    payload: bytes
    error: str
    attempts: int


@dataclass(frozen=True)
class Outcome:
    """One push attempt: ``status`` is delivered, skipped, failed, rate_limited,
    needs_reauth or dead (with its ``dead_letter``)."""

    task: DeliveryTask
    status: str
    attempt: int
    vendor_status: int | None = None
    latency_ms: float | None = None
    external_ids: dict[str, str] | None = None
    error: str | None = None
    records: list[SyncedRecord] = field(default_factory=list)
    dead_letter: DeadLetterDraft | None = None
    retry_in: float | None = None  # given back: seconds until the bus offers it again


def source_id(task: DeliveryTask) -> str:
    """The event, trigger or incident a task delivers."""
    if task.event is not None:
        return task.event.id
    if task.incident is not None:
        return task.incident.id
    return task.trigger.id if task.trigger is not None else task.id


class Recorder:
    def __init__(self, store: Store, holder: str) -> None:
        self.store = store
        self.holder = holder
        self.commits: GroupCommit[Outcome, str | None] = GroupCommit(
            self._write, max_items=500, min_interval=COMMIT_INTERVAL
        )

    async def record(self, outcome: Outcome) -> str | None:
        """Write one outcome (with whatever else waits); the dead letter's id for a dead one."""
        return await self.commits.submit_one(outcome)

    async def _write(self, outcomes: list[Outcome]) -> list[str | None]:
        now = utcnow()
        attempts: list[dict[str, Any]] = []
        dead_letters: list[dict[str, Any]] = []
        dead_ids: list[str | None] = []
        finished: dict[str, list[str]] = {}
        retried: dict[bool, list[tuple[str, datetime | None]]] = {True: [], False: []}
        for outcome in outcomes:
            task = outcome.task
            client = client_of_task(task)
            attempts.append(
                {
                    "task_id": task.id,
                    "tenant_id": task.tenant_id,
                    "connection_id": task.connection_id,
                    "vendor": task.vendor,
                    "source_id": source_id(task),
                    "attempt": outcome.attempt,
                    "status": outcome.status,
                    "vendor_status": outcome.vendor_status,
                    "latency_ms": outcome.latency_ms,
                    "external_ids": outcome.external_ids or None,
                    "error": outcome.error,
                    "correlation_id": task.correlation_id,
                    "client_id": client,
                    "created_at": now,
                }
            )
            state = FINISHED.get(outcome.status)
            if state is not None:
                finished.setdefault(state, []).append(task.id)
            else:
                at = None if outcome.retry_in is None else now + timedelta(seconds=outcome.retry_in)
                retried[outcome.status == COUNTED_FAILURE].append((task.id, at))
            draft = outcome.dead_letter
            dead_id = new_id("dlq") if draft is not None else None
            dead_ids.append(dead_id)
            if draft is not None:
                dead_letters.append(
                    {
                        "id": dead_id,
                        "tenant_id": task.tenant_id,
                        "connection_id": task.connection_id,
                        "vendor": task.vendor,
                        "stage": "push",
                        "subject": draft.subject,
                        "msg_id": draft.msg_id,
                        "payload": draft.payload,
                        "error": draft.error,
                        "attempts": draft.attempts,
                        "created_at": now,
                        "replay_count": 0,
                        "client_id": client,
                    }
                )
        records = [(o.task.connection_id, r) for o in outcomes for r in o.records]
        tasks = self.store.tasks

        def write(conn: Connection) -> None:
            conn.execute(INSERT_ATTEMPTS, attempts)
            for state, task_ids in finished.items():
                tasks.finish(conn, task_ids, state, now)
            for failed, retries in retried.items():
                tasks.retry(conn, retries, self.holder, failed=failed)
            if dead_letters:
                conn.execute(INSERT_DEAD_LETTERS, dead_letters)
            self.store.sync.record_pushed(conn, records, now)

        await self.store.run(write)
        return dead_ids
