"""Keys: a tenant's API keys (``jh_<key id>_<secret>``, shown once, only a hash stored), and the
secret keys that encrypt credentials at rest.

The API's Bearer middleware and the dashboard's sign-in authenticate here; ``journeyhub keys
create|list|roles|revoke|rotate-secrets`` create, list, change the roles of, revoke and rotate.
A key carries one or several roles (:data:`ROLES`; what each grants: ``store/tenants.GRANTS``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from journeyhub.store.store import Store
from journeyhub.store.tenants import ROLES, Principal, parse_roles

__all__ = [
    "ROLES",
    "KeyInfo",
    "authenticate",
    "create_key",
    "list_keys",
    "parse_roles",
    "revoke_key",
    "rotate_secrets",
    "set_roles",
]


@dataclass(frozen=True)
class KeyInfo:
    """What may be shown of a key: never its secret, nor the secret's hash. (When a key was
    last used is not recorded.)"""

    id: str
    tenant_id: str
    roles: list[str]
    label: str | None
    created_at: datetime
    revoked_at: datetime | None


async def authenticate(store: Store, presented: str) -> Principal | None:
    """Who a presented key is (tenant, roles, key id); None for an unknown or revoked key."""
    return await store.tenants.authenticate(presented)


async def create_key(
    store: Store, tenant_id: str, roles: str | Iterable[str], label: str | None, actor: str
) -> str:
    """A new key for the tenant with ``roles`` (one or several), returned once (audited).
    Raises ``ValueError`` for a role not in :data:`ROLES` or none, ``LookupError`` when there
    is no such tenant."""
    return await store.tenants.create_key(tenant_id, roles, label, actor=actor)


async def list_keys(
    store: Store, tenant_id: str | None = None, *, revoked: bool = False
) -> list[KeyInfo]:
    """The tenant's keys (every tenant's with None), oldest first; revoked ones too when
    ``revoked``."""
    rows = await store.tenants.list_keys(tenant_id, revoked=revoked)
    return [
        KeyInfo(r.id, r.tenant_id, list(r.roles), r.label, r.created_at, r.revoked_at) for r in rows
    ]


async def set_roles(store: Store, key_id: str, roles: Iterable[str], actor: str) -> bool:
    """Give an active key exactly ``roles`` (audited: ``key.roles_changed``), to narrow a key
    without handing out a new one; False when no active key has the id. Raises ``ValueError``
    for a role not in :data:`ROLES` or none. Takes effect within the gateway's key cache
    lifetime (seconds)."""
    return await store.tenants.set_roles(key_id, roles, actor)


async def revoke_key(store: Store, key_id: str, actor: str) -> bool:
    """Revoke a key by its id (audited); False when no active key has it."""
    return await store.tenants.revoke_key(key_id, actor)


async def rotate_secrets(store: Store) -> int:
    """Re-encrypt every stored credential with the first of ``JOURNEYHUB_SECRET_KEYS``; how
    many connections had credentials."""
    return await store.connections.rotate_credentials()
