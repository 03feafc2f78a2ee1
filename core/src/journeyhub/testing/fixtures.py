"""pytest plugin (entry point ``pytest11``): real infrastructure for tests.

- ``nats_server``: a nats-server from the wheel on a free loopback port, JetStream in a tmp dir.
- ``hub_settings`` / ``hub``: settings on that server and on the test database
  (``JOURNEYHUB_TEST_DATABASE_URL`` or ``JOURNEYHUB_DATABASE_URL`` for PostgreSQL, else SQLite),
  migrated, with a hub started once per session.
- ``tenant``: a new tenant with one key per role (each key has that one role only), so tests
  never see each other's data.
- ``gateway``: the Litestar app served over real HTTP, with an ``httpx.AsyncClient`` on it.
- ``workers``: the hub's workers running in the background for the session.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from journeyhub.bus.embedded import EmbeddedNats
from journeyhub.hub import Hub
from journeyhub.settings import Settings, load_settings


def database_url_for_tests() -> str | None:
    return os.environ.get("JOURNEYHUB_TEST_DATABASE_URL") or os.environ.get(
        "JOURNEYHUB_DATABASE_URL"
    )


def reset_database(url: str) -> None:
    """Start the test run on an empty PostgreSQL schema (the test database only)."""
    from sqlalchemy import create_engine, text

    from journeyhub.settings import Settings
    from journeyhub.store.db import sync_url

    engine = create_engine(sync_url(Settings(database_url=url)))
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedNats]:
    server = EmbeddedNats(tmp_path_factory.mktemp("nats")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def hub_settings(tmp_path_factory: pytest.TempPathFactory, nats_server: EmbeddedNats) -> Settings:
    data_dir = tmp_path_factory.mktemp("data")
    url = database_url_for_tests()
    if url and url.startswith("postgresql"):
        reset_database(url)
    from journeyhub.bus.embedded import free_port

    port = free_port()  # the gateway fixture listens here; vendors are told this address
    return load_settings(
        {},
        data_dir=data_dir,
        port=port,
        public_url=f"http://127.0.0.1:{port}",
        database_url=url,
        nats_url=nats_server.url,
        max_deliver=4,
        retry_schedule=(1.0, 2.0, 4.0),  # a push's 4 attempts within seconds
        ack_wait_seconds=10,
        breaker_threshold=5,
        breaker_cooldown_seconds=2,
        log_format="json",
    )


@pytest_asyncio.fixture(scope="session")
async def hub(hub_settings: Settings) -> AsyncIterator[Hub]:
    from journeyhub.logs import configure_logging

    configure_logging("json", "info")
    started = await Hub.start(hub_settings)
    yield started
    await started.close()


@dataclass
class TenantKeys:
    """A tenant and one key per role, each with that role only: the admin key administers
    and reads, the ingest key only sends events, the read key only reads."""

    id: str
    admin_key: str
    ingest_key: str
    read_key: str

    def headers(self, role: str = "admin") -> dict[str, str]:
        key = {"admin": self.admin_key, "ingest": self.ingest_key, "read": self.read_key}[role]
        return {"authorization": f"Bearer {key}"}


async def make_tenant(hub: Hub, name: str = "test tenant") -> TenantKeys:
    tenant_id = await hub.store.tenants.add(name)
    keys = [
        await hub.store.tenants.create_key(tenant_id, role) for role in ("admin", "ingest", "read")
    ]
    return TenantKeys(tenant_id, *keys)


@pytest_asyncio.fixture
async def tenant(hub: Hub) -> TenantKeys:
    return await make_tenant(hub)


@dataclass
class Gateway:
    url: str
    client: httpx.AsyncClient


@pytest_asyncio.fixture(scope="session")
async def gateway(hub: Hub) -> AsyncIterator[Gateway]:
    import uvicorn

    from journeyhub.embedded_server import embedded_server
    from journeyhub.gateway.app import create_app

    # The app must run on the hub's loop: serve it as a task here, not in a thread.
    port = hub.settings.port
    config = uvicorn.Config(
        create_app(hub),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="off",
    )
    userver = embedded_server(config)
    task = asyncio.create_task(userver.serve())
    for _ in range(500):
        if userver.started:
            break
        await asyncio.sleep(0.01)
    url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        yield Gateway(url, client)
    userver.should_exit = True
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(task, 10)


@pytest_asyncio.fixture(scope="session")
async def workers(hub: Hub) -> AsyncIterator[asyncio.Event]:
    from journeyhub.workers.runner import run_workers

    stop = asyncio.Event()
    task = asyncio.create_task(run_workers(hub, stop))
    await asyncio.sleep(0.1)
    yield stop
    stop.set()
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(task, 15)


async def eventually(check: Any, timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Poll ``check`` (sync or async) until it returns a truthy value; fail after ``timeout``."""
    deadline = asyncio.get_running_loop().time() + timeout
    last = None
    while True:
        last = check()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last value: {last!r})")
        await asyncio.sleep(interval)


def repo_root() -> Path:
    return Path(__file__).resolve().parents[4]
