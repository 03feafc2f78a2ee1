"""From a delivery task to the JSON body of one Resend email, or to the reason not to send it.

Decisions made here, before any HTTP call:
- which events are emails (``email_requested``; ``step_completed`` of an ``email`` step);
- who receives it (``mapped.to``, else the client's email) and whether the suppression list
  leaves anyone to send to;
- which template, rendered with what context.
Everything is a pure function of the task and the connection's config, so a retry composes the
same body: Resend answers a repeated idempotency key with a different body by a 409.
"""

from __future__ import annotations

from typing import Any

from journeyhub.errors import PermanentError
from journeyhub.model import DeliveryTask, JourneyEvent, PushResult

from journeyhub_resend.config import ResendConfig, valid_address
from journeyhub_resend.tags import email_tags
from journeyhub_resend.templates import RenderError, long_date, parse_date, render

MAX_RECIPIENTS = 50  # Resend's limit on ``to``


def _skipped(detail: str) -> PushResult:
    return PushResult(status="skipped", detail=detail)


def _addresses(value: Any, field: str) -> list[str]:
    """``mapped`` values may be one address or a list; all must be addresses."""
    if value is None or value == "":
        return []
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise PermanentError(f"mapped {field} must be an email address or a list of them")
    out = [i.strip() for i in items if i.strip()]
    for address in out:
        if not valid_address(address):
            raise PermanentError(f"mapped {field} holds a value that is not an email address")
    return out


def is_email_event(event: JourneyEvent) -> str | None:
    """None when ``event`` asks for an email, else why it does not."""
    if event.type == "email_requested":
        return None
    if event.type == "step_completed":
        if event.step is not None and event.step.type == "email":
            return None
        kind = event.step.type if event.step is not None else "none"
        return f"step_completed of a {kind!r} step is not an email step"
    return f"{event.type} events send no email"


def build_context(task: DeliveryTask, config: ResendConfig) -> dict[str, Any]:
    """What templates see. Mapped values win, so a connection's mappings can reshape them."""
    event = task.event
    assert event is not None
    mapped = task.mapped
    name = mapped.get("client_name") or event.client.name
    first_name = mapped.get("first_name") or (name.split()[0] if name else None)
    wedding = event.wedding
    venue = wedding.venue if wedding is not None else None
    date = parse_date(wedding.date if wedding is not None else None)
    branding = {
        "vendor_name": config.branding.vendor_name,
        "logo_url": config.branding.logo_url,
        "accent_color": config.branding.accent_color,
        "signature": config.branding.signature,
    }
    step = event.step
    return {
        "client": {
            "id": event.client.id,
            "name": name,
            "first_name": first_name,
            "email": event.client.email,
        },
        "couple": mapped.get("couple") or event.data.get("couple") or name,
        "wedding": {
            "date": date,
            "date_iso": date.isoformat() if date else None,
            "date_long": long_date(date),
            "venue": {
                "name": mapped.get("venue") or (venue.name if venue else None),
                "address": venue.address if venue else None,
            },
            "guest_count": wedding.guest_count if wedding is not None else None,
        },
        "vendor": branding,
        "step": (
            {"id": step.id, "name": step.name, "type": step.type, "data": step.data}
            if step is not None
            else {}
        ),
        "journey": {"name": event.journey_name, "instance_id": event.journey_instance_id},
        "data": event.data,
        "mapped": mapped,
    }


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
            raise PermanentError(
                f"unknown template {name!r}: this connection's templates are: {known}"
            )
        template = config.templates[name]
        base = {"subject": template.subject, "html": template.html, "text": template.text}
        return f"template {name!r}", {p: inline[p] or base[p] for p in base}
    if not (inline["subject"] and inline["html"]):
        raise PermanentError(
            "no template named in data.template or step.data.template, "
            "and no inline data.subject and data.html"
        )
    return "the inline email", inline


def compose(
    task: DeliveryTask, config: ResendConfig, suppressed: frozenset[str]
) -> dict[str, Any] | PushResult:
    """The Resend email body for ``task``, or a skipped PushResult; raise PermanentError."""
    event = task.event
    if task.kind != "event" or event is None:
        return _skipped("the resend connector sends emails for journey events only")
    if reason := is_email_event(event):
        return _skipped(reason)

    mapped = task.mapped
    to = _addresses(mapped.get("to"), "to") or _addresses(event.client.email, "client.email")
    if not to:
        raise PermanentError("no recipient: neither mapped 'to' nor client.email is set")
    cc, bcc = _addresses(mapped.get("cc"), "cc"), _addresses(mapped.get("bcc"), "bcc")

    def allowed(addresses: list[str]) -> list[str]:
        return [a for a in addresses if a.lower() not in suppressed]

    to, cc, bcc = allowed(to), allowed(cc), allowed(bcc)
    if not to:
        return _skipped("suppressed: no recipient left after the suppression list")
    if len(to) > MAX_RECIPIENTS:
        raise PermanentError(f"Resend accepts at most {MAX_RECIPIENTS} 'to' recipients")

    label, sources = _sources(event, config)
    context = build_context(task, config)
    try:
        subject = render(sources["subject"] or "", context, html=False, where=f"{label} subject")
        html = render(sources["html"] or "", context, html=True, where=f"{label} html")
        text = (
            render(sources["text"], context, html=False, where=f"{label} text")
            if sources["text"]
            else None
        )
    except RenderError as exc:
        raise PermanentError(str(exc)) from None
    subject = " ".join(subject.split())  # a header: no line breaks
    if not subject:
        raise PermanentError(f"{label} rendered an empty subject")

    email: dict[str, Any] = {
        "from": config.from_address,
        "to": to,
        "subject": subject,
        "html": html,
        "tags": email_tags(event.client.id, task.id),
    }
    if text:
        email["text"] = text
    if cc:
        email["cc"] = cc
    if bcc:
        email["bcc"] = bcc
    reply_to = _addresses(mapped.get("reply_to"), "reply_to") or (
        [config.reply_to] if config.reply_to else []
    )
    if reply_to:
        email["reply_to"] = reply_to
    return email
