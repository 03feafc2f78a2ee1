"""The connection cache: one store read per key at a time, and no burst when an entry expires."""

from __future__ import annotations

import asyncio

import pytest
from journeyhub.connection_cache import ConnectionCache, _Expiring
from journeyhub.hub import Hub
from journeyhub.testing.fixtures import TenantKeys


async def _connection(hub: Hub, tenant: TenantKeys) -> str:
    connection = await hub.store.connections.create(
        tenant_id=tenant.id,
        vendor="webhook",
        name="engine",
        direction="outbound",
        enabled=True,
        config={"url": "http://127.0.0.1:1/x"},
        credentials={"secret": "whsec_Y2FjaGUtdGVzdC1zZWNyZXQ="},
        event_types=[],
        field_mappings=[],
        actor="test",
    )
    return connection.id


class Counting:
    """The store's own read, counted."""

    def __init__(self, hub: Hub) -> None:
        self.hub, self.calls = hub, 0

    async def __call__(self, connection_id: str):  # type: ignore[no-untyped-def]
        self.calls += 1
        return await self.hub.store.connections.get_with_credentials(connection_id)


async def test_callers_that_miss_together_share_one_read(hub: Hub, tenant: TenantKeys) -> None:
    connection_id = await _connection(hub, tenant)
    load = Counting(hub)
    cache = _Expiring("test", load, ttl=0.3)
    entries = await asyncio.gather(*(cache.get(connection_id) for _ in range(50)))
    assert load.calls == 1
    assert all(e is not None and e[0].id == connection_id for e in entries)

    await asyncio.sleep(0.4)  # expired: the old entry answers, one refresh runs behind it
    again = await asyncio.gather(*(cache.get(connection_id) for _ in range(50)))
    assert all(e is entries[0] for e in again)
    await asyncio.sleep(0.2)
    assert load.calls == 2
    assert (await cache.get(connection_id)) is not entries[0]  # the refreshed one


async def test_a_change_is_seen_after_the_ttl_and_at_once_after_invalidate(
    hub: Hub, tenant: TenantKeys
) -> None:
    connection_id = await _connection(hub, tenant)
    cache = ConnectionCache(hub.store, ttl=0.2)
    entry = await cache.get(connection_id)
    assert entry is not None and entry[0].enabled
    await hub.store.connections.update(connection_id, tenant.id, {"enabled": False}, actor="test")
    await asyncio.sleep(0.3)
    await cache.get(connection_id)  # starts the refresh

    async def disabled() -> bool:
        current = await cache.get(connection_id)
        return current is not None and not current[0].enabled

    for _ in range(50):
        if await disabled():
            break
        await asyncio.sleep(0.02)
    assert await disabled()

    await hub.store.connections.update(connection_id, tenant.id, {"enabled": True}, actor="test")
    cache.invalidate(connection_id=connection_id)
    entry = await cache.get(connection_id)
    assert entry is not None and entry[0].enabled


async def test_a_failed_read_reaches_the_caller_and_a_failed_refresh_keeps_the_entry() -> None:
    answers: list[object] = [ValueError("store down")]

    async def load(key: str) -> str:
        answer = answers.pop(0) if answers else f"value of {key}"
        if isinstance(answer, Exception):
            raise answer
        return str(answer)

    cache: _Expiring[str] = _Expiring("test", load, ttl=0.1)
    with pytest.raises(ValueError, match="store down"):
        await cache.get("k")
    assert await cache.get("k") == "value of k"
    answers.append(ValueError("store down again"))
    await asyncio.sleep(0.15)
    assert await cache.get("k") == "value of k"  # stale, while the refresh fails
    await asyncio.sleep(0.05)
    assert await cache.get("k") == "value of k"
    assert not answers  # the refresh did run (and failed)


async def test_an_invalidate_during_a_read_is_not_undone_by_it() -> None:
    release = asyncio.Event()
    version = {"n": 1}

    async def load(key: str) -> int:
        seen = version["n"]
        await release.wait()
        return seen

    cache: _Expiring[int] = _Expiring("test", load, ttl=60)
    first = asyncio.create_task(cache.get("k"))
    await asyncio.sleep(0.01)
    version["n"] = 2
    cache.drop("k")  # the change happened while the read was under way
    release.set()
    assert await first == 1  # its caller gets what it read ...
    assert await cache.get("k") == 2  # ... but it is not kept
