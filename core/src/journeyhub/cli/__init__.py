"""The ``journeyhub`` command line."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from journeyhub.cli.base import (
    DataDir,
    ExitCode,
    Host,
    Json,
    Port,
    Refused,
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
    err.print("[green]database is up to date[/green]")


# --- plugins --------------------------------------------------------------------------------------


@plugins_app.command("list")
def plugins_list(as_json: Json = False) -> None:
    """Connector plugins: name, version, capabilities, and load errors."""
    from journeyhub.plugins import get_plugin_manager

    settings = settings_or_exit()
    registry = get_plugin_manager(only=settings.plugins, trace=settings.trace_hooks)
    if as_json:
        print_json(_plugins_view(registry))
        return
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
    print_table(table)
    for name, version in sorted(registry.observers.items()):
        console.print(f"observer {name} {version or ''}".rstrip())
    for error in registry.errors:
        console.print(f"[red]failed to load {error.name}:[/red] {error.reason}")


def _plugins_view(registry: Any) -> dict[str, Any]:
    connectors = []
    for name, loaded in sorted(registry.connectors.items()):
        info = loaded.info
        limit = info.rate_limit
        connectors.append(
            {
                "name": name,
                "version": loaded.version,
                "capabilities": sorted(info.capabilities),
                "auth": info.auth_kind,
                "rate_limit": (
                    {"requests": limit.requests, "per_seconds": limit.per_seconds}
                    if limit
                    else None
                ),
            }
        )
    return {
        "connectors": connectors,
        "observers": [{"name": n, "version": v} for n, v in sorted(registry.observers.items())],
        "errors": [{"name": e.name, "reason": e.reason} for e in registry.errors],
    }


# The command modules add their commands to ``app`` when imported.
from journeyhub.cli import admin, clients, connections, demo, dlq, redeliver  # noqa: E402

__all__ = [
    "DataDir",
    "ExitCode",
    "Json",
    "Refused",
    "admin",
    "app",
    "cli_actor",
    "clients",
    "connections",
    "console",
    "demo",
    "dlq",
    "err",
    "fail",
    "print_json",
    "print_table",
    "print_whole",
    "redeliver",
    "run_async",
    "settings_or_exit",
    "with_hub",
    "with_store",
]
