"""``journeyhub tenants`` and ``journeyhub keys``."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from journeyhub.cli.base import (
    DataDir,
    app,
    cli_actor,
    console,
    err,
    run_async,
    settings_or_exit,
    with_store,
)

tenants_app = typer.Typer(help="Tenants.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys and secret keys.", no_args_is_help=True)
app.add_typer(tenants_app, name="tenants")
app.add_typer(keys_app, name="keys")


@tenants_app.command("add")
def tenants_add(name: str, data_dir: DataDir = None) -> None:
    """Create a tenant and print its id."""
    from journeyhub.services import tenants

    settings = settings_or_exit(data_dir=data_dir)
    tenant_id = run_async(lambda: with_store(settings, lambda s: tenants.add_tenant(s, name)))
    print(tenant_id)


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option(help="Tenant id")],
    role: Annotated[str, typer.Option(help="admin, ingest or read")] = "admin",
    label: Annotated[str | None, typer.Option(help="What the key is for")] = None,
    data_dir: DataDir = None,
) -> None:
    """Create an API key and print it once: it is not stored, only its hash."""
    from journeyhub.services import keys

    settings = settings_or_exit(data_dir=data_dir)
    if role not in keys.ROLES:
        err.print(f"[red]--role must be admin, ingest or read, not {role!r}[/red]")
        raise typer.Exit(2)
    try:
        key = run_async(
            lambda: with_store(
                settings, lambda s: keys.create_key(s, tenant, role, label, actor=cli_actor())
            )
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
    from journeyhub.services import keys

    settings = settings_or_exit(data_dir=data_dir)
    actor = cli_actor()
    if not run_async(lambda: with_store(settings, lambda s: keys.revoke_key(s, key_id, actor))):
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
    from journeyhub.services import keys

    settings = settings_or_exit(data_dir=data_dir)
    count = run_async(lambda: with_store(settings, keys.rotate_secrets))
    console.print(f"re-encrypted the credentials of {count} connection(s)")
