"""The store on the configured database (SQLite by default, PostgreSQL in CI)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from journeyhub.hub import Hub
from journeyhub.settings import Settings, load_settings
from journeyhub.store.db import downgrade, migrate, sync_url
from journeyhub.testing.fixtures import database_url_for_tests
from sqlalchemy import create_engine, inspect, text

TABLES = {
    "tenants",
    "api_keys",
    "connections",
    "sync_links",
    "sync_cursors",
    "deliveries",
    "dead_letters",
    "audit_log",
    "triggers",
    "suppressions",
    "leases",
    "tasks",
    "journey_events",
    "chart_samples",
    "incidents",
    "oauth_states",
    "clients",
    "client_terms",
}


@pytest.fixture
def scratch_settings(tmp_path: Path) -> Iterator[Settings]:
    """A fresh database of the same kind as the test database."""
    url = database_url_for_tests()
    if not url or not url.startswith("postgresql"):
        yield load_settings({}, data_dir=tmp_path)
        return
    name = f"jh_migrations_{uuid.uuid4().hex[:8]}"
    admin = create_engine(sync_url(Settings(database_url=url)), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    scratch = url.rsplit("/", 1)[0] + "/" + name
    yield load_settings({}, data_dir=tmp_path, database_url=scratch)
    admin = create_engine(sync_url(Settings(database_url=url)), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def tables(settings: Settings) -> set[str]:
    engine = create_engine(sync_url(settings))
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_migrations_upgrade_downgrade_and_upgrade_again(scratch_settings: Settings) -> None:
    migrate(scratch_settings)
    assert tables(scratch_settings) == TABLES
    migrate(scratch_settings)  # idempotent
    downgrade(scratch_settings, "base")
    assert tables(scratch_settings) == set()
    migrate(scratch_settings)
    assert tables(scratch_settings) == TABLES


async def test_the_test_database_is_migrated(hub: Hub) -> None:
    assert tables(hub.settings) >= TABLES
    expected = (
        "postgresql" if (database_url_for_tests() or "").startswith("postgresql") else "sqlite"
    )
    assert hub.store.engine.dialect.name == expected


async def test_connection_credentials_are_encrypted_at_rest(hub: Hub) -> None:
    tenant_id = await hub.store.tenants.add("acme photo")
    connection = await hub.store.connections.create(
        tenant_id=tenant_id,
        vendor="webhook",
        name="engine",
        direction="outbound",
        enabled=True,
        config={"url": "http://127.0.0.1:1/x"},
        credentials={"secret": "whsec_c2VjcmV0c2VjcmV0"},
        event_types=[],
        field_mappings=[],
        actor="test",
    )
    async with hub.store.session() as s:
        raw = (
            await s.execute(
                text("SELECT credentials FROM connections WHERE id = :id"), {"id": connection.id}
            )
        ).scalar_one()
    assert b"c2VjcmV0c2VjcmV0" not in bytes(raw)
    found = await hub.store.connections.get_with_credentials(connection.id)
    assert found is not None and found[1] == {"secret": "whsec_c2VjcmV0c2VjcmV0"}
    # another tenant cannot see it
    assert await hub.store.connections.get(connection.id, tenant_id="ten_other") is None
    # the audit log has the change, with the secret masked
    entries = await hub.store.audit.list(tenant_id, connection_id=connection.id)
    assert entries[0].action == "connection.created"
    assert entries[0].after["credentials"] == {"secret": "********"}


async def test_sync_links_resolve_our_client_id(hub: Hub) -> None:
    tenant_id = await hub.store.tenants.add("links")
    connection = await hub.store.connections.create(
        tenant_id=tenant_id,
        vendor="webhook",
        name="l",
        direction="inbound",
        enabled=True,
        config={},
        credentials={},
        event_types=[],
        field_mappings=[],
        actor="test",
    )
    await hub.store.sync.link(connection.id, "contact", "v-1", our_id="c-1", email="A@x.com")
    await hub.store.sync.link(connection.id, "contact", "v-1", fingerprint="f1")  # partial update
    link = await hub.store.sync.find(connection.id, "contact", "v-1")
    assert link is not None and link.our_id == "c-1" and link.fingerprint == "f1"
    ids = [connection.id]
    assert await hub.store.sync.client_id_for(ids, vendor_record_id="v-1") == "c-1"
    assert await hub.store.sync.client_id_for(ids, email="a@X.com") == "c-1"
    assert await hub.store.sync.client_id_for(ids, email="nobody@x.com") is None


async def test_a_busy_sqlite_write_lock_is_waited_for_off_the_event_loop(hub: Hub) -> None:
    """``Store.run`` runs its transaction on the event loop; when another writer holds SQLite's
    lock, it waits for it in the store's thread, and the event loop goes on meanwhile."""
    if not hub.settings.is_sqlite:
        pytest.skip("SQLite's write lock: PostgreSQL transactions run on the async driver")
    import asyncio
    import sqlite3
    import threading

    from journeyhub.store.tasks import TASKS
    from sqlalchemy import select

    # The session's workers write to this database too: wait for our turn as long as needed.
    other = sqlite3.connect(
        str(hub.settings.data_dir / "journeyhub.db"),
        timeout=60,
        isolation_level=None,
        check_same_thread=False,
    )
    other.execute("BEGIN IMMEDIATE")  # another writer (a CLI command, an API write)
    threading.Timer(0.5, other.rollback).start()
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    started = asyncio.get_running_loop().time()
    count = await hub.store.run(lambda conn: conn.execute(select(TASKS.c.task_id)).all())
    waited = asyncio.get_running_loop().time() - started
    ticker.cancel()
    other.close()
    assert isinstance(count, list) and waited >= 0.4
    assert ticks >= 20  # the loop ran while the transaction waited for the lock
