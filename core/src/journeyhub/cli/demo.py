"""``journeyhub demo``: a wedding journey end to end against every connector's sandbox."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from journeyhub.cli.base import app, console, err


@app.command()
def demo(
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="Where the demo keeps its database and bus. Default: a fresh temporary "
            "directory, removed afterwards (your .journeyhub is never touched)."
        ),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(help="Port of the hub. Default: 8000, or a free port if 8000 is taken."),
    ] = None,
    keep_running: Annotated[
        bool,
        typer.Option(
            "--keep-running",
            help="Keep the hub and the sandboxes up after the story, with their URLs and an "
            "API key to sign in, until Ctrl-C.",
        ),
    ] = False,
    fail_step: Annotated[
        str | None,
        typer.Option(hidden=True, help="Break this step on purpose (for tests)."),
    ] = None,
) -> None:
    """Play a wedding journey end to end against every connector's sandbox.

    The hub runs in this process on its embedded defaults, beside a local sandbox of every
    installed connector: enquiry → booking → deposit → emails → date change → completion.
    """
    from journeyhub.demo import STEP_KEYS, DemoOptions, run

    if fail_step is not None and fail_step not in STEP_KEYS:
        err.print(f"[red]--fail-step must be one of {', '.join(STEP_KEYS)}[/red]")
        raise typer.Exit(2)
    options = DemoOptions(
        data_dir=data_dir, port=port, keep_running=keep_running, fail_step=fail_step
    )
    raise typer.Exit(run(options, console, err))
