"""Dead letters: a message that failed for good is stored with its last error, published to
``jh.dlq.<connection>`` for anyone watching, and can be replayed."""

from __future__ import annotations

from nats.aio.msg import Msg

from journeyhub import metrics
from journeyhub.hub import Hub
from journeyhub.logs import get_logger
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
) -> str:
    """Store ``msg`` as a dead letter and terminate it on the bus (after it is stored)."""
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


async def replay(hub: Hub, dead: DeadLetter, actor: str) -> None:
    """Put a dead letter back on its subject. The new message id carries the replay count so
    the bus does not drop it as a duplicate; the task's own id still keeps it effectively once
    at the vendor."""
    await hub.store.deliveries.mark_replayed(dead.id)
    if dead.stage == "push":
        await hub.store.deliveries.record_replay(dead)
    await hub.bus.publish(
        dead.subject,
        dead.payload,
        msg_id=f"{dead.msg_id}:replay:{dead.replay_count + 1}",
        headers={"Journeyhub-Replay-Of": dead.id},
    )
    await hub.store.audit.record(
        tenant_id=dead.tenant_id,
        actor=actor,
        action="dead_letter.replayed",
        connection_id=dead.connection_id,
        after={"dead_letter_id": dead.id, "error": dead.error, "subject": dead.subject},
    )
    log.info("dead_letter_replayed", dead_letter_id=dead.id, connection_id=dead.connection_id)
