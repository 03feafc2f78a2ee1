"""Tenants: one wedding business each, owning its connections, keys and traffic.

``journeyhub tenants add|list`` and the dashboard go through here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from journeyhub.store.store import Store


@dataclass(frozen=True)
class TenantInfo:
    id: str
    name: str
    created_at: datetime


async def list_tenants(store: Store) -> list[TenantInfo]:
    """Every tenant, oldest first."""
    return [TenantInfo(t.id, t.name, t.created_at) for t in await store.tenants.list_tenants()]


async def add_tenant(store: Store, name: str) -> str:
    """Create a tenant; its id."""
    return await store.tenants.add(name)


async def tenant_exists(store: Store, tenant_id: str) -> bool:
    return await store.tenants.exists(tenant_id)


async def tenant_name(store: Store, tenant_id: str) -> str:
    """The tenant's name; its id when it has none (deleted meanwhile)."""
    tenant = await store.tenants.get(tenant_id)
    return tenant.name if tenant is not None else tenant_id
