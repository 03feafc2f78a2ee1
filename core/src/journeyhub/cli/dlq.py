"""``journeyhub dlq``: list and replay dead letters."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from journeyhub.cli.base import (
    DataDir,
    app,
    cli_actor,
    console,
    run_async,
    settings_or_exit,
    with_hub,
    with_store,
)

dlq_app = typer.Typer(
    help="Dead letters: what failed for good, and replaying it.", no_args_is_help=True
)
app.add_typer(dlq_app, name="dlq")

Tenant = Annotated[str, typer.Option(help="Tenant id")]
Connection = Annotated[str | None, typer.Option("--connection", help="Only this connection")]
Vendor = Annotated[str | None, typer.Option(help="Only this vendor")]
Since = Annotated[datetime | None, typer.Option(help="Only dead letters from this time on")]
ErrorText = Annotated[
    str | None, typer.Option("--error", help="Only those whose error contains this")
]


@dlq_app.command("list")
def dlq_list(
    tenant: Tenant,
    connection: Connection = None,
    vendor: Vendor = None,
    since: Since = None,
    error: ErrorText = None,
    limit: int = 50,
    data_dir: DataDir = None,
) -> None:
    """Dead letters, newest first, with their last error."""
    settings = settings_or_exit(data_dir=data_dir)
    rows = run_async(
        lambda: with_store(
            settings,
            lambda s: s.deliveries.list_dead(
                tenant,
                limit=limit,
                connection_id=connection,
                vendor=vendor,
                since=since,
                error=error,
            ),
        )
    )
    table = Table("id", "when", "vendor", "connection", "stage", "attempts", "replayed", "error")
    for r in rows:
        table.add_row(
            r.id,
            f"{r.created_at:%Y-%m-%d %H:%M:%S}",
            r.vendor,
            r.connection_id,
            r.stage,
            str(r.attempts),
            str(r.replay_count),
            r.error[:80],
        )
    console.print(table)
    console.print(f"{len(rows)} dead letter(s)")


@dlq_app.command("replay")
def dlq_replay(
    tenant: Tenant,
    dead_letter_id: Annotated[
        list[str] | None, typer.Argument(help="Ids; none: all matching the filters")
    ] = None,
    connection: Connection = None,
    vendor: Vendor = None,
    since: Since = None,
    error: ErrorText = None,
    data_dir: DataDir = None,
) -> None:
    """Put dead letters back on the bus (each is delivered once), with a progress bar."""
    from journeyhub.workers.deadletter import replay

    settings = settings_or_exit(data_dir=data_dir)
    actor = cli_actor()

    async def run(hub: Any) -> int:
        if dead_letter_id:
            rows = [
                r for i in dead_letter_id if (r := await hub.store.deliveries.get_dead(i, tenant))
            ]
            missing = set(dead_letter_id) - {r.id for r in rows}
            for item in sorted(missing):
                console.print(f"[yellow]no dead letter {item} for this tenant[/yellow]")
        else:
            rows = await hub.store.deliveries.list_dead(
                tenant,
                limit=100_000,
                connection_id=connection,
                vendor=vendor,
                since=since,
                error=error,
                pending_only=True,
            )
            rows.reverse()  # oldest first
        columns = (TextColumn("replaying"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=False) as progress:
            bar = progress.add_task("replay", total=len(rows))
            for row in rows:
                await replay(hub, row, actor)
                progress.advance(bar)
        return len(rows)

    count = run_async(lambda: with_hub(settings, run))
    console.print(f"replayed {count} dead letter(s)")
