"""Dead letters: a message that failed for good is stored with its last error, published to
``jh.dlq.<connection>`` for anyone watching, and can be replayed."""

from __future__ import annotations

import msgspec
from nats.aio.msg import Msg

from journeyhub import metrics
from journeyhub.hub import Hub
from journeyhub.logs import get_logger
from journeyhub.model import DeliveryTask
from journeyhub.store.tables import DeadLetter
from journeyhub.store.tasks import DEAD

log = get_logger(__name__)


def message_id(msg: Msg) -> str:
    return (msg.headers or {}).get("Nats-Msg-Id", "")


async def dead_letter(
    hub: Hub,
    msg: Msg,
    *,
    tenant_id: str,
    connection_id: str,
    vendor: str,
    stage: str,
    error: str,
    attempts: int,
) -> str:
    """Store ``msg`` as a dead letter, then announce it (a push task's dead letter is written
    by the outcome recorder, with the task's state, and only announced here)."""
    dead_id = await hub.store.deliveries.dead_letter(
        tenant_id=tenant_id,
        connection_id=connection_id,
        vendor=vendor,
        stage=stage,
        subject=msg.subject,
        msg_id=message_id(msg),
        payload=msg.data,
        error=error,
        attempts=attempts,
    )
    await announce(
        hub,
        msg,
        dead_id,
        connection_id=connection_id,
        vendor=vendor,
        stage=stage,
        error=error,
        attempts=attempts,
    )
    return dead_id


async def announce(
    hub: Hub,
    msg: Msg,
    dead_id: str,
    *,
    connection_id: str,
    vendor: str,
    stage: str,
    error: str,
    attempts: int,
) -> None:
    """A stored dead letter: a copy on ``jh.dlq.<connection>``, its message terminated on the
    bus (only now that it is stored), counted and logged."""
    try:
        await hub.bus.publish(
            hub.bus.subjects.dlq(connection_id),
            msg.data,
            msg_id=f"dlq:{dead_id}",
            headers={"Journeyhub-Error": error[:500], "Journeyhub-Stage": stage},
        )
    except Exception as exc:  # stored already: the copy on the bus is a convenience
        log.warning("dlq_publish_failed", dead_letter_id=dead_id, error=repr(exc))
    await msg.term()
    metrics.dead_letters.labels(vendor, stage).inc()
    log.warning(
        "dead_lettered", dead_letter_id=dead_id, stage=stage, error=error, attempts=attempts
    )


async def replay(hub: Hub, dead: DeadLetter, actor: str) -> None:
    """Put a dead letter back on its subject. The new message id carries the dead letter and
    its replay count so the bus does not drop it as a duplicate; the task's own id still keeps
    it effectively once at the vendor.

    A push task goes back into its client's order first, at its original place (its event's
    bus sequence), its failures counted afresh: replaying several dead tasks of one client at
    once must push them one after the other, not side by side."""
    await hub.store.deliveries.mark_replayed(dead.id)
    task: DeliveryTask | None = None
    if dead.stage == "push":
        try:
            task = msgspec.json.decode(dead.payload, type=DeliveryTask)
        except (msgspec.ValidationError, msgspec.DecodeError):
            task = None  # undecodable: the push worker dead-letters it again
        if task is not None:
            reopened = task
            await hub.store.run(lambda conn: hub.store.tasks.reopen(conn, reopened))
        await hub.store.deliveries.record_replay(dead, task_id=task.id if task else dead.msg_id)
    try:
        await hub.bus.publish(
            dead.subject,
            dead.payload,
            # Per dead letter: one task can die more than once (again after a replay), and a
            # second dead letter's replay under the first one's id would be dropped by the
            # bus as a duplicate, leaving the task undelivered and its client held back.
            msg_id=f"{dead.msg_id}:replay:{dead.id}:{dead.replay_count + 1}",
            headers={"Journeyhub-Replay-Of": dead.id},
        )
    except BaseException:
        if task is not None:  # not on the bus: it must not hold the client's later tasks
            await hub.store.tasks.close(task.id, DEAD)
        raise
    await hub.store.audit.record(
        tenant_id=dead.tenant_id,
        actor=actor,
        action="dead_letter.replayed",
        connection_id=dead.connection_id,
        after={"dead_letter_id": dead.id, "error": dead.error, "subject": dead.subject},
    )
    log.info("dead_letter_replayed", dead_letter_id=dead.id, connection_id=dead.connection_id)
