"""VSCO Workspace REST hooks: unsigned pings that name a record (``targetId``).

A ping proves nothing, so the gateway accepts it only with the connection's token in the URL
(``?token=``), and the inbound worker reads the record from the API rather than the body.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any

import msgspec
from journeyhub.errors import WebhookRejected
from journeyhub.model import StoredWebhook, TriggerDraft, WebhookReceipt

from journeyhub_tave import client as api
from journeyhub_tave.client import Mappings, TaveClient
from journeyhub_tave.pull import contact_record, job_record, parse_time


def _same(given: str, expected: str) -> bool:
    # surrogatepass: a garbage query string must be rejected, not crash the encoder.
    return hmac.compare_digest(
        given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    )


def parse_ping(body: bytes, query: Mapping[str, str]) -> tuple[str, str | None]:
    """``(targetId, event)`` from a ping; raise ``WebhookRejected("bad_body")`` on anything else."""
    try:
        ping = msgspec.json.decode(body)
    except msgspec.DecodeError:
        raise WebhookRejected("bad_body", "the body is not JSON") from None
    if not isinstance(ping, dict):
        raise WebhookRejected("bad_body", "the body is not a JSON object")
    target = ping.get(api.PING_TARGET_FIELD)
    if isinstance(target, int) and not isinstance(target, bool):
        target = str(target)
    if not isinstance(target, str) or not 0 < len(target) <= 64:
        raise WebhookRejected("bad_body", f"no {api.PING_TARGET_FIELD} in the ping")
    event = next((ping[f] for f in api.PING_EVENT_FIELDS if isinstance(ping.get(f), str)), None)
    event = event or query.get("event")
    if event is not None and event not in api.HOOK_EVENTS:
        raise WebhookRejected("bad_body", "unknown event name")
    return target, event


def verify(credentials: Mapping[str, Any], body: bytes, query: Mapping[str, str]) -> WebhookReceipt:
    token = query.get("token")
    if not token:
        raise WebhookRejected("missing_signature", "the hook URL has no ?token=")
    expected = credentials.get("webhook_token")
    if not isinstance(expected, str) or not expected or not isinstance(token, str):
        raise WebhookRejected("bad_token", "this connection has no webhook_token")
    if not _same(token, expected):
        raise WebhookRejected("bad_token", "the token does not match this connection")
    target, event = parse_ping(body, query)
    # Each hook fires once per record it names ("created", "booked"), so event + record is the
    # natural dedupe key for a redelivered ping.
    return WebhookReceipt(event_id=f"{event or 'unknown'}:{target}", event_type=event)


async def _client_of_job(
    tave: TaveClient, maps: Mappings, job_id: str | None
) -> tuple[str | None, str | None]:
    """``(our client id, email)`` of a job's client contact, when it has one."""
    if not job_id:
        return None, None
    links, _ = await tave.page(api.JOB_CONTACTS, jobId=job_id)
    links.sort(key=lambda link: not link.get("client"))
    for link in links:
        contact_id = link.get("contactId")
        contact = await tave.get(api.CONTACTS, str(contact_id)) if contact_id else None
        if contact:
            return maps.ours(contact, "client"), contact.get("email")
    return None, None


async def handle(
    tave: TaveClient, maps: Mappings, webhook: StoredWebhook
) -> list[TriggerDraft] | None:
    query = {"event": webhook.event_type} if webhook.event_type else {}
    target, event = parse_ping(webhook.body, query)
    source = webhook.event_id
    if event == "contact.created":
        contact = await tave.get(api.CONTACTS, target)
        if contact is None:
            return []  # deleted since the ping: nothing left to tell
        pulled = contact_record(contact, maps)
        return [
            TriggerDraft(
                type="client_updated",
                source_event_id=source,
                occurred_at=parse_time(contact.get("created")),
                client_id=pulled.our_id,
                client_email=pulled.fields.get("email"),
                vendor_record_id=pulled.vendor_id,
                data={"contact_id": pulled.vendor_id, **pulled.fields},
            )
        ]
    if event == "job.created":
        job = await tave.get(api.JOBS, target)
        if job is None:
            return []
        pulled = job_record(job, maps)
        client_id, email = await _client_of_job(tave, maps, pulled.vendor_id)
        return [
            TriggerDraft(
                type="project_status_changed",
                source_event_id=source,
                occurred_at=parse_time(job.get("created")),
                client_id=client_id,
                client_email=email,
                vendor_record_id=pulled.vendor_id,
                data={
                    "job_id": pulled.vendor_id,
                    "journey_instance_id": pulled.our_id,
                    **pulled.fields,
                },
            )
        ]
    if event == "payment.created":
        payment = await tave.get(api.PAYMENTS, target)
        if payment is None:
            return []
        status = payment.get("status")
        # Scheduled ("future") and in-flight ("pending") payments have not been received yet.
        kind = {"posted": "payment_received", "failed": "payment_failed"}.get(str(status))
        if kind is None:
            return []
        client_id, email = await _client_of_job(tave, maps, payment.get("jobId"))
        return [
            TriggerDraft(
                type=kind,
                source_event_id=source,  # type: ignore[arg-type]
                occurred_at=parse_time(payment.get("created")),
                client_id=client_id,
                client_email=email,
                vendor_record_id=payment.get("jobId"),
                data={
                    "payment_id": str(payment.get("id") or target),
                    "amount": payment.get("amount"),
                    "status": status,
                    "job_id": payment.get("jobId"),
                    "received": payment.get("received"),
                },
            )
        ]
    if event == "order.booked":
        return []  # known; orders are left to the sync issue
    return None
