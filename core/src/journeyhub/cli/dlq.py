"""``journeyhub dlq``: list and replay dead letters."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from journeyhub.cli.base import (
    DataDir,
    ExitCode,
    Json,
    app,
    cli_actor,
    console,
    err,
    fail,
    print_json,
    print_table,
    run_async,
    settings_or_exit,
    with_hub,
    with_store,
)

if TYPE_CHECKING:
    from journeyhub.hub import Hub
    from journeyhub.store.store import Store
    from journeyhub.store.tables import DeadLetter

dlq_app = typer.Typer(
    help="Dead letters: what failed for good, and replaying it.", no_args_is_help=True
)
app.add_typer(dlq_app, name="dlq")

Tenant = Annotated[str, typer.Option(help="Tenant id")]
Connection = Annotated[str | None, typer.Option("--connection", help="Only this connection")]
Vendor = Annotated[str | None, typer.Option(help="Only this vendor")]
Since = Annotated[datetime | None, typer.Option(help="Only dead letters from this time on")]
Until = Annotated[datetime | None, typer.Option(help="Only dead letters before this time")]
ErrorText = Annotated[
    str | None, typer.Option("--error", help="Only those whose error contains this")
]


def dead_letter_view(row: DeadLetter) -> dict[str, Any]:
    """A dead letter as ``GET /v1/dlq`` answers it."""
    try:
        payload = msgspec.json.decode(row.payload)
    except msgspec.DecodeError:
        payload = None
    return {
        "id": row.id,
        "connection_id": row.connection_id,
        "vendor": row.vendor,
        "stage": row.stage,
        "subject": row.subject,
        "error": row.error,
        "attempts": row.attempts,
        "created_at": row.created_at,
        "replayed_at": row.replayed_at,
        "replay_count": row.replay_count,
        "payload": payload,
    }


@dlq_app.command("list")
def dlq_list(
    tenant: Tenant,
    connection: Connection = None,
    vendor: Vendor = None,
    since: Since = None,
    until: Until = None,
    error: ErrorText = None,
    pending: Annotated[bool, typer.Option("--pending", help="Only those not replayed")] = False,
    limit: int = 50,
    as_json: Json = False,
    data_dir: DataDir = None,
) -> None:
    """Dead letters, newest first, with their last error."""
    from journeyhub.services.dead_letters import DeadLetterFilter, list_dead_letters

    settings = settings_or_exit(data_dir=data_dir)
    wanted = DeadLetterFilter(
        connection_id=connection, vendor=vendor, since=since, until=until, error=error
    )
    rows = run_async(
        lambda: with_store(
            settings,
            lambda s: list_dead_letters(
                s, tenant, wanted, limit=max(limit, 1), pending_only=pending
            ),
        )
    )
    if as_json:
        print_json([dead_letter_view(r) for r in rows])
        return
    table = Table(
        "id",
        "when",
        "vendor",
        "connection",
        "stage",
        "attempts",
        "replayed",
        "error",
    )
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
    print_table(table)
    console.print(f"{len(rows)} dead letter(s)")


@dlq_app.command("replay")
def dlq_replay(
    tenant: Tenant,
    dead_letter_id: Annotated[
        list[str] | None, typer.Argument(help="Ids; none: all not replayed matching the filters")
    ] = None,
    connection: Connection = None,
    vendor: Vendor = None,
    since: Since = None,
    until: Until = None,
    error: ErrorText = None,
    as_json: Json = False,
    data_dir: DataDir = None,
) -> None:
    """Put dead letters back on the bus (each is delivered once), with a progress bar on
    stderr. Exits 3 when one of the ids named is not the tenant's (the others are replayed)."""
    from journeyhub.services.dead_letters import (
        DeadLetterFilter,
        get_dead_letters,
        pending_dead_letters,
        replay_dead_letters,
    )

    settings = settings_or_exit(data_dir=data_dir)
    actor = cli_actor()
    wanted = DeadLetterFilter(
        connection_id=connection, vendor=vendor, since=since, until=until, error=error
    )

    async def find(store: Store) -> tuple[list[DeadLetter], list[str]]:
        if dead_letter_id:
            return await get_dead_letters(store, tenant, dead_letter_id)
        return await pending_dead_letters(store, tenant, wanted, limit=100_000), []

    async def run(hub: Hub) -> tuple[list[str], list[str]]:
        rows, missing = await find(hub.store)
        columns = (TextColumn("replaying"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=err, transient=False) as progress:
            bar = progress.add_task("replay", total=len(rows))
            replayed = await replay_dead_letters(
                hub, rows, actor, progress=lambda: progress.advance(bar)
            )
        return replayed, missing

    replayed, missing = run_async(lambda: with_hub(settings, run))
    if as_json:
        print_json({"replayed": replayed, "missing": missing})
    else:
        console.print(f"replayed {len(replayed)} dead letter(s)")
    if missing:
        fail(f"no dead letter {', '.join(missing)} for this tenant", ExitCode.NOT_FOUND)
