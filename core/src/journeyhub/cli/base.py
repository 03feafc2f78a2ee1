"""What every ``journeyhub`` command module shares: the Typer app, the consoles, the common
options, the exit codes, printing for scripts (``--json``, whole lines), and running a
command's coroutine with a store or a whole hub.

Output contract: stdout carries only a command's result (an id, a key, a table, or with
``--json`` one JSON document); messages, warnings and progress go to stderr. Exit codes are
:class:`ExitCode`, chosen here from the error a command raised (:func:`run_async`) or named
by the command (:func:`fail`)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from enum import IntEnum
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import msgspec
import typer
from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table

from journeyhub.logs import configure_logging
from journeyhub.services.errors import InvalidInput, Refused
from journeyhub.settings import Settings, SettingsError, load_settings

T = TypeVar("T")


class ExitCode(IntEnum):
    """How a command ended, for scripts (documented in docs/cli.md)."""

    OK = 0
    FAILED = 1  # tried and failed: a vendor said no, a step broke, an unexpected error
    USAGE = 2  # bad arguments, bad input or bad configuration: nothing was done
    NOT_FOUND = 3  # no such tenant, key, connection, dead letter or vendor plugin
    REFUSED = 4  # understood, but not allowed in the current state (e.g. a sync of a
    # connection that cannot be pulled)
    INTERRUPTED = 130  # Ctrl-C


def _version_callback(value: bool) -> None:
    if value:
        print(package_version())
        raise typer.Exit()


app = typer.Typer(
    help="journeyhub: keeps wedding vendors' tools in step with client journeys.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def _main(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_version_callback,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """journeyhub: keeps wedding vendors' tools in step with client journeys."""


console = Console()
err = Console(stderr=True)

DataDir = Annotated[Path | None, typer.Option(help="Data directory [env JOURNEYHUB_DATA_DIR]")]
Host = Annotated[str | None, typer.Option(help="Listen address [env JOURNEYHUB_HOST]")]
Port = Annotated[int | None, typer.Option(help="Listen port [env JOURNEYHUB_PORT]")]
Json = Annotated[
    bool, typer.Option("--json", help="Print one JSON document on stdout, for scripts.")
]


def package_version() -> str:
    """The installed ``journeyhub`` distribution's version."""
    try:
        return version("journeyhub")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def print_json(value: Any) -> None:
    """``value`` as one JSON document on stdout (structs, dataclasses and datetimes in RFC
    3339 as msgspec encodes them), and nothing else."""
    sys.stdout.write(msgspec.json.format(msgspec.json.encode(value), indent=2).decode() + "\n")
    sys.stdout.flush()


def print_whole(text: str, *, stderr: bool = False) -> None:
    """One line as it is: a key or a URL is never wrapped, folded or cropped to the
    terminal's width (a key split over two lines is pasted half)."""
    print(text, file=sys.stderr if stderr else sys.stdout, flush=True)


def print_table(table: Table) -> None:
    """A table on stdout, never narrower than its content: no cell is wrapped or cut short,
    so an id or a URL in it is whole (a terminal narrower than the table wraps its lines,
    and keeps each one whole when copied)."""
    needed = Measurement.get(console, console.options.update_width(10_000), table).maximum
    if needed <= console.width:
        console.print(table)
        return
    width = console.width
    console.width = needed
    try:
        console.print(table)
    finally:
        console.width = width


def fail(message: str, code: ExitCode = ExitCode.FAILED) -> NoReturn:
    """Print ``message`` on stderr and end the command with ``code``."""
    err.print(f"[red]{escape(message)}[/red]", highlight=False)
    raise typer.Exit(code)


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
        fail(f"configuration error: {exc}", ExitCode.USAGE)
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
    """Run a command's coroutine; ``process``: a long-lived gateway or worker (uvloop). The
    services' errors end the command with their exit code: bad input and configuration
    :attr:`~ExitCode.USAGE`, what is not there :attr:`~ExitCode.NOT_FOUND` (``LookupError``),
    :class:`Refused` :attr:`~ExitCode.REFUSED`."""
    from journeyhub.serve import run_process

    try:
        return (run_process if process else asyncio.run)(make())  # type: ignore[arg-type]
    except SettingsError as exc:
        fail(f"configuration error: {exc}", ExitCode.USAGE)
    except InvalidInput as exc:
        fail(exc.message, ExitCode.USAGE)
    except (KeyError, IndexError):
        raise  # a bug, not an answer
    except LookupError as exc:
        fail(str(exc), ExitCode.NOT_FOUND)
    except Refused as exc:
        fail(str(exc), ExitCode.REFUSED)
