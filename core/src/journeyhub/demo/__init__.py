"""``journeyhub demo``: the hub and every connector's sandbox in one process, and one wedding
journey played end to end with progress on the terminal.

This module stays light (the terminal shows the header at once); the machinery is imported
when the demo starts: :mod:`.runner` (start, play, report, clean up), :mod:`.sandboxes`,
:mod:`.engine` (the journey engine), :mod:`.scenario` (the story), :mod:`.dates` (the wedding
date each system holds) and :mod:`.report`.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.markup import escape

# The story's steps, in order (``--fail-step`` names one); scenario.STORY holds their details.
STEP_KEYS = ("enquiry", "booked", "deposit", "emails", "date", "calendar", "completed")


@dataclass
class DemoOptions:
    data_dir: Path | None = None  # None: a fresh temporary directory, removed on success
    port: int | None = None  # None: 8000, or a free port if 8000 is taken
    keep_running: bool = False
    fail_step: str | None = None  # one of STEP_KEYS: break that step on purpose (tests)
    step_timeout: float = 20.0
    temporary: bool = False  # set by run(): the data directory is ours to remove


def run(options: DemoOptions, console: Console | None = None, err: Console | None = None) -> int:
    """Run the demo and return its exit code: 0 success, 1 a step failed, 130 interrupted."""
    console = console or Console()
    err = err or Console(stderr=True)
    if options.data_dir is None:
        options.data_dir = Path(tempfile.mkdtemp(prefix="journeyhub-demo-"))
        options.temporary = True
    where = "temporary; your .journeyhub is not touched" if options.temporary else "--data-dir"
    console.print()
    console.print(
        "[bold]journeyhub demo[/bold] · a wedding journey, end to end, on local sandboxes"
    )
    console.print(f"[dim]data: {escape(str(options.data_dir))} ({where})[/dim]", highlight=False)
    console.print()
    with console.status("[dim]loading…[/dim]"):
        from journeyhub.demo.runner import main
    return main(options, console, err)


__all__ = ["STEP_KEYS", "DemoOptions", "run"]
