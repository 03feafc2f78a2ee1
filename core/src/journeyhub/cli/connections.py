"""``journeyhub connections``: add, list, test, import-csv."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import msgspec
import typer
from rich.table import Table

from journeyhub.cli.base import (
    DataDir,
    app,
    cli_actor,
    console,
    err,
    run_async,
    settings_or_exit,
    with_hub,
    with_store,
)

connections_app = typer.Typer(help="Connections to vendor accounts.", no_args_is_help=True)
app.add_typer(connections_app, name="connections")


def _json_option(raw: str | None, name: str) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        text = Path(raw[1:]).read_text() if raw.startswith("@") else raw
        value = json.loads(text)
    except (OSError, json.JSONDecodeError) as exc:
        err.print(f"[red]--{name} must be JSON or @file.json: {exc}[/red]")
        raise typer.Exit(2) from None
    if not isinstance(value, dict):
        err.print(f"[red]--{name} must be a JSON object[/red]")
        raise typer.Exit(2)
    return value


@connections_app.command("add")
def connections_add(
    tenant: Annotated[str, typer.Option(help="Tenant id")],
    vendor: Annotated[str, typer.Option(help="Connector name, see `journeyhub plugins list`")],
    name: Annotated[str, typer.Option(help="A name people recognise")],
    direction: Annotated[
        str, typer.Option(help="inbound, outbound or bidirectional")
    ] = "bidirectional",
    config: Annotated[str | None, typer.Option(help="Config JSON, or @file.json")] = None,
    credentials: Annotated[
        str | None, typer.Option(help="Credentials JSON, or @file.json (never printed)")
    ] = None,
    event_types: Annotated[
        str | None, typer.Option(help="Comma-separated event/trigger types")
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Create a connection; config and credentials are checked against the plugin's schemas."""
    from journeyhub.plugins import get_plugin_manager
    from journeyhub.services.connections import create_connection, validate_connection
    from journeyhub.services.errors import InvalidInput

    settings = settings_or_exit(data_dir=data_dir)
    registry = get_plugin_manager(only=settings.plugins)
    if direction not in ("inbound", "outbound", "bidirectional"):
        err.print("[red]--direction must be inbound, outbound or bidirectional[/red]")
        raise typer.Exit(2)
    types = [t.strip() for t in (event_types or "").split(",") if t.strip()]
    secret = _json_option(credentials, "credentials")
    values: dict[str, Any] = {
        "vendor": vendor,
        "direction": direction,
        "config": _json_option(config, "config"),
        "credentials": secret,
        "event_types": types,
        "field_mappings": [],
    }
    try:  # checked before the store is opened (and migrated)
        validate_connection(registry, **values)
    except InvalidInput as exc:
        err.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(2) from None

    async def create(store: Any) -> Any:
        return await create_connection(
            store, registry, tenant_id=tenant, name=name, enabled=True, actor=cli_actor(), **values
        )

    try:
        created = run_async(lambda: with_store(settings, create))
    except LookupError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    print(created.id)
    url = f"http://{settings.host}:{settings.port}/webhooks/{vendor}/{created.id}"
    info = registry.connectors[vendor].info
    if "webhook" in info.capabilities:
        err.print(f"webhook URL: {url}")


@connections_app.command("list")
def connections_list(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's")] = None,
    data_dir: DataDir = None,
) -> None:
    """Connections with their vendor, direction and status."""
    from journeyhub.services.connections import list_connections

    settings = settings_or_exit(data_dir=data_dir)
    rows = run_async(lambda: with_store(settings, lambda s: list_connections(s, tenant)))
    table = Table("id", "tenant", "vendor", "name", "direction", "enabled", "status")
    for c in rows:
        table.add_row(
            c.id, c.tenant_id, c.vendor, c.name, c.direction, "yes" if c.enabled else "no", c.status
        )
    console.print(table)


@connections_app.command("test")
def connections_test(connection_id: str, data_dir: DataDir = None) -> None:
    """Make one cheap call to the vendor with the stored credentials and show its answer."""
    from journeyhub.plugins import get_plugin_manager
    from journeyhub.services.connections import check_connection
    from journeyhub.vendor_http import VendorHttp

    settings = settings_or_exit(data_dir=data_dir)
    registry = get_plugin_manager(only=settings.plugins)

    async def check(store: Any) -> tuple[bool, str]:
        async with VendorHttp(timeout=15) as http:
            checked = await check_connection(store, registry, http, connection_id)
        if checked is None:
            return False, f"no connection {connection_id!r}"
        return checked.ok, checked.answer

    ok, answer = run_async(lambda: with_store(settings, check))
    (console if ok else err).print(("[green]ok[/green] " if ok else "[red]failed[/red] ") + answer)
    if not ok:
        raise typer.Exit(1)


@connections_app.command("sync")
def connections_sync(connection_id: str, data_dir: DataDir = None) -> None:
    """Pull changes from the vendor now and show the result."""
    from journeyhub.services.connections import can_pull, get_connection
    from journeyhub.workers.pull import SyncWorker

    settings = settings_or_exit(data_dir=data_dir)

    async def run(hub: Any) -> str:
        connection = await get_connection(hub.store, connection_id)
        if connection is None:
            raise LookupError(f"no connection {connection_id!r}")
        if not can_pull(hub.registry, connection):
            raise LookupError(f"{connection.vendor} connection {connection_id} cannot be pulled")
        with console.status("pulling…"):
            return await SyncWorker(hub).sync(connection)

    try:
        result = run_async(lambda: with_hub(settings, run))
    except LookupError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    (console if result.startswith("ok") else err).print(result)
    if not result.startswith("ok"):
        raise typer.Exit(1)


@connections_app.command("import-csv")
def connections_import_csv(
    connection_id: str,
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    data_dir: DataDir = None,
) -> None:
    """Import a vendor's export (e.g. HoneyBook's payments CSV) as triggers; importing the same
    file again makes no new trigger."""
    from journeyhub.services.triggers import emit_triggers, read_csv_export

    settings = settings_or_exit(data_dir=data_dir)
    text = file.read_text(encoding="utf-8-sig")

    async def run(hub: Any) -> tuple[int, int]:
        connection, drafts = await read_csv_export(hub, connection_id, text)
        with console.status(f"importing {len(drafts)} rows…"):
            new = await emit_triggers(hub, connection, drafts, f"import:{file.name}")
        return len(drafts), new

    try:
        rows, new = run_async(lambda: with_hub(settings, run))
    except (LookupError, ValueError) as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    except Exception as exc:
        if type(exc).__name__ == "ConnectorNotFound":
            err.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from None
        raise
    console.print(f"{rows} row(s) read, {new} new trigger(s), {rows - new} already imported")


def _dump(value: Any) -> str:
    return msgspec.json.encode(value).decode()
