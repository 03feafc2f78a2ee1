"""Sending: one task with ``POST /emails``, a burst with ``POST /emails/batch``.

A batch keeps every task's result at its position: tasks that are skipped (suppressed, not an
email) or that fail on their own (unknown template) never reach Resend, and an email Resend
rejects in the permissive batch fails alone. Only a failure of the whole call raises.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from journeyhub.errors import ConnectorError, PermanentError
from journeyhub.model import DeliveryTask, PushResult

from journeyhub_resend.client import MAX_BATCH, ResendClient
from journeyhub_resend.compose import compose
from journeyhub_resend.config import ResendConfig

ClientFactory = Callable[[], ResendClient]


async def push_one(
    task: DeliveryTask,
    config: ResendConfig,
    client: ClientFactory,
    idempotency_key: str,
    suppressed: frozenset[str],
) -> PushResult:
    email = compose(task, config, suppressed)
    if isinstance(email, PushResult):
        return email
    status, body = await client().send(email, idempotency_key)
    email_id = body.get("id")
    if not isinstance(email_id, str):
        raise PermanentError("Resend accepted the email but answered no id")
    return PushResult(vendor_status=status, external_ids={"email_id": email_id})


def _chunk_results(
    size: int, status: int, body: dict[str, Any]
) -> list[PushResult | ConnectorError]:
    """Map a permissive batch answer back to its emails: ``data`` lists the created emails in
    order, leaving out the ones named by index in ``errors``."""
    failed = {
        e["index"]: str(e.get("message", "rejected"))
        for e in body.get("errors") or []
        if isinstance(e, dict) and isinstance(e.get("index"), int)
    }
    created = iter(body.get("data") or [])
    out: list[PushResult | ConnectorError] = []
    for index in range(size):
        if index in failed:
            out.append(
                PermanentError(
                    f"Resend rejected this email: {failed[index][:300]}", vendor_status=422
                )
            )
            continue
        item = next(created, None)
        if isinstance(item, dict) and isinstance(item.get("id"), str):
            out.append(PushResult(vendor_status=status, external_ids={"email_id": item["id"]}))
        else:
            out.append(PermanentError("Resend answered the batch without this email's id"))
    return out


async def push_many(
    tasks: list[DeliveryTask],
    config: ResendConfig,
    client: ClientFactory,
    idempotency_key: str,
    suppressed: frozenset[str],
) -> list[PushResult | Exception]:
    results: list[PushResult | Exception | None] = []
    pending: list[tuple[int, dict[str, Any]]] = []  # (position, email) to send
    for position, task in enumerate(tasks):
        try:
            email = compose(task, config, suppressed)
        except ConnectorError as exc:  # this task's own problem: the others still go
            results.append(exc)
            continue
        results.append(email if isinstance(email, PushResult) else None)
        if not isinstance(email, PushResult):
            pending.append((position, email))
    # The kernel sends at most max_batch tasks; more are split, each chunk under its own key.
    for start in range(0, len(pending), MAX_BATCH):
        chunk = pending[start : start + MAX_BATCH]
        key = idempotency_key if len(pending) <= MAX_BATCH else f"{idempotency_key}/{start}"
        status, body = await client().send_batch([email for _, email in chunk], key)
        for (position, _), result in zip(
            chunk, _chunk_results(len(chunk), status, body), strict=True
        ):
            results[position] = result
    assert all(r is not None for r in results), "every task has its result"
    return results  # type: ignore[return-value]
