"""The ``journeyhub`` command line."""

from __future__ import annotations

import typer
from rich.table import Table

from journeyhub.cli.base import (
    DataDir,
    Host,
    Port,
    app,
    cli_actor,
    console,
    err,
    run_async,
    settings_or_exit,
    with_hub,
    with_store,
)

plugins_app = typer.Typer(help="Connector plugins.", no_args_is_help=True)
app.add_typer(plugins_app, name="plugins")


# --- processes -----------------------------------------------------------------------------------


@app.command()
def serve(data_dir: DataDir = None, host: Host = None, port: Port = None) -> None:
    """Run everything in one process: gateway, workers, and the embedded bus and store."""
    from journeyhub.serve import run

    settings = settings_or_exit(data_dir=data_dir, host=host, port=port)
    run_async(lambda: run(settings), process=True)


@app.command()
def gateway(data_dir: DataDir = None, host: Host = None, port: Port = None) -> None:
    """Run the HTTP gateway only (set JOURNEYHUB_NATS_URL to share a bus with workers)."""
    from journeyhub.serve import run

    settings = settings_or_exit(data_dir=data_dir, host=host, port=port)
    run_async(lambda: run(settings, workers=False), process=True)


@app.command()
def worker(data_dir: DataDir = None) -> None:
    """Run the workers only (set JOURNEYHUB_NATS_URL to share a bus with gateways)."""
    from journeyhub.serve import run

    settings = settings_or_exit(data_dir=data_dir)
    run_async(lambda: run(settings, gateway=False), process=True)


@app.command()
def migrate(data_dir: DataDir = None) -> None:
    """Apply database migrations (serve also does this at start)."""
    from journeyhub.store.db import migrate as apply

    settings = settings_or_exit(data_dir=data_dir)
    apply(settings)
    console.print("[green]database is up to date[/green]")


# --- plugins --------------------------------------------------------------------------------------


@plugins_app.command("list")
def plugins_list() -> None:
    """Connector plugins: name, version, capabilities, and load errors."""
    from journeyhub.plugins import get_plugin_manager

    settings = settings_or_exit()
    registry = get_plugin_manager(only=settings.plugins, trace=settings.trace_hooks)
    table = Table("name", "version", "capabilities", "auth", "rate limit", title="connectors")
    for name, loaded in sorted(registry.connectors.items()):
        info = loaded.info
        limit = (
            f"{info.rate_limit.requests:g}/{info.rate_limit.per_seconds:g}s"
            if info.rate_limit
            else "-"
        )
        table.add_row(
            name, loaded.version or "-", ", ".join(sorted(info.capabilities)), info.auth_kind, limit
        )
    console.print(table)
    for name, version in sorted(registry.observers.items()):
        console.print(f"observer {name} {version or ''}".rstrip())
    for error in registry.errors:
        console.print(f"[red]failed to load {error.name}:[/red] {error.reason}")


# The command modules add their commands to ``app`` when imported.
from journeyhub.cli import admin, connections, demo, dlq  # noqa: E402

__all__ = [
    "DataDir",
    "admin",
    "app",
    "cli_actor",
    "connections",
    "console",
    "demo",
    "dlq",
    "err",
    "run_async",
    "settings_or_exit",
    "with_hub",
    "with_store",
]
