"""An incident notice (``task.incident``) as a plain email to the connection's
``operations_address``: what happened, on which connection, since when, and its details."""

from __future__ import annotations

import html
import re
from typing import Any

from journeyhub.kit import DeliveryTask, PermanentError, PushResult

from journeyhub_resend.config import ResendConfig

WHAT = {
    "incident.raised": "Incident",
    "incident.updated": "Incident update",
    "incident.resolved": "Resolved",
}


def incident_email(task: DeliveryTask, config: ResendConfig) -> dict[str, Any] | PushResult:
    notice = task.incident
    if notice is None:
        raise PermanentError(f"the incident task {task.id} carries no incident")
    if config.operations_address is None:
        return PushResult(status="skipped", detail="no operations_address: incidents not mailed")
    if config.from_address is None:
        raise PermanentError("config.from_address is not set: this connection cannot send")
    subject = f"[journeyhub] {WHAT[notice.type]}: {notice.kind} on {notice.connection_id}"
    lines = [
        notice.summary,
        "",
        f"incident: {notice.id} ({notice.type}, revision {notice.revision})",
        f"kind: {notice.kind}",
        f"connection: {notice.connection_id}",
        f"started: {notice.started_at.isoformat()}",
    ]
    if notice.resolved_at is not None:
        lines.append(f"resolved: {notice.resolved_at.isoformat()}")
    lines += [f"{key}: {value}" for key, value in sorted(notice.details.items())]
    text = "\n".join(lines)
    tag = re.sub(r"[^A-Za-z0-9_-]", "_", task.id)[:256] or "_"
    return {
        "from": config.from_address,
        "to": [config.operations_address],
        "subject": " ".join(subject.split()),
        "text": text,
        "html": f"<pre>{html.escape(text)}</pre>",
        "tags": [{"name": "jh_task", "value": tag}, {"name": "jh_incident", "value": notice.id}],
    }
