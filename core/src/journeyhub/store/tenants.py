"""Tenants and their API keys. A key is shown once; only its SHA-256 is stored.

Keys look like ``jh_<key id>_<secret>``: the id finds the row, the secret is compared in
constant time. The secret has 256 bits of entropy, so a fast hash is enough."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import select

from journeyhub.model import utcnow
from journeyhub.store.ids import new_id
from journeyhub.store.tables import ApiKey, Tenant

if TYPE_CHECKING:
    from journeyhub.store.store import Store

ROLES = ("admin", "ingest", "read")


@dataclass(frozen=True)
class Principal:
    tenant_id: str
    role: str
    key_id: str

    @property
    def actor(self) -> str:
        return f"key:{self.key_id}"


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
        self, tenant_id: str, role: str, label: str | None = None, *, actor: str = "cli"
    ) -> str:
        """Create a key and return it (shown once); ``actor`` is who asked, for the audit log."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        if not await self.exists(tenant_id):
            raise LookupError(f"no tenant {tenant_id!r}")
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        async with self.store.session() as s:
            s.add(
                ApiKey(
                    id=key_id,
                    tenant_id=tenant_id,
                    role=role,
                    secret_hash=_hash(secret),
                    label=label,
                    created_at=utcnow(),
                )
            )
        await self.store.audit.record(
            tenant_id=tenant_id,
            actor=actor,
            action="key.created",
            after={"key_id": key_id, "role": role, "label": label},
        )
        return f"jh_{key_id}_{secret}"

    async def revoke_key(self, key_id: str, actor: str) -> bool:
        async with self.store.session() as s:
            row = await s.get(ApiKey, key_id)
            if row is None or row.revoked_at is not None:
                return False
            row.revoked_at = utcnow()
            tenant_id = row.tenant_id
            before = {"key_id": key_id, "role": row.role, "label": row.label}
        await self.store.audit.record(
            tenant_id=tenant_id, actor=actor, action="key.revoked", before=before
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
        return Principal(tenant_id=row.tenant_id, role=row.role, key_id=row.id)
