"""The demo's closing report: what reached each system, the wedding date each one holds, every
trigger emitted, and the totals."""

from __future__ import annotations

import html
import re
from collections import Counter
from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from journeyhub.demo import dates
from journeyhub.demo.sandboxes import ENGINE
from journeyhub.demo.scenario import Scenario, short_label

_TAG = re.compile(r"<[^>]+>")


def _plain(markup: Any) -> str:
    return " ".join(html.unescape(_TAG.sub(" ", str(markup or ""))).split())


def _plural(count: int, word: str) -> str:
    if count == 1:
        return f"{count} {word}"
    return f"{count} {word[:-1]}ies" if word.endswith("y") else f"{count} {word}s"


def _tave(sandbox: Any) -> list[str]:
    lines = []
    for contact in sandbox.contacts:
        lines.append(f"contact {contact.get('name')} <{contact.get('email')}>")
    for job in sandbox.jobs:
        status = job.get("leadStatusName") or job.get("stage")
        lines.append(f"job “{job.get('title')}” on {job.get('eventDate')}, status {status}")
    for note in sandbox.notes:
        text = _plain(note.get("contentHtml")).split(" journeyhub")[0]
        lines.append(f"note “{text}”")
    return lines


def _lightblue(sandbox: Any) -> list[str]:
    lines = []
    for enquiry in sandbox.enquiries:
        fields = enquiry.fields
        kind = "update" if "Updated" in fields.get("Message", "") else "enquiry"
        lines.append(f"{kind} “{fields.get('ShootTitle', '?')}” for {fields.get('ShootDate', '?')}")
    return lines


def _honeybook(sandbox: Any) -> list[str]:
    lines = [f"client {c.get('full_name')} <{c.get('email')}>" for c in sandbox.clients.values()]
    for project in sandbox.projects:
        lines.append(
            f"project {project.get('project_type')} on {project.get('project_date')} at "
            f"{project.get('project_location')}"
        )
    return lines


def _seventeenhats(sandbox: Any) -> list[str]:
    lines = []
    for contact in sandbox.contacts.values():
        name = f"{contact.get('first_name', '')} {contact.get('last_name', '')}".strip()
        lines.append(f"contact {name} ({contact.get('type')}), #{contact.get('id')}")
    if sandbox.updated:
        lines.append(f"{_plural(sandbox.updated, 'update')} by the Zap")
    return lines


def _gcal(sandbox: Any) -> list[str]:
    lines = []
    for event in sandbox.events():
        start = event.get("start") or {}
        when = start.get("date") or (start.get("dateTime") or "")[:16].replace("T", " ")
        lines.append(f"“{event.get('summary')}” {when} ({event.get('status')})")
    return lines


def _resend(sandbox: Any) -> list[str]:
    return [f"“{e['subject']}” → {e.get('last_event')}" for e in sandbox.emails]


def _stripe(sandbox: Any) -> list[str]:
    events = {e["id"]: e for e in sandbox.events}
    lines = []
    for delivery in sandbox.deliveries:
        event = events.get(delivery.event_id) or {}
        lines.append(f"sent {event.get('type', '?')}, signed → hub answered {delivery.status}")
    return lines


def _studioninja(sandbox: Any) -> list[str]:
    lines = [f"{_plural(len(sandbox.submissions), 'enquiry form submission')}"]
    entries = sandbox.google.events()
    if entries:
        lines.append(f"{_plural(len(entries), 'calendar entry')}")
    return lines


# How the report reads what each sandbox of the story holds (through its vendor's own API); a
# sandbox not named here is shown by its address.
DESCRIBE = {
    "tave": _tave,
    "lightblue": _lightblue,
    "honeybook": _honeybook,
    "seventeenhats": _seventeenhats,
    "gcal": _gcal,
    "resend": _resend,
    "stripe": _stripe,
    "studioninja": _studioninja,
}


def systems_table(scenario: Scenario) -> Table:
    table = Table(
        title="What reached each system", title_justify="left", box=box.SIMPLE_HEAD, expand=False
    )
    table.add_column("system", style="bold", no_wrap=True)
    table.add_column("what it holds now", overflow="fold")
    boxes = scenario.boxes
    for vendor in boxes.listed():
        name = boxes.label(vendor)
        sandbox = boxes.get(vendor)
        if sandbox is None:
            reason = boxes.skipped.get(vendor, "not running")
            table.add_row(Text(name, style="dim"), Text(f"skipped: {reason}", style="dim"))
            continue
        describe = DESCRIBE.get(vendor)
        try:
            lines = describe(sandbox) if describe else [f"sandbox at {boxes.vendors[vendor].url}"]
        except Exception as exc:  # a report line must not hide the rest of the report
            lines = [f"(could not read the sandbox: {type(exc).__name__})"]
        table.add_row(name, "\n".join(lines) or Text("nothing", style="dim"))
    engine = boxes.engine
    if engine is not None:
        count = len(engine.triggers())
        line = f"{_plural(count, 'trigger')}, every signature verified"
        if engine.rejected:
            line += f"; {engine.rejected} refused (bad signature)"
        table.add_row(boxes.label(ENGINE), line)
    return table


