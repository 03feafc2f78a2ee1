"""The Store: one engine and session factory, with a repository per concern."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, Table, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from journeyhub.secretbox import SecretBox
from journeyhub.settings import Settings
from journeyhub.store.activity import ActivityRepo
from journeyhub.store.audit import AuditRepo
from journeyhub.store.clients import ClientRepo
from journeyhub.store.connections import ConnectionRepo
from journeyhub.store.db import create_engine, create_sync_engine, session_factory
from journeyhub.store.deliveries import DeliveryRepo
from journeyhub.store.incidents import IncidentRepo
from journeyhub.store.journey_events import JourneyEventRepo
from journeyhub.store.leases import LeaseRepo
from journeyhub.store.sync_state import SyncStateRepo
from journeyhub.store.tasks import TaskRepo
from journeyhub.store.tenants import TenantRepo
from journeyhub.store.triggers import TriggerRepo

T = TypeVar("T")
# How long a transaction run on the event loop waits for SQLite's write lock before it goes to
# the store's thread to wait there.
QUICK_BUSY_MS = 20


class Store:
    def __init__(self, settings: Settings, secret_box: SecretBox) -> None:
        self.settings = settings
        self.secret_box = secret_box
        self.engine = create_engine(settings)
        self._quick = create_sync_engine(settings, busy_timeout_ms=QUICK_BUSY_MS)
        self._patient = create_sync_engine(settings, busy_timeout_ms=30_000)
        # One thread: SQLite has one writer at a time, and every ``run`` writes.
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="journeyhub-store")
        self._sessions = session_factory(self.engine)
        self.tenants = TenantRepo(self)
        self.connections = ConnectionRepo(self)
        self.deliveries = DeliveryRepo(self)
        self.triggers = TriggerRepo(self)
        self.sync = SyncStateRepo(self)
        self.audit = AuditRepo(self)
        self.leases = LeaseRepo(self)
        self.tasks = TaskRepo(self)
        self.journey_events = JourneyEventRepo(self)
        self.clients = ClientRepo(self)
        self.incidents = IncidentRepo(self)
        self.activity = ActivityRepo(self)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session in one transaction: committed on success, rolled back on error."""
        async with self._sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """One transaction on a Core connection (no ORM unit of work to pay for)."""
        async with self.engine.begin() as connection:
            yield connection

    async def run(self, work: Callable[[Connection], T]) -> T:
        """``work(connection)`` in one transaction, its statements run synchronously: the
        batched transactions of the hot paths (routing, the task gate, recording outcomes).

        On PostgreSQL it runs on the async connection. On SQLite, through aiosqlite, every
        statement (and the begin and the commit) would be a round trip to its thread and back,
        which cost about three times the statements themselves (``bench/e2e``'s profile). So
        the transaction runs right here, on a synchronous connection: it takes SQLite's write
        lock at once, and its statements take microseconds. Only when another writer holds the
        lock (an API write, a CLI command) does it go to the store's thread, to wait there
        rather than hold up the event loop: here it waits ``QUICK_BUSY_MS`` at most."""
        if self._quick is None or self._patient is None:
            async with self.engine.begin() as connection:
                return await connection.run_sync(work)
        try:
            return self._run_on(self._quick, work)
        except (OperationalError, sqlite3.OperationalError) as exc:  # (the BEGIN's is raw)
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._run_on, self._patient, work)

    @staticmethod
    def _run_on(engine: Engine, work: Callable[[Connection], T]) -> T:
        with engine.begin() as connection:
            return work(connection)

    def insert(self, table: Table) -> Any:
        """An INSERT with ``on_conflict_do_nothing`` / ``on_conflict_do_update``, in this
        database's dialect (PostgreSQL and SQLite spell them alike)."""
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        return dialect.insert(table)

    async def ping(self) -> None:
        async with self._sessions() as session:
            await session.execute(text("SELECT 1"))

    async def close(self) -> None:
        await self.engine.dispose()
        if self._quick is not None and self._patient is not None:
            self._quick.dispose()
            await asyncio.get_running_loop().run_in_executor(self._thread, self._patient.dispose)
        self._thread.shutdown(wait=False)
