"""The ``journeyhub`` command line."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import msgspec
import typer
from rich.console import Console
from rich.table import Table

from journeyhub.logs import configure_logging
from journeyhub.settings import Settings, SettingsError, load_settings

T = TypeVar("T")
app = typer.Typer(
    help="journeyhub: keeps wedding vendors' tools in step with client journeys.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
plugins_app = typer.Typer(help="Connector plugins.", no_args_is_help=True)
app.add_typer(plugins_app, name="plugins")

console = Console()
err = Console(stderr=True)

DataDir = Annotated[Path | None, typer.Option(help="Data directory [env JOURNEYHUB_DATA_DIR]")]
Host = Annotated[str | None, typer.Option(help="Listen address [env JOURNEYHUB_HOST]")]
Port = Annotated[int | None, typer.Option(help="Listen port [env JOURNEYHUB_PORT]")]


def cli_actor() -> str:
    """Who ran a command, for the audit log: ``cli:<login name>``."""
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no login name (a container without a passwd entry)
        return "cli"


def settings_or_exit(**overrides: Any) -> Settings:
    try:
        settings = load_settings(**overrides)
    except SettingsError as exc:
        err.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from None
    configure_logging(settings.log_format, settings.log_level)
    return settings


async def with_store(settings: Settings, action: Callable[[Any], Awaitable[T]]) -> T:
    """Run ``action(store)`` on a migrated store (no bus needed)."""
    from journeyhub.secretbox import load_secret_box
    from journeyhub.store.db import migrate as apply
    from journeyhub.store.store import Store

    await asyncio.to_thread(apply, settings)
    store = Store(settings, load_secret_box(settings))
    try:
        return await action(store)
    finally:
        await store.close()


async def with_hub(settings: Settings, action: Callable[[Any], Awaitable[T]]) -> T:
    """Run ``action(hub)`` with store and bus. Beside a running ``serve`` on the embedded
    defaults, share its bus (it writes its address under the data dir)."""
    from journeyhub.hub import NATS_URL_FILE, Hub

    if settings.nats_url is None:
        url_file = settings.data_dir / NATS_URL_FILE
        if url_file.exists():
            settings = msgspec.structs.replace(settings, nats_url=url_file.read_text().strip())
    hub = await Hub.start(settings)
    try:
        return await action(hub)
    finally:
        await hub.close()


def run_async(make: Callable[[], Awaitable[T]], *, process: bool = False) -> T:
    """Run a command's coroutine; ``process``: a long-lived gateway or worker (uvloop)."""
    from journeyhub.serve import run_process

    try:
        return (run_process if process else asyncio.run)(make())  # type: ignore[arg-type]
    except SettingsError as exc:
        err.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from None


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
    for error in registry.errors:
        console.print(f"[red]failed to load {error.name}:[/red] {error.reason}")


from journeyhub.cli import admin, connections, demo, dlq  # noqa: E402  (they register commands)

__all__ = ["admin", "app", "connections", "demo", "dlq"]
