"""``journeyhub demo`` as a newcomer runs it: a subprocess with no terminal and no stdin, on
the embedded defaults. It must play the whole story, report what reached each system, and leave
no nats-server behind; a broken step must fail the run and name the step."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from journeyhub.bus.embedded import free_port

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
    "Calendar updated",
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
