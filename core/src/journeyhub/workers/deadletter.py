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

log = get_logger(__name__)


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
    finished_task: str | None = None,
) -> str:
    """Store ``msg`` as a dead letter and terminate it on the bus (after it is stored).
    ``finished_task``: a push task, released from its client's order with the same write."""
    msg_id = (msg.headers or {}).get("Nats-Msg-Id", "")
    dead_id = await hub.store.deliveries.dead_letter(
        tenant_id=tenant_id,
        connection_id=connection_id,
        vendor=vendor,
        stage=stage,
        subject=msg.subject,
        msg_id=msg_id,
        payload=msg.data,
        error=error,
        attempts=attempts,
        finished_task=finished_task,
    )
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
    return dead_id


async def _reenter_order_gate(hub: Hub, dead: DeadLetter) -> str | None:
    """A push task left the per-client order gate when it died (so the client's later tasks
    could go on); a replay puts it back in, at its original place (its event's bus sequence).
    Without this, replaying several dead tasks of one client at once (``POST /v1/dlq/replay``)
    pushed them side by side, and each created the client's contact and job at the vendor."""
    try:
        task = msgspec.json.decode(dead.payload, type=DeliveryTask)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None  # undecodable: the push worker dead-letters it again
    await hub.store.deliveries.add_pending(
        task.id, task.connection_id, task.order_key, task.sequence
    )
    return task.id


async def replay(hub: Hub, dead: DeadLetter, actor: str) -> None:
    """Put a dead letter back on its subject. The new message id carries the replay count so
    the bus does not drop it as a duplicate; the task's own id still keeps it effectively once
    at the vendor."""
    await hub.store.deliveries.mark_replayed(dead.id)
    gated: str | None = None
    if dead.stage == "push":
        gated = await _reenter_order_gate(hub, dead)
        await hub.store.deliveries.record_replay(dead, task_id=gated or dead.msg_id)
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
        if gated is not None:  # not on the bus: it must not hold the client's later tasks
            await hub.store.deliveries.finish_pending(gated)
        raise
    await hub.store.audit.record(
        tenant_id=dead.tenant_id,
        actor=actor,
        action="dead_letter.replayed",
        connection_id=dead.connection_id,
        after={"dead_letter_id": dead.id, "error": dead.error, "subject": dead.subject},
    )
    log.info("dead_letter_replayed", dead_letter_id=dead.id, connection_id=dead.connection_id)
