"""From a delivery task to the JSON body of one Resend email, or the reason not to send one.

A pure function of the task and the config, so a retry composes the same body: Resend answers
a repeated idempotency key with another body by a 409.
"""

from __future__ import annotations

import base64
import re
from typing import Any

from journeyhub.kit import DeliveryTask, JourneyEvent, PermanentError, PushResult
from journeyhub.model import Venue, Wedding
from msgspec.structs import asdict

from journeyhub_resend.config import ResendConfig, valid_address
from journeyhub_resend.templates import long_date, parse_date, render

MAX_RECIPIENTS = 50  # Resend's limit on ``to``
# Resend tags take ASCII letters, digits, ``_`` and ``-``, at most 256 characters, and come back
# in the email's webhook events. A lossy clean-up of a client id would hand the journey engine
# the wrong client, so one that is not tag-safe travels base32-encoded under another name.
TAG_SAFE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
CLIENT_TAG = "client_id"
CLIENT_TAG_B32 = "client_id_b32"
TASK_TAG = "jh_task"


def compose(
    task: DeliveryTask, config: ResendConfig, suppressed: frozenset[str]
) -> dict[str, Any] | PushResult:
    """The Resend email body for ``task``, or a skipped PushResult; raise PermanentError."""
    event, mapped = task.event, task.mapped
    if task.kind != "event" or event is None:
        return _skipped("the resend connector sends emails for journey events only")
    step_type = event.step.type if event.step is not None else "none"
    if event.type == "step_completed" and step_type != "email":
        return _skipped(f"step_completed of a {step_type!r} step is not an email step")
    if event.type not in ("email_requested", "step_completed"):
        return _skipped(f"{event.type} events send no email")
    to = _addresses(mapped.get("to"), "to") or _addresses(event.client.email, "client.email")
    if not to:
        raise PermanentError("no recipient: neither mapped 'to' nor client.email is set")
    cc, bcc = _addresses(mapped.get("cc"), "cc"), _addresses(mapped.get("bcc"), "bcc")
    to, cc, bcc = ([a for a in found if a.lower() not in suppressed] for found in (to, cc, bcc))
    if not to:
        return _skipped("suppressed: no recipient left after the suppression list")
    if len(to) > MAX_RECIPIENTS:
        raise PermanentError(f"Resend accepts at most {MAX_RECIPIENTS} 'to' recipients")

    label, sources = _sources(event, config)
    context = _context(task, config)
    subject = render(sources["subject"] or "", context, html=False, where=f"{label} subject")
    html = render(sources["html"] or "", context, html=True, where=f"{label} html")
    text = sources["text"] and render(sources["text"], context, html=False, where=f"{label} text")
    subject = " ".join(subject.split())  # a header: no line breaks
    if not subject:
        raise PermanentError(f"{label} rendered an empty subject")
    reply_to = _addresses(mapped.get("reply_to") or config.reply_to, "reply_to")
    tags = _tags(event.client.id, task.id)
    email = {"from": config.from_address, "to": to, "subject": subject, "html": html, "tags": tags}
    optional = {"text": text, "cc": cc, "bcc": bcc, "reply_to": reply_to}
    return email | {key: value for key, value in optional.items() if value}


def _skipped(why: str) -> PushResult:
    return PushResult(status="skipped", detail=why)


def _addresses(value: Any, field: str) -> list[str]:
    """``mapped`` values may be one address or a list; all must be addresses."""
    if value is None or value == "":
        return []
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise PermanentError(f"mapped {field} must be an email address or a list of them")
    out = [i.strip() for i in items if i.strip()]
    if not all(valid_address(address) for address in out):
        raise PermanentError(f"mapped {field} holds a value that is not an email address")
    return out


def _sources(event: JourneyEvent, config: ResendConfig) -> tuple[str, dict[str, str | None]]:
    """(label for messages, {subject, html, text} sources): a named template, inline overrides."""
    step_data = event.step.data if event.step is not None else {}
    name = event.data.get("template") or step_data.get("template")
    inline = {part: event.data.get(part) for part in ("subject", "html", "text")}
    for part, value in inline.items():
        if value is not None and not isinstance(value, str):
            raise PermanentError(f"data.{part} must be a string")
    if name is not None:
        if not isinstance(name, str) or name not in config.templates:
            known = ", ".join(sorted(config.templates)) or "none"
            raise PermanentError(f"unknown template {name!r}: this connection has {known}")
        base = asdict(config.templates[name])
        return f"template {name!r}", {part: inline[part] or base[part] for part in base}
    if not (inline["subject"] and inline["html"]):
        raise PermanentError(
            "no template named in data.template or step.data.template, "
            "and no inline data.subject and data.html"
        )
    return "the inline email", inline


def _context(task: DeliveryTask, config: ResendConfig) -> dict[str, Any]:
    """What templates see. Mapped values win, so a connection's mappings can reshape them."""
    event, mapped = task.event, task.mapped
    assert event is not None
    name = mapped.get("client_name") or event.client.name
    wedding = event.wedding or Wedding()
    venue = wedding.venue or Venue()
    date = parse_date(wedding.date)
    return {
        "client": {
            "id": event.client.id,
            "name": name,
            "first_name": mapped.get("first_name") or (name.split()[0] if name else None),
            "email": event.client.email,
        },
        "couple": mapped.get("couple") or event.data.get("couple") or name,
        "wedding": {
            "date": date,
            "date_iso": date.isoformat() if date else None,
            "date_long": long_date(date),
            "venue": {"name": mapped.get("venue") or venue.name, "address": venue.address},
            "guest_count": wedding.guest_count,
        },
        "vendor": asdict(config.branding),
        "step": asdict(event.step) if event.step is not None else {},
        "journey": {"name": event.journey_name, "instance_id": event.journey_instance_id},
        "data": event.data,
        "mapped": mapped,
    }


def _tags(client_id: str | None, task_id: str) -> list[dict[str, str]]:
    # The task id only traces the email, so a lossy clean-up is enough for it.
    tags = [{"name": TASK_TAG, "value": re.sub(r"[^A-Za-z0-9_-]", "_", task_id)[:256] or "_"}]
    encoded = base64.b32encode((client_id or "").encode()).decode().rstrip("=")
    if client_id and TAG_SAFE.match(client_id):
        tags.insert(0, {"name": CLIENT_TAG, "value": client_id})
    elif client_id and len(encoded) <= 256:  # else the kernel finds the client by its email
        tags.insert(0, {"name": CLIENT_TAG_B32, "value": encoded})
    return tags
