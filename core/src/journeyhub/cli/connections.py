"""``journeyhub connections``: add, list, test, import-csv."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import msgspec
import typer
from litestar.exceptions import HTTPException
from rich.table import Table

from journeyhub.cli import (
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
    from journeyhub.gateway.connections_api import validate_connection
    from journeyhub.plugins import get_plugin_manager

    settings = settings_or_exit(data_dir=data_dir)
    registry = get_plugin_manager(only=settings.plugins)
    if direction not in ("inbound", "outbound", "bidirectional"):
        err.print("[red]--direction must be inbound, outbound or bidirectional[/red]")
        raise typer.Exit(2)
    types = [t.strip() for t in (event_types or "").split(",") if t.strip()]
    secret = _json_option(credentials, "credentials")
    try:
        checked = validate_connection(
            registry,
            vendor=vendor,
            direction=direction,
            config=_json_option(config, "config"),
            credentials=secret,
            event_types=types,
            field_mappings=[],
        )
    except HTTPException as exc:
        err.print(f"[red]{exc.detail}[/red]")
        raise typer.Exit(2) from None

    async def create(store: Any) -> Any:
        if not await store.tenants.exists(tenant):
            raise LookupError(f"no tenant {tenant!r}")
        return await store.connections.create(
            tenant_id=tenant,
            vendor=vendor,
            name=name,
            direction=direction,
            enabled=True,
            config=checked,
            credentials=secret,
            event_types=types,
            field_mappings=[],
            actor=cli_actor(),
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
    settings = settings_or_exit(data_dir=data_dir)
    rows = run_async(lambda: with_store(settings, lambda s: s.connections.list(tenant)))
    table = Table("id", "tenant", "vendor", "name", "direction", "enabled", "status")
    for c in rows:
        table.add_row(
            c.id, c.tenant_id, c.vendor, c.name, c.direction, "yes" if c.enabled else "no", c.status
        )
    console.print(table)


@connections_app.command("test")
def connections_test(connection_id: str, data_dir: DataDir = None) -> None:
    """Make one cheap call to the vendor with the stored credentials and show its answer."""
    from journeyhub.errors import ConnectorError, ConnectorNotFound
    from journeyhub.plugins import get_plugin_manager
    from journeyhub.vendor_http import VendorHttp

    settings = settings_or_exit(data_dir=data_dir)
    registry = get_plugin_manager(only=settings.plugins)

    async def check(store: Any) -> tuple[bool, str]:
        found = await store.connections.get_with_credentials(connection_id)
        if found is None:
            return False, f"no connection {connection_id!r}"
        connection, credentials = found
        async with VendorHttp(timeout=15) as http:
            try:
                answer = await registry.call(
                    connection.vendor,
                    "journeyhub_check_connection",
                    connection=connection,
                    credentials=credentials,
                    http=http,
                )
            except (ConnectorError, ConnectorNotFound) as exc:
                return False, str(exc)
        return True, str(answer)

    ok, answer = run_async(lambda: with_store(settings, check))
    (console if ok else err).print(("[green]ok[/green] " if ok else "[red]failed[/red] ") + answer)
    if not ok:
        raise typer.Exit(1)


@connections_app.command("sync")
def connections_sync(connection_id: str, data_dir: DataDir = None) -> None:
    """Pull changes from the vendor now and show the result."""
    from journeyhub.workers.sync import SyncWorker, can_pull

    settings = settings_or_exit(data_dir=data_dir)

    async def run(hub: Any) -> str:
        connection = await hub.store.connections.get(connection_id)
        if connection is None:
            raise LookupError(f"no connection {connection_id!r}")
        if not can_pull(hub, connection):
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
    from journeyhub.workers.inbound import emit_triggers

    settings = settings_or_exit(data_dir=data_dir)
    text = file.read_text(encoding="utf-8-sig")

    async def run(hub: Any) -> tuple[int, int]:
        found = await hub.store.connections.get_with_credentials(connection_id)
        if found is None:
            raise LookupError(f"no connection {connection_id!r}")
        connection, credentials = found
        drafts = await hub.registry.call(
            connection.vendor,
            "journeyhub_import_csv",
            connection=connection,
            credentials=credentials,
            text=text,
        )
        new = 0
        with console.status(f"importing {len(drafts)} rows…"):
            new = await emit_triggers(hub, connection, list(drafts), f"import:{file.name}")
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
