"""Tenants and their API keys. A key is shown once; only its SHA-256 is stored.

Keys look like ``jh_<key id>_<secret>``: the id finds the row, the secret is compared in
constant time. The secret has 256 bits of entropy, so a fast hash is enough."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import select

from journeyhub.model import utcnow
from journeyhub.store.ids import new_id
from journeyhub.store.tables import ApiKey, Tenant

if TYPE_CHECKING:
    from journeyhub.store.store import Store

ROLES = ("admin", "ingest", "read")

# What each role lets a key do; a key with several roles may do what any of them allows.
# ``admin`` includes ``read``: an administrator must see what it changes. Nothing includes
# ``ingest``: the key that sends journey events lives in the journey engine, and sending events
# is all it may do (the engine's own records are the clients' personal data).
GRANTS: dict[str, frozenset[str]] = {
    "admin": frozenset({"admin", "read"}),
    "ingest": frozenset({"ingest"}),
    "read": frozenset({"read"}),
}


def parse_roles(roles: str | Iterable[str]) -> tuple[str, ...]:
    """``roles`` (one name, or several) in :data:`ROLES` order, once each. Raises
    ``ValueError`` for an unknown role or none."""
    named = {roles} if isinstance(roles, str) else set(roles)
    if unknown := sorted(named - set(ROLES)):
        raise ValueError(f"role must be one of {', '.join(ROLES)}, not {unknown[0]!r}")
    if not named:
        raise ValueError(f"a key needs at least one role: {', '.join(ROLES)}")
    return tuple(role for role in ROLES if role in named)


@dataclass(frozen=True)
class Principal:
    tenant_id: str
    roles: tuple[str, ...]
    key_id: str

    @property
    def actor(self) -> str:
        return f"key:{self.key_id}"

    def may(self, role: str) -> bool:
        """Whether one of the key's roles grants ``role`` (:data:`GRANTS`)."""
        return any(role in GRANTS[held] for held in self.roles)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class TenantRepo:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def add(self, name: str) -> str:
        tenant_id = new_id("ten")
        async with self.store.session() as s:
            s.add(Tenant(id=tenant_id, name=name, created_at=utcnow()))
        return tenant_id

    async def get(self, tenant_id: str) -> Tenant | None:
        async with self.store.session() as s:
            return await s.get(Tenant, tenant_id)

    async def list_tenants(self) -> list[Tenant]:
        """Every tenant, oldest first."""
        async with self.store.session() as s:
            rows = await s.execute(select(Tenant).order_by(Tenant.created_at, Tenant.id))
            return list(rows.scalars())

    async def list_keys(self, tenant_id: str | None, *, revoked: bool = False) -> list[ApiKey]:
        """The tenant's keys (every tenant's with None), oldest first; revoked ones too when
        ``revoked``. Rows hold only the secret's hash."""
        query = select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)
        if tenant_id is not None:
            query = query.where(ApiKey.tenant_id == tenant_id)
        if not revoked:
            query = query.where(ApiKey.revoked_at.is_(None))
        async with self.store.session() as s:
            return list((await s.execute(query)).scalars())

    async def exists(self, tenant_id: str) -> bool:
        async with self.store.session() as s:
            return await s.get(Tenant, tenant_id) is not None

    async def create_key(
        self,
        tenant_id: str,
        roles: str | Iterable[str],
        label: str | None = None,
        *,
        actor: str = "cli",
    ) -> str:
        """Create a key with ``roles`` (one or several) and return it (shown once); ``actor``
        is who asked, for the audit log."""
        granted = parse_roles(roles)
        if not await self.exists(tenant_id):
            raise LookupError(f"no tenant {tenant_id!r}")
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        async with self.store.session() as s:
            s.add(
                ApiKey(
                    id=key_id,
                    tenant_id=tenant_id,
                    roles=list(granted),
                    secret_hash=_hash(secret),
                    label=label,
                    created_at=utcnow(),
                )
            )
        await self.store.audit.record(
            tenant_id=tenant_id,
            actor=actor,
            action="key.created",
            after={"key_id": key_id, "roles": list(granted), "label": label},
        )
        return f"jh_{key_id}_{secret}"

    async def revoke_key(self, key_id: str, actor: str) -> bool:
        async with self.store.session() as s:
            row = await s.get(ApiKey, key_id)
            if row is None or row.revoked_at is not None:
                return False
            row.revoked_at = utcnow()
            tenant_id = row.tenant_id
            before = {"key_id": key_id, "roles": list(row.roles), "label": row.label}
        await self.store.audit.record(
            tenant_id=tenant_id, actor=actor, action="key.revoked", before=before
        )
        return True

    async def set_roles(self, key_id: str, roles: str | Iterable[str], actor: str) -> bool:
        """Give an active key exactly ``roles`` (audited); False when no active key has the
        id. The key itself is unchanged: its holder keeps using it."""
        granted = parse_roles(roles)
        async with self.store.session() as s:
            row = await s.get(ApiKey, key_id)
            if row is None or row.revoked_at is not None:
                return False
            before = {"key_id": key_id, "roles": list(row.roles), "label": row.label}
            row.roles = list(granted)
            tenant_id = row.tenant_id
        await self.store.audit.record(
            tenant_id=tenant_id,
            actor=actor,
            action="key.roles_changed",
            before=before,
            after={**before, "roles": list(granted)},
        )
        return True

    async def authenticate(self, presented: str) -> Principal | None:
        try:
            prefix, key_id, secret = presented.split("_", 2)
        except ValueError:
            return None
        if prefix != "jh" or not secret:
            return None
        async with self.store.session() as s:
            row = (await s.execute(select(ApiKey).where(ApiKey.id == key_id))).scalar_one_or_none()
        if row is None or row.revoked_at is not None:
            return None
        if not hmac.compare_digest(row.secret_hash, _hash(secret)):
            return None
        roles = tuple(role for role in ROLES if role in row.roles)  # unknown ones grant nothing
        return Principal(tenant_id=row.tenant_id, roles=roles, key_id=row.id)
