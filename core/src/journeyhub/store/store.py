"""The Store: one engine and session factory, with a repository per concern."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from journeyhub.secretbox import SecretBox
from journeyhub.settings import Settings
from journeyhub.store.db import create_engine, session_factory


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


class Store:
    def __init__(self, settings: Settings, secret_box: SecretBox) -> None:
        from journeyhub.store.audit import AuditRepo
        from journeyhub.store.connections import ConnectionRepo
        from journeyhub.store.deliveries import DeliveryRepo
        from journeyhub.store.keys import TenantRepo
        from journeyhub.store.leases import LeaseRepo
        from journeyhub.store.sync import SyncRepo
        from journeyhub.store.triggers import TriggerRepo

        self.settings = settings
        self.secret_box = secret_box
        self.engine = create_engine(settings)
        self._sessions = session_factory(self.engine)
        self.tenants = TenantRepo(self)
        self.connections = ConnectionRepo(self)
        self.deliveries = DeliveryRepo(self)
        self.triggers = TriggerRepo(self)
        self.sync = SyncRepo(self)
        self.audit = AuditRepo(self)
        self.leases = LeaseRepo(self)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session in one transaction: committed on success, rolled back on error."""
        async with self._sessions() as session, session.begin():
            yield session

    async def ping(self) -> None:
        async with self._sessions() as session:
            await session.execute(text("SELECT 1"))

    async def close(self) -> None:
        await self.engine.dispose()
