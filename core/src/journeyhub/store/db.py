"""Engine creation and migrations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from journeyhub import metrics
from journeyhub.settings import Settings

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # busy_timeout first: the statements after it wait for another writer instead of failing.
    # WAL lets readers run beside the one writer (``migrate`` makes the file WAL from the
    # start; switching a file to it takes every lock).
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _count_transaction(_connection: Any) -> None:
    metrics.store_transactions.inc()


def _count_statement(*_args: Any) -> None:
    metrics.store_statements.inc()


def create_engine(settings: Settings) -> AsyncEngine:
    url = settings.effective_database_url
    if settings.is_sqlite:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    else:
        engine = create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)
    event.listen(engine.sync_engine, "begin", _count_transaction)
    event.listen(engine.sync_engine, "before_cursor_execute", _count_statement)
    return engine


def _sqlite_immediate(dbapi_connection: Any, _record: Any) -> None:
    # The driver's own transaction handling off: each transaction is begun by ``_begin_write``.
    dbapi_connection.isolation_level = None


def _begin_write(connection: Any) -> None:
    # Every transaction of the synchronous engine writes: take SQLite's one write lock at the
    # start, so no statement later in it can fail to upgrade its read to a write. Sent on the
    # driver's connection: transaction control is not counted as a statement (the async
    # driver's implicit BEGIN is not either).
    connection.connection.dbapi_connection.execute("BEGIN IMMEDIATE")


def create_sync_engine(settings: Settings, *, busy_timeout_ms: int) -> Engine | None:
    """For SQLite, the same file through the synchronous driver, for ``Store.run``; waiting
    at most ``busy_timeout_ms`` for another writer. None for other databases."""
    if not settings.is_sqlite:
        return None
    engine = sqlalchemy.create_engine(sync_url(settings))

    def busy_timeout(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")

    event.listen(engine, "connect", _sqlite_pragmas)
    event.listen(engine, "connect", busy_timeout)
    event.listen(engine, "connect", _sqlite_immediate)
    event.listen(engine, "begin", _begin_write)
    event.listen(engine, "begin", _count_transaction)
    event.listen(engine, "before_cursor_execute", _count_statement)
    return engine


def session_factory(engine: AsyncEngine) -> async_sessionmaker:
    return async_sessionmaker(engine, expire_on_commit=False)


def sync_url(settings: Settings) -> str:
    """The same database through a synchronous driver, for Alembic."""
    url = make_url(settings.effective_database_url)
    if url.drivername == "sqlite+aiosqlite":
        url = url.set(drivername="sqlite")
    return url.render_as_string(hide_password=False)


def alembic_config(settings: Settings) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["sqlalchemy_url"] = sync_url(settings)
    return cfg


def migrate(settings: Settings, revision: str = "head") -> None:
    """Apply migrations up to ``revision`` (blocking; run it in a thread from async code)."""
    if settings.is_sqlite:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        # WAL from the start: a file already in WAL needs no lock to be opened in it.
        engine = sqlalchemy.create_engine(sync_url(settings))
        with engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA journal_mode=WAL")
        engine.dispose()
    command.upgrade(alembic_config(settings), revision)


def downgrade(settings: Settings, revision: str = "base") -> None:
    command.downgrade(alembic_config(settings), revision)
