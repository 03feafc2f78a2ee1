"""What every ``journeyhub`` command module shares: the Typer app, the consoles, the common
options, and running a command's coroutine with a store or a whole hub."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import msgspec
import typer
from rich.console import Console

from journeyhub.logs import configure_logging
from journeyhub.settings import Settings, SettingsError, load_settings

T = TypeVar("T")
app = typer.Typer(
    help="journeyhub: keeps wedding vendors' tools in step with client journeys.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

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
