"""``journeyhub clients erase``: erase one client's personal data, through the same service
as ``DELETE /v1/clients/{client_id}``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from journeyhub.cli.base import (
    DataDir,
    ExitCode,
    Json,
    app,
    cli_actor,
    fail,
    print_json,
    print_table,
    run_async,
    settings_or_exit,
    with_hub,
)

if TYPE_CHECKING:
    from journeyhub.hub import Hub
    from journeyhub.services.clients import ClientErasure

clients_app = typer.Typer(help="Clients: erasing one.", no_args_is_help=True)
app.add_typer(clients_app, name="clients")


@clients_app.command("erase")
def clients_erase(
    client_id: Annotated[
        str, typer.Argument(help="The client's id, as the journey engine sends it")
    ],
    tenant: Annotated[str, typer.Option(help="Tenant id")],
    as_json: Json = False,
    data_dir: DataDir = None,
) -> None:
    """Erase the client's personal data everywhere the hub keeps it (every table, every
    stream) and print how many rows and messages were erased where."""
    from journeyhub.services.clients import erase_client
    from journeyhub.services.errors import InvalidInput

    settings = settings_or_exit(data_dir=data_dir)
    actor = cli_actor()

    async def erase(hub: Hub) -> ClientErasure:
        return await erase_client(hub, tenant, client_id, actor)

    try:
        result = run_async(lambda: with_hub(settings, erase))
    except InvalidInput as exc:
        fail(exc.message, ExitCode.USAGE)
    except LookupError as exc:
        fail(str(exc), ExitCode.NOT_FOUND)
    if as_json:
        print_json(result)
        return
    table = Table("where", "erased", title=f"client {client_id}")
    for name, count in result.tables.items():
        table.add_row(f"table {name}", str(count))
    for kind, count in result.streams.items():
        table.add_row(f"stream {kind}", str(count))
    print_table(table)