def dates_table(scenario: Scenario) -> Group:
    """Per system: the wedding date it holds now (read from its sandbox), and where the hub
    cannot change it; then one line saying whether every system that can be updated agrees."""
    table = Table(title="Wedding date", title_justify="left", box=box.SIMPLE_HEAD, expand=False)
    table.add_column("system", style="bold", no_wrap=True)
    table.add_column("date", no_wrap=True)
    table.add_column("held in / why not", overflow="fold")
    boxes = scenario.boxes
    engine_date = scenario.wedding_date()
    table.add_row(boxes.label(ENGINE), engine_date, "the journey as the engine knows it")
    differ: list[str] = []
    stuck: list[str] = []
    for vendor in boxes.listed():
        name, sandbox = boxes.label(vendor), boxes.get(vendor)
        if sandbox is None:
            continue
        if vendor in dates.NO_DATE:
            table.add_row(name, Text("-", style="dim"), Text(dates.NO_DATE[vendor], style="dim"))
            continue
        try:
            now = dates.held(vendor, sandbox)
        except Exception as exc:  # a report line must not hide the rest of the report
            table.add_row(name, "?", f"(could not read the sandbox: {type(exc).__name__})")
            continue
        if now is None:
            table.add_row(name, Text("-", style="dim"), Text("not read", style="dim"))
            continue
        held = now.date or "none"
        if vendor in dates.CANNOT_UPDATE:
            if now.date != engine_date:
                stuck.append(f"{short_label(name)} keeps {held}")
            note = Text(f"{now.where}; {dates.CANNOT_UPDATE[vendor]}", style="yellow")
            table.add_row(name, Text(held, style="yellow"), note)
            continue
        same = now.date == engine_date
        if not same:
            differ.append(f"{short_label(name)} {held}")
        table.add_row(name, Text(held, style="green" if same else "red"), now.where)
    if differ:
        verdict = Text(f"✗ not one wedding date: {', '.join(differ)}", style="bold red")
    else:
        verdict = Text(
            f"One wedding date, {engine_date}, in every system that can be updated.",
            style="bold green",
        )
    if stuck:
        verdict.append(f" {', '.join(stuck)}: the hub cannot update it there.", style="yellow")
    return Group(table, verdict, Text())


async def triggers_table(scenario: Scenario) -> Table:
    rows = await scenario.hub.store.triggers.list(scenario.tenant_id, limit=1000)
    engine = scenario.boxes.engine
    table = Table(title="Triggers emitted", title_justify="left", box=box.SIMPLE_HEAD, expand=False)
    table.add_column("trigger", style="cyan", no_wrap=True)
    table.add_column("from", no_wrap=True)
    table.add_column("client", no_wrap=True)
    table.add_column("at the engine", justify="center", no_wrap=True)
    for row in sorted(rows, key=lambda r: r.created_at):
        reached = engine is not None and engine.has(row.id)
        table.add_row(
            row.type,
            short_label(scenario.label(row.vendor)),
            row.client_id or "-",
            Text("✓", style="green") if reached else Text("✗", style="red"),
        )
    if not rows:
        table.add_row(Text("none", style="dim"), "", "", "")
    return table


async def totals(scenario: Scenario) -> Text:
    store = scenario.hub.store.deliveries
    attempts = await store.list(scenario.tenant_id, limit=10_000)
    final: dict[str, str] = {}
    for row in sorted(attempts, key=lambda r: r.id):
        final[row.task_id] = row.status
    outcome = Counter(final.values())
    retries = sum(1 for r in attempts if r.status in ("failed", "rate_limited"))
    dead = await store.count_dead(scenario.tenant_id)
    text = Text()
    text.append("Deliveries: ", style="bold")
    text.append(f"{outcome.get('delivered', 0)} delivered", style="green")
    text.append(f", {outcome.get('skipped', 0)} skipped, {_plural(retries, 'retry')}")
    text.append(" · ")
    text.append("Dead letters: ", style="bold")
    text.append(str(dead), style="red" if dead else "green")
    return text


async def report(scenario: Scenario) -> RenderableType:
    return Group(
        systems_table(scenario),
        dates_table(scenario),
        await triggers_table(scenario),
        await totals(scenario),
    )
