"""``journeyhub demo`` as a newcomer runs it: a subprocess with no terminal and no stdin, on
the embedded defaults. It must play the whole story, report what reached each system, and leave
no nats-server behind; a broken step must fail the run and name the step. And, run in this
process, it must end with one wedding date in every system that can be updated, as read from
the systems' own sandboxes."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from journeyhub import signing
from journeyhub.bus.embedded import free_port
from journeyhub.demo import DemoOptions
from journeyhub.demo.engine import Journey, JourneyEngine
from journeyhub.demo.runner import Demo
from journeyhub.demo.scenario import NEW_DATE, WEDDING_DATE, Scenario
from rich.console import Console
from standardwebhooks.webhooks import Webhook

SYSTEMS = (
    "Tave (VSCO Workspace)",
    "Stripe",
    "Resend",
    "Google Calendar",
    "Light Blue",
    "HoneyBook (Zapier)",
    "17hats (Zapier)",
    "Journey engine",
)
TRIGGERS = ("payment_received", "email_delivered", "email_opened", "wedding_date_changed")
STEPS = (
    "Enquiry",
    "Booked",
    "Deposit paid",
    "Emails",
    "Date moved in the CRM",
    "The date follows",
    "Journey completed",
)


def run_demo(cwd: Path, *args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEYHUB_")}
    env.update(CI="true", PYTHONIOENCODING="utf-8", **extra_env)
    return subprocess.run(
        [sys.executable, "-m", "journeyhub", "demo", *args],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=150,
    )


def nats_servers_under(path: Path) -> list[str]:
    """Command lines of nats-server processes whose store is under ``path``."""
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "nats-server" in cmdline and str(path) in cmdline:
            found.append(cmdline)
    return found


@pytest.mark.plugins
@pytest.mark.timeout(200)
def test_the_demo_plays_the_wedding_journey_end_to_end(tmp_path: Path) -> None:
    result = run_demo(tmp_path)
    out = result.stdout
    assert result.returncode == 0, f"stdout:\n{out}\nstderr:\n{result.stderr}"
    # Its own temporary data directory: announced, never the user's .journeyhub, and gone.
    match = re.search(r"data: (\S+) \(temporary", out)
    assert match, out
    data_dir = Path(match.group(1))
    assert not (tmp_path / ".journeyhub").exists()
    assert not data_dir.exists()
    assert nats_servers_under(data_dir) == []

    for step in STEPS:
        assert re.search(rf"^✓ \d\s+{step}", out, re.MULTILINE), f"{step} not done:\n{out}"
    assert "✗" not in out
    report = out.split("What reached each system", 1)[1]
    for system in SYSTEMS:
        assert system in report, system
    triggers = report.split("Triggers emitted", 1)[1]
    for trigger in TRIGGERS:
        assert re.search(rf"^\s+{trigger}\s+\S+.*✓\s*$", triggers, re.MULTILINE), trigger
    assert "Dead letters: 0" in out
    assert "Dashboard: http://127.0.0.1:" in out
    dates = " ".join(report.split("Wedding date", 1)[1].split("Triggers emitted")[0].split())
    assert f"One wedding date, {NEW_DATE}, in every system that can be updated." in dates
    assert "HoneyBook (Zapier) 2027-06-12 the project's date; cannot be updated" in dates


@pytest.mark.plugins
@pytest.mark.timeout(200)
def test_a_broken_step_fails_the_demo_and_names_the_step(tmp_path: Path) -> None:
    data_dir = tmp_path / "demo-data"
    result = run_demo(tmp_path, "--data-dir", str(data_dir), "--fail-step", "enquiry")
    assert result.returncode == 1, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert re.search(
        r"^✗ 1\s+Enquiry\s+Tave \(VSCO Workspace\) gave up", result.stdout, re.MULTILINE
    ), result.stdout
    assert "the demo failed at step 1 (enquiry)" in " ".join(result.stderr.split())
    assert "What reached each system" not in result.stdout
    assert (data_dir / "demo.log").exists()  # kept, for whoever looks into the failure
    assert nats_servers_under(data_dir) == []


@pytest.mark.timeout(200)
def test_without_a_vendor_the_demo_still_plays_what_it_can(tmp_path: Path) -> None:
    """With no plugin's sandbox (none installed, or none selected), the journey engine alone:
    the steps that need a vendor are skipped, the rest run, and the run succeeds."""
    port = str(free_port())  # not 8000, which another process on this machine may take first
    result = run_demo(tmp_path, "--port", port, JOURNEYHUB_PLUGINS="webhook")
    out = result.stdout
    assert result.returncode == 0, f"stdout:\n{out}\nstderr:\n{result.stderr}"
    assert re.search(r"^✓ Start the sandboxes\s+0 vendors \+ the journey engine", out, re.M), out
    assert re.search(r"^✓ 1\s+Enquiry\s+journey event accepted", out, re.MULTILINE), out
    assert re.search(r"^- 3\s+Deposit paid\s+skipped: no \w+ connection", out, re.MULTILINE), out
    assert re.search(r"^✓ 7\s+Journey completed", out, re.MULTILINE), out
    assert "✗" not in out
    report = out.split("What reached each system", 1)[1]
    assert "Journey engine" in report
    assert "Dead letters: 0" in out


# --- the final state of every system, read from its sandbox -------------------------------------


def _wedding_day(event: dict[str, Any]) -> str:
    start = event.get("start") or {}
    return start.get("date") or (start.get("dateTime") or "")[:10]


def final_state(scenario: Scenario) -> dict[str, Any]:
    """What each system holds, read through its sandbox's own records (not the report)."""
    boxes = scenario.boxes
    tave, gcal = boxes.get("tave"), boxes.get("gcal")
    lightblue, hats = boxes.get("lightblue"), boxes.get("seventeenhats")
    honeybook, ninja = boxes.get("honeybook"), boxes.get("studioninja")
    engine = boxes.engine
    assert engine is not None
    journey = engine.journey(scenario.client_id)
    assert journey is not None
    weddings = [
        e
        for e in gcal.events()
        if (e.get("extendedProperties") or {}).get("private", {}).get("journeyhub_kind")
        == "wedding"
        and e.get("status") != "cancelled"
    ]
    return {
        "engine": journey.wedding["date"],
        "engine sent": {e["type"]: e["wedding"]["date"] for e in engine.sent},
        "tave": [job["eventDate"] for job in tave.jobs],
        "gcal": [_wedding_day(e) for e in weddings],
        "lightblue": [e.fields.get("ShootDate") for e in lightblue.enquiries],
        "seventeenhats": [c.get("notes") for c in hats.contacts.values()],
        "honeybook": [p.get("project_date") for p in honeybook.projects],
        "studioninja": [s.fields.get("event_date") for s in ninja.submissions],
    }


