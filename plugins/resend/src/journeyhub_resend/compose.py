"""From a delivery task to the JSON body of one Resend email, or the reason not to send one.

A pure function of the task and the config, so a retry composes the same body: Resend answers
a repeated idempotency key with another body by a 409.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime
from typing import Any

from journeyhub.kit import DeliveryTask, JourneyEvent, PermanentError, PushResult
from journeyhub.model import Venue, Wedding
from msgspec.structs import asdict

from journeyhub_resend.config import ResendConfig, TemplateParts, valid_address
from journeyhub_resend.operations import incident_email
from journeyhub_resend.templates import locale_of, long_date, parse_date, render

MAX_RECIPIENTS = 50  # Resend's limit on ``to``
MAX_ATTACHED = 40 * 1024 * 1024  # Resend's limit per email, counted after base64 encoding
ATTACHMENT_KEYS = frozenset({"filename", "content", "path", "content_type"})
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
    if task.kind == "incident":
        return incident_email(task, config)
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

    if config.from_address is None:
        raise PermanentError("config.from_address is not set: this connection cannot send")
    label, sources, language, locale = _sources(event, config)
    context = _context(task, config, language, locale)
    headers = _unsubscribe(config, context)  # first: templates may link ``unsubscribe_url``
    subject = render(sources["subject"] or "", context, html=False, where=f"{label} subject")
    html = render(sources["html"] or "", context, html=True, where=f"{label} html")
    text = sources["text"] and render(sources["text"], context, html=False, where=f"{label} text")
    subject = " ".join(subject.split())  # a header: no line breaks
    if not subject:
        raise PermanentError(f"{label} rendered an empty subject")
    reply_to = _addresses(mapped.get("reply_to") or config.reply_to, "reply_to")
    tags = _tags(event.client.id, task.id)
    email = {"from": config.from_address, "to": to, "subject": subject, "html": html, "tags": tags}
    optional = {
        "text": text,
        "cc": cc,
        "bcc": bcc,
        "reply_to": reply_to,
        "headers": headers,
        "attachments": _attachments(_option(event, "attachments")),
        "scheduled_at": _scheduled_at(_option(event, "scheduled_at")),
    }
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


def _option(event: JourneyEvent, name: str) -> Any:
    """``data.<name>`` of the event, else of its step."""
    step_data = event.step.data if event.step is not None else {}
    return event.data.get(name) if event.data.get(name) is not None else step_data.get(name)


def _sources(
    event: JourneyEvent, config: ResendConfig
) -> tuple[str, dict[str, str | None], str, str]:
    """(label for messages, {subject, html, text} sources, their language, the locale to
    format in): a named template in the client's language if it has it, inline overrides."""
    name = _option(event, "template")
    inline = {part: event.data.get(part) for part in ("subject", "html", "text")}
    for part, value in inline.items():
        if value is not None and not isinstance(value, str):
            raise PermanentError(f"data.{part} must be a string")
    wanted = event.client.language if locale_of(event.client.language) else None
    if name is not None:
        if not isinstance(name, str) or name not in config.templates:
            known = ", ".join(sorted(config.templates)) or "none"
            raise PermanentError(f"unknown template {name!r}: this connection has {known}")
        template = config.templates[name]
        tag, locale = _language(wanted, config.language, template.translations)
        base: TemplateParts = template.translations[tag] if tag else template
        parts = {part: inline[part] or getattr(base, part) for part in inline}
        return f"template {name!r}", parts, tag or config.language, locale
    if not (inline["subject"] and inline["html"]):
        raise PermanentError(
            "no template named in data.template or step.data.template, "
            "and no inline data.subject and data.html"
        )
    return "the inline email", inline, wanted or config.language, wanted or config.language


def _language(wanted: str | None, default: str, translations: dict[str, Any]) -> tuple[str, str]:
    """(the translation to use, "" for the template's own parts; the locale to format in).
    ``de-CH`` takes a ``de-CH`` translation, else ``de``, else the template's own language
    (formatted as ``de-CH`` when that is German too, else in the connection's language)."""
    if wanted is None:
        return "", default
    keys = {key.lower(): key for key in translations}
    language = wanted.split("-")[0].lower()
    for tag in (wanted.lower(), language):
        if tag in keys:
            return keys[tag], wanted
    return "", wanted if default.split("-")[0].lower() == language else default


