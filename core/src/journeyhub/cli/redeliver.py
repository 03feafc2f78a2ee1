"""``journeyhub connections resend`` and ``backfill``: a connection's kept journey events pushed
again by filter, or a new connection filled from them, through the same service as
``POST /v1/connections/{id}/resend`` and ``/backfill`` (``services/redelivery.py``), with a
progress bar on stderr while the tasks are queued."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from journeyhub.cli.base import DataDir as DataDirOption
from journeyhub.cli.base import (
    Json,
    cli_actor,
    console,
    print_json,
    run_async,
    settings_or_exit,
    with_hub,
)
from journeyhub.cli.connections import connections_app
from journeyhub.services.redelivery import Kind, Operation, RedeliveryFilter, redeliver

ConnectionId = Annotated[str, typer.Argument(help="The connection's id")]
Since = Annotated[
    datetime | None, typer.Option(help="Only events the hub received from this time on (UTC)")
]
Until = Annotated[
    datetime | None, typer.Option(help="Only events the hub received before this time (UTC)")
]


def _aware(moment: datetime | None) -> datetime | None:
    """A time given without an offset is taken as UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def _run(
    connection_id: str, kind: Kind, wanted: RedeliveryFilter, data_dir: Any, as_json: bool
) -> None:
    settings = settings_or_exit(data_dir=data_dir)
    actor = cli_actor()

    async def work(hub: Any) -> Operation:
        connection = await hub.store.connections.get(connection_id)
        if connection is None:
            raise LookupError(f"no connection {connection_id}")
        columns = (TextColumn(kind), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=Console(stderr=True), transient=as_json) as progress:
            bar = progress.add_task(kind, total=None)

            def advance(done: int, matched: int) -> None:
                progress.update(bar, completed=done, total=matched)

            return await redeliver(
                hub, connection.tenant_id, connection_id, kind, wanted, actor, advance
            )

    operation = run_async(lambda: with_hub(settings, work))
    if as_json:
        print_json(operation)
        return
    console.print(
        f"{operation.kind} {operation.id}: {operation.matched} kept event(s) matched, "
        f"{operation.queued} queued to {operation.connection_id}"
    )


@connections_app.command("resend")
def connections_resend(
    connection_id: ConnectionId,
    client: Annotated[str | None, typer.Option(help="Only this client's events")] = None,
    type_: Annotated[
        list[str] | None, typer.Option("--type", help="Only events of this type (repeatable)")
    ] = None,
    since: Since = None,
    until: Until = None,
    event: Annotated[
        list[str] | None, typer.Option("--event", help="Only this event id (repeatable)")
    ] = None,
    delivery: Annotated[
        str | None, typer.Option(help="One delivery, by its task id (`GET /v1/deliveries`)")
    ] = None,
    key: Annotated[
        str | None,
        typer.Option(help="The resend's own key: the same key again pushes nothing twice"),
    ] = None,
    data_dir: DataDirOption = None,
    as_json: Json = False,
) -> None:
    """Push the connection's kept journey events that match the filters again, as new
    deliveries (fresh idempotency keys), in each client's order."""
    wanted = RedeliveryFilter(
        client_id=client,
        types=type_ or [],
        since=_aware(since),
        until=_aware(until),
        event_ids=event or [],
        task_id=delivery,
        key=key,
    )
    _run(connection_id, "resend", wanted, data_dir, as_json)


@connections_app.command("backfill")
def connections_backfill(
    connection_id: ConnectionId,
    since: Annotated[
        datetime, typer.Option(help="Events the hub received from this time on (UTC)")
    ],
    until: Until = None,
    data_dir: DataDirOption = None,
    as_json: Json = False,
) -> None:
    """Fill a (new) connection with the journey events the hub kept, in each client's order,
    with their original idempotency keys: running it again pushes nothing twice."""
    wanted = RedeliveryFilter(since=_aware(since), until=_aware(until))
    _run(connection_id, "backfill", wanted, data_dir, as_json)