class InspectedDemo(Demo):
    """The demo, with every system's final state read before the sandboxes stop."""

    final: dict[str, Any] | None = None

    async def shutdown(self) -> None:
        if self.scenario is not None and self.succeeded:
            self.final = final_state(self.scenario)
        await super().shutdown()


@pytest.fixture
def demo_logging() -> Iterator[None]:
    """The demo sends structlog and the servers' loggers to its log file: put them back."""
    saved = structlog.get_config()
    names = ("uvicorn", "uvicorn.error", "uvicorn.access", "litestar", "httpx")
    loggers = {name: logging.getLogger(name) for name in names}
    before = {name: (list(lg.handlers), lg.propagate) for name, lg in loggers.items()}
    yield
    structlog.configure(**saved)
    for name, logger in loggers.items():
        logger.handlers, logger.propagate = before[name]


@pytest.mark.plugins
@pytest.mark.timeout(200)
async def test_the_demo_ends_with_one_wedding_date_everywhere_it_can(
    tmp_path: Path, demo_logging: None
) -> None:
    out = io.StringIO()
    options = DemoOptions(data_dir=tmp_path / "demo", port=free_port())
    demo = InspectedDemo(options, Console(file=out, width=120))
    code = await demo.run()
    assert code == 0, out.getvalue()
    final = demo.final
    assert final is not None
    assert final["engine"] == NEW_DATE
    # Every event the engine sent after it learnt of the move carries the new date.
    assert final["engine sent"]["client_updated"] == NEW_DATE
    assert final["engine sent"]["journey_completed"] == NEW_DATE
    assert final["tave"] == [NEW_DATE]
    assert final["gcal"] == [NEW_DATE]
    # Light Blue's Inbox: the enquiry, then the update the studio applies (dd/mm/yyyy).
    assert final["lightblue"] == ["12/06/2027", "19/06/2027"]
    [notes] = final["seventeenhats"]
    assert NEW_DATE in notes and WEDDING_DATE not in notes
    # Create-only systems keep the first date; the report says so (the test above).
    assert final["honeybook"] == [WEDDING_DATE]
    assert final["studioninja"] == [WEDDING_DATE]


# --- the journey engine on its own ---------------------------------------------------------------


def _signed(secret: str, msg_id: str, payload: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    when = datetime.now(UTC)
    signature = Webhook(secret).sign(msg_id, when, body.decode())
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
    }
    return body, headers


@pytest.mark.parametrize("shape", ["standard webhooks", "bare trigger"])
async def test_the_engine_applies_a_new_wedding_date_and_queues_one_update(shape: str) -> None:
    """A ``wedding_date_changed`` trigger, in the Standard Webhooks shape the webhook connector
    sends or as a bare trigger, moves the engine's wedding; a redelivery (same webhook-id)
    changes nothing more, and events built afterwards carry the new date."""
    engine = JourneyEngine().start()
    try:
        client = {"id": "cl_1", "name": "Ada Lovelace", "email": "ada@example.com"}
        engine.begin(Journey("ji_1", "Wedding", client, {"date": WEDDING_DATE}))
        trigger = {
            "id": "trg_1",
            "type": "wedding_date_changed",
            "source_event_id": "sync:job:1",
            "client_id": "cl_1",
            "occurred_at": "2027-01-02T10:00:00Z",
            "data": {"changes": {"wedding_date": {"old": WEDDING_DATE, "new": NEW_DATE}}},
        }
        payload = trigger
        if shape == "standard webhooks":
            payload = {
                "type": trigger["type"],
                "timestamp": trigger["occurred_at"],
                "kind": "trigger",
                "data": trigger,
            }
        body, headers = _signed(engine.secret, "msg_1", payload)
        async with httpx.AsyncClient() as http:
            for _ in range(2):  # the second is a retry
                answer = await http.post(engine.url, content=body, headers=headers)
                assert answer.status_code == 200
            forged = _signed(signing.new_secret(), "msg_2", payload)  # another secret
            refused = await http.post(engine.url, content=forged[0], headers=forged[1])
        assert refused.status_code == 401
        assert [t["id"] for t in engine.triggers("wedding_date_changed")] == ["trg_1"]
        journey = engine.journey("cl_1")
        assert journey is not None and journey.wedding["date"] == NEW_DATE
        [update] = engine.pending
        assert update["type"] == "client_updated" and update["wedding"]["date"] == NEW_DATE
        later = engine.event("cl_1", "ev_done", "journey_completed")
        assert later["wedding"]["date"] == NEW_DATE and later["client"] == client
    finally:
        engine.stop()
