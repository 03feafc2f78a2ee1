"""``journeyhub connections``: add, list, show, test, sync, import-csv."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
import typer
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
    print_whole,
    run_async,
    settings_or_exit,
    with_hub,
    with_store,
)
from journeyhub.services.errors import Refused

if TYPE_CHECKING:
    from journeyhub.model import Connection
    from journeyhub.plugins import PluginRegistry
    from journeyhub.settings import Settings

connections_app = typer.Typer(help="Connections to vendor accounts.", no_args_is_help=True)
app.add_typer(connections_app, name="connections")


def _json_option(raw: str | None, name: str) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        text = Path(raw[1:]).read_text() if raw.startswith("@") else raw
        value = json.loads(text)
    except (OSError, json.JSONDecodeError) as exc:
        fail(f"--{name} must be JSON or @file.json: {exc}", ExitCode.USAGE)
    if not isinstance(value, dict):
        fail(f"--{name} must be a JSON object", ExitCode.USAGE)
    return value


def webhook_url(settings: Settings, registry: PluginRegistry, connection: Connection) -> str | None:
    """Where the vendor sends this connection's webhooks; None when its plugin takes none."""
    loaded = registry.connectors.get(connection.vendor)
    if loaded is None or "webhook" not in loaded.info.capabilities:
        return None
    return f"{settings.effective_public_url}/webhooks/{connection.vendor}/{connection.id}"


def connection_view(connection: Connection, url: str | None) -> dict[str, Any]:
    """A connection as ``GET /v1/connections/{id}`` answers it (credentials never)."""
    return {
        "id": connection.id,
        "tenant_id": connection.tenant_id,
        "vendor": connection.vendor,
        "name": connection.name,
        "direction": connection.direction,
        "enabled": connection.enabled,
        "status": connection.status,
        "config": {**connection.config, **connection.options},
        "event_types": connection.event_types,
        "field_mappings": msgspec.to_builtins(connection.field_mappings),
        "webhook_url": url,
        "created_at": connection.created_at,
        "updated_at": connection.updated_at,
    }


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
        fail("--direction must be inbound, outbound or bidirectional", ExitCode.USAGE)
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
        fail(exc.message, ExitCode.USAGE)

    async def create(store: Any) -> Any:
        return await create_connection(
            store, registry, tenant_id=tenant, name=name, enabled=True, actor=cli_actor(), **values
        )

    created = run_async(lambda: with_store(settings, create))
    print_whole(created.id)
    url = webhook_url(settings, registry, created)
    if url is not None:
        print_whole(f"webhook URL: {url}", stderr=True)


@connections_app.command("list")
def connections_list(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's")] = None,
    as_json: Json = False,
    data_dir: DataDir = None,
) -> None:
    """Connections with their vendor, direction and status."""
    from journeyhub.plugins import get_plugin_manager
    from journeyhub.services.connections import list_connections

    settings = settings_or_exit(data_dir=data_dir)
    rows = run_async(lambda: with_store(settings, lambda s: list_connections(s, tenant)))
    if as_json:
        registry = get_plugin_manager(only=settings.plugins)
        print_json([connection_view(c, webhook_url(settings, registry, c)) for c in rows])
        return
    table = Table("id", "tenant", "vendor", "name", "direction", "enabled", "status")
    for c in rows:
        table.add_row(
            c.id, c.tenant_id, c.vendor, c.name, c.direction, "yes" if c.enabled else "no", c.status
        )
    print_table(table)


@connections_app.command("show")
def connections_show(connection_id: str, as_json: Json = False, data_dir: DataDir = None) -> None:
    """One connection: its settings, status and webhook URL (never its credentials)."""
    from journeyhub.plugins import get_plugin_manager
    from journeyhub.services.connections import get_connection

    settings = settings_or_exit(data_dir=data_dir)
    found = run_async(lambda: with_store(settings, lambda s: get_connection(s, connection_id)))
    if found is None:
        fail(f"no connection {connection_id!r}", ExitCode.NOT_FOUND)
    registry = get_plugin_manager(only=settings.plugins)
    view = connection_view(found, webhook_url(settings, registry, found))
    if as_json:
        print_json(view)
        return
    for key, value in view.items():
        shown = value if isinstance(value, str) else _dump(value)
        # whole lines: the webhook URL is pasted into the vendor's settings
        print_whole(f"{key}: {shown}")


@connections_app.command("test")
def connections_test(connection_id: str, data_dir: DataDir = None) -> None:
    """Make one cheap call to the vendor with the stored credentials and show its answer."""
    from journeyhub.plugins import get_plugin_manager
    from journeyhub.services.connections import check_connection
    from journeyhub.vendor_http import VendorHttp

    settings = settings_or_exit(data_dir=data_dir)
    registry = get_plugin_manager(only=settings.plugins)

    async def check(store: Any) -> tuple[bool, bool, str]:
        async with VendorHttp(timeout=15) as http:
            checked = await check_connection(store, registry, http, connection_id)
        if checked is None:
            return False, False, f"no connection {connection_id!r}"
        return True, checked.ok, checked.answer

    found, ok, answer = run_async(lambda: with_store(settings, check))
    if not found:
        fail(answer, ExitCode.NOT_FOUND)
    (console if ok else err).print(("[green]ok[/green] " if ok else "[red]failed[/red] ") + answer)
    if not ok:
        raise typer.Exit(ExitCode.FAILED)


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
            raise Refused(f"{connection.vendor} connection {connection_id} cannot be pulled")
        with err.status("pulling…"):
            return await SyncWorker(hub).sync(connection)

    result = run_async(lambda: with_hub(settings, run))
    (console if result.startswith("ok") else err).print(result)
    if not result.startswith("ok"):
        raise typer.Exit(ExitCode.FAILED)


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
        with err.status(f"importing {len(drafts)} rows…"):
            new = await emit_triggers(hub, connection, drafts, f"import:{file.name}")
        return len(drafts), new

    try:
        rows, new = run_async(lambda: with_hub(settings, run))
    except ValueError as exc:  # a file the connector cannot read
        fail(str(exc), ExitCode.USAGE)
    console.print(f"{rows} row(s) read, {new} new trigger(s), {rows - new} already imported")


def _dump(value: Any) -> str:
    return msgspec.json.encode(value).decode()
