"""``journeyhub tenants`` and ``journeyhub keys``."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from journeyhub.cli.base import (
    DataDir,
    ExitCode,
    Json,
    app,
    cli_actor,
    err,
    fail,
    print_json,
    print_table,
    print_whole,
    run_async,
    settings_or_exit,
    with_store,
)

if TYPE_CHECKING:
    from journeyhub.store.store import Store

tenants_app = typer.Typer(help="Tenants.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys and secret keys.", no_args_is_help=True)
app.add_typer(tenants_app, name="tenants")
app.add_typer(keys_app, name="keys")


def _when(moment: object) -> str:
    return "-" if moment is None else f"{moment:%Y-%m-%d %H:%M:%S}"


@tenants_app.command("add")
def tenants_add(name: str, data_dir: DataDir = None) -> None:
    """Create a tenant and print its id."""
    from journeyhub.services import tenants

    settings = settings_or_exit(data_dir=data_dir)
    tenant_id = run_async(lambda: with_store(settings, lambda s: tenants.add_tenant(s, name)))
    print_whole(tenant_id)


@tenants_app.command("list")
def tenants_list(as_json: Json = False, data_dir: DataDir = None) -> None:
    """Tenants, oldest first: id, name, created."""
    from journeyhub.services import tenants

    settings = settings_or_exit(data_dir=data_dir)
    rows = run_async(lambda: with_store(settings, tenants.list_tenants))
    if as_json:
        print_json(rows)
        return
    table = Table("id", "name", "created", title="tenants")
    for t in rows:
        table.add_row(t.id, t.name, _when(t.created_at))
    print_table(table)


RoleOption = Annotated[
    list[str] | None,
    typer.Option(
        "--role",
        help="admin (administers, and reads), ingest (sends events, nothing else) or read; "
        "repeat it for several",
    ),
]


def _roles_or_exit(role: list[str] | None, default: list[str] | None) -> tuple[str, ...]:
    from journeyhub.services import keys

    try:
        return keys.parse_roles(role or default or [])
    except ValueError as exc:
        fail(f"--role: {exc}", ExitCode.USAGE)


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option(help="Tenant id")],
    role: RoleOption = None,
    label: Annotated[str | None, typer.Option(help="What the key is for")] = None,
    data_dir: DataDir = None,
) -> None:
    """Create an API key with one or several roles (admin when none is named) and print it
    once: it is not stored, only its hash."""
    from journeyhub.services import keys

    settings = settings_or_exit(data_dir=data_dir)
    roles = _roles_or_exit(role, ["admin"])
    key = run_async(
        lambda: with_store(
            settings, lambda s: keys.create_key(s, tenant, roles, label, actor=cli_actor())
        )
    )
    print_whole(key)
    if sys.stdout.isatty():
        err.print("[yellow]store this key now: it cannot be shown again[/yellow]")


@keys_app.command("list")
def keys_list(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's")] = None,
    revoked: Annotated[bool, typer.Option("--revoked", help="Revoked keys too")] = False,
    as_json: Json = False,
    data_dir: DataDir = None,
) -> None:
    """API keys, oldest first: id, tenant, roles, label, created, revoked. Never a secret."""
    from journeyhub.services import keys, tenants

    settings = settings_or_exit(data_dir=data_dir)

    async def listed(store: Store) -> list[keys.KeyInfo]:
        if tenant is not None and not await tenants.tenant_exists(store, tenant):
            raise LookupError(f"no tenant {tenant!r}")
        return await keys.list_keys(store, tenant, revoked=revoked)

    rows = run_async(lambda: with_store(settings, listed))
    if as_json:
        print_json(rows)
        return
    table = Table(
        "id",
        "tenant",
        "roles",
        "label",
        "created",
        "revoked",
        title="API keys",
    )
    for k in rows:
        table.add_row(
            k.id,
            k.tenant_id,
            ",".join(k.roles),
            k.label or "-",
            _when(k.created_at),
            _when(k.revoked_at),
        )
    print_table(table)


@keys_app.command("roles")
def keys_roles(
    key_id: str,
    role: RoleOption = None,
    data_dir: DataDir = None,
) -> None:
    """Give an API key exactly the roles named (at least one ``--role``), e.g. to narrow a key
    that only sends events to ``--role ingest``. The key itself stays the same."""
    from journeyhub.services import keys

    settings = settings_or_exit(data_dir=data_dir)
    roles = _roles_or_exit(role, None)
    actor = cli_actor()
    done = run_async(
        lambda: with_store(settings, lambda s: keys.set_roles(s, key_id, roles, actor))
    )
    if not done:
        fail(f"no active key {key_id!r}", ExitCode.NOT_FOUND)
    err.print(f"{key_id}: {', '.join(roles)}")


@keys_app.command("revoke")
def keys_revoke(key_id: str, data_dir: DataDir = None) -> None:
    """Revoke an API key by its id (the part after ``jh_``)."""
    from journeyhub.services import keys

    settings = settings_or_exit(data_dir=data_dir)
    actor = cli_actor()
    if not run_async(lambda: with_store(settings, lambda s: keys.revoke_key(s, key_id, actor))):
        fail(f"no active key {key_id!r}", ExitCode.NOT_FOUND)
    err.print(f"revoked {key_id}")


@keys_app.command("generate")
def keys_generate() -> None:
    """Print a new secret key for JOURNEYHUB_SECRET_KEYS."""
    from journeyhub.secretbox import generate_key

    print_whole(generate_key())


@keys_app.command("rotate-secrets")
def keys_rotate_secrets(data_dir: DataDir = None) -> None:
    """Re-encrypt every stored credential with the first key of JOURNEYHUB_SECRET_KEYS."""
    from journeyhub.services import keys

    settings = settings_or_exit(data_dir=data_dir)
    count = run_async(lambda: with_store(settings, keys.rotate_secrets))
    err.print(f"re-encrypted the credentials of {count} connection(s)")