def _context(
    task: DeliveryTask, config: ResendConfig, language: str, locale: str
) -> dict[str, Any]:
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
            "date_long": long_date(date, locale_of(locale) or "en"),
            "venue": {"name": mapped.get("venue") or venue.name, "address": venue.address},
            "guest_count": wedding.guest_count,
        },
        "vendor": asdict(config.branding),
        "step": asdict(event.step) if event.step is not None else {},
        "journey": {"name": event.journey_name, "instance_id": event.journey_instance_id},
        "data": event.data,
        "mapped": mapped,
        "language": language,
        "locale": str(locale_of(locale) or "en"),
        "unsubscribe_url": None,
    }


def _unsubscribe(config: ResendConfig, context: dict[str, Any]) -> dict[str, str]:
    """``List-Unsubscribe`` (RFC 2369), with ``List-Unsubscribe-Post`` for the one-click URL
    (RFC 8058, which wants HTTPS); the rendered URL is also ``unsubscribe_url`` to templates."""
    links = []
    if config.unsubscribe_url is not None:
        url = render(config.unsubscribe_url, context, html=False, where="unsubscribe_url").strip()
        if not url.startswith("https://") or re.search(r"[\s<>,]", url):
            raise PermanentError("unsubscribe_url did not render to an https URL")
        context["unsubscribe_url"] = url
        links.append(f"<{url}>")
    if config.unsubscribe_mailto is not None:
        links.append(f"<mailto:{config.unsubscribe_mailto}?subject=unsubscribe>")
    headers = {"List-Unsubscribe": ", ".join(links)} if links else {}
    if config.unsubscribe_url is not None:
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    return headers


def _attachments(value: Any) -> list[dict[str, str]]:
    """``data.attachments``: ``[{filename, path (an https URL Resend fetches) | content
    (base64), content_type?}]``, checked here so a bad one names itself before any call."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(a, dict) for a in value):
        raise PermanentError("data.attachments must be a list of objects")
    total = 0
    for index, found in enumerate(value):
        where = f"data.attachments[{index}]"
        if set(found) - ATTACHMENT_KEYS or not all(isinstance(v, str) for v in found.values()):
            raise PermanentError(f"{where} takes the strings {', '.join(sorted(ATTACHMENT_KEYS))}")
        if ("path" in found) == ("content" in found):
            raise PermanentError(f"{where} needs either path (a URL) or content (base64)")
        if "path" in found and not found["path"].startswith(("https://", "http://")):
            raise PermanentError(f"{where}.path must be an http(s) URL")
        if "content" in found:
            if "filename" not in found:
                raise PermanentError(f"{where} with content needs a filename")
            try:
                base64.b64decode(found["content"], validate=True)
            except binascii.Error:
                raise PermanentError(f"{where}.content is not base64") from None
            total += len(found["content"])
    if total > MAX_ATTACHED:
        raise PermanentError("attachments exceed Resend's 40 MB per email")
    return [dict(found) for found in value]


def _scheduled_at(value: Any) -> str | None:
    """``data.scheduled_at``, an ISO 8601 time with its offset, sent in UTC."""
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise PermanentError("data.scheduled_at must be an ISO 8601 time with its offset")
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _tags(client_id: str | None, task_id: str) -> list[dict[str, str]]:
    # The task id only traces the email, so a lossy clean-up is enough for it.
    tags = [{"name": TASK_TAG, "value": re.sub(r"[^A-Za-z0-9_-]", "_", task_id)[:256] or "_"}]
    encoded = base64.b32encode((client_id or "").encode()).decode().rstrip("=")
    if client_id and TAG_SAFE.match(client_id):
        tags.insert(0, {"name": CLIENT_TAG, "value": client_id})
    elif client_id and len(encoded) <= 256:  # else the kernel finds the client by its email
        tags.insert(0, {"name": CLIENT_TAG_B32, "value": encoded})
    return tags
