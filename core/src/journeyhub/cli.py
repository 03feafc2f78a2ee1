"""The ``journeyhub`` command line."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from journeyhub.logs import configure_logging
from journeyhub.settings import Settings, SettingsError, load_settings

T = TypeVar("T")
app = typer.Typer(help="journeyhub: keeps wedding vendors' tools in step with client journeys.",
                  no_args_is_help=True, pretty_exceptions_enable=False)  # fmt: skip
plugins_app = typer.Typer(help="Connector plugins.", no_args_is_help=True)
tenants_app = typer.Typer(help="Tenants.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys and secret keys.", no_args_is_help=True)
app.add_typer(plugins_app, name="plugins")
app.add_typer(tenants_app, name="tenants")
app.add_typer(keys_app, name="keys")

console = Console()
err = Console(stderr=True)

DataDir = Annotated[Path | None, typer.Option(help="Data directory [env JOURNEYHUB_DATA_DIR]")]
Host = Annotated[str | None, typer.Option(help="Listen address [env JOURNEYHUB_HOST]")]
Port = Annotated[int | None, typer.Option(help="Listen port [env JOURNEYHUB_PORT]")]


def settings_or_exit(**overrides: Any) -> Settings:
    try:
        settings = load_settings(**overrides)
    except SettingsError as exc:
        err.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from None
    configure_logging(settings.log_format, settings.log_level)
    return settings


def run_async(make: Callable[[], Awaitable[T]]) -> T:
    try:
        return asyncio.run(make())  # type: ignore[arg-type]
    except SettingsError as exc:
        err.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from None


# --- processes -----------------------------------------------------------------------------------


@app.command()
def serve(data_dir: DataDir = None, host: Host = None, port: Port = None) -> None:
    """Run everything in one process: gateway, workers, and the embedded bus and store."""
    from journeyhub.serve import run

    settings = settings_or_exit(data_dir=data_dir, host=host, port=port)
    run_async(lambda: run(settings))


@app.command()
def gateway(data_dir: DataDir = None, host: Host = None, port: Port = None) -> None:
    """Run the HTTP gateway only (set JOURNEYHUB_NATS_URL to share a bus with workers)."""
    from journeyhub.serve import run

    settings = settings_or_exit(data_dir=data_dir, host=host, port=port)
    run_async(lambda: run(settings, workers=False))


@app.command()
def worker(data_dir: DataDir = None) -> None:
    """Run the workers only (set JOURNEYHUB_NATS_URL to share a bus with gateways)."""
    from journeyhub.serve import run

    settings = settings_or_exit(data_dir=data_dir)
    run_async(lambda: run(settings, gateway=False))


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


# --- tenants and keys ----------------------------------------------------------------------------


async def _with_store(settings: Settings, action: Callable[[Any], Awaitable[T]]) -> T:
    from journeyhub.secretbox import load_secret_box
    from journeyhub.store.db import migrate as apply
    from journeyhub.store.store import Store

    await asyncio.to_thread(apply, settings)
    store = Store(settings, load_secret_box(settings))
    try:
        return await action(store)
    finally:
        await store.close()


@tenants_app.command("add")
def tenants_add(name: str, data_dir: DataDir = None) -> None:
    """Create a tenant and print its id."""
    settings = settings_or_exit(data_dir=data_dir)
    tenant_id = run_async(lambda: _with_store(settings, lambda s: s.tenants.add(name)))
    print(tenant_id)


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option(help="Tenant id")],
    role: Annotated[str, typer.Option(help="admin, ingest or read")] = "admin",
    label: Annotated[str | None, typer.Option(help="What the key is for")] = None,
    data_dir: DataDir = None,
) -> None:
    """Create an API key and print it once: it is not stored, only its hash."""
    settings = settings_or_exit(data_dir=data_dir)
    if role not in ("admin", "ingest", "read"):
        err.print(f"[red]--role must be admin, ingest or read, not {role!r}[/red]")
        raise typer.Exit(2)
    try:
        key = run_async(
            lambda: _with_store(settings, lambda s: s.tenants.create_key(tenant, role, label))
        )
    except LookupError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    print(key)
    if sys.stdout.isatty():
        err.print("[yellow]store this key now: it cannot be shown again[/yellow]")


@keys_app.command("revoke")
def keys_revoke(key_id: str, data_dir: DataDir = None) -> None:
    """Revoke an API key by its id (the part after ``jh_``)."""
    settings = settings_or_exit(data_dir=data_dir)
    if not run_async(lambda: _with_store(settings, lambda s: s.tenants.revoke_key(key_id, "cli"))):
        err.print(f"[red]no active key {key_id!r}[/red]")
        raise typer.Exit(1)
    console.print(f"revoked {key_id}")


@keys_app.command("generate")
def keys_generate() -> None:
    """Print a new secret key for JOURNEYHUB_SECRET_KEYS."""
    from journeyhub.secretbox import generate_key

    print(generate_key())


@keys_app.command("rotate-secrets")
def keys_rotate_secrets(data_dir: DataDir = None) -> None:
    """Re-encrypt every stored credential with the first key of JOURNEYHUB_SECRET_KEYS."""
    settings = settings_or_exit(data_dir=data_dir)
    count = run_async(lambda: _with_store(settings, lambda s: s.connections.rotate_credentials()))
    console.print(f"re-encrypted the credentials of {count} connection(s)")


def main() -> None:  # pragma: no cover
    app()
