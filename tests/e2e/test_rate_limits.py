"""A connection's rate budget is shared by every worker process, through the bus.

Each ``RateLimits`` here has its own NATS connection, as a worker process would: nothing is
shared between them but the nats-server (and, end to end, the store). Call times are taken
when ``acquire`` returns; the end-to-end test takes them where the vendor receives them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import msgspec
import pytest
import pytest_asyncio
from journeyhub.bus.jetstream import Bus
from journeyhub.hub import Hub
from journeyhub.model import Connection, ConnectorInfo, JourneyEvent, RateLimit
from journeyhub.resilience.limits import (
    CHUNK_SECONDS,
    LATE_SHARE,
    SAFETY,
    RateLimits,
    SharedLimiter,
)
from journeyhub.settings import Settings
from journeyhub.testing.fixtures import TenantKeys, eventually
from journeyhub.workers.runner import run_workers

from ..conftest import event

if TYPE_CHECKING:
    from journeyhub_resend.sandbox import ResendSandbox


def connection() -> Connection:
    return Connection(
        id=f"con_rl{uuid.uuid4().hex[:12]}", tenant_id="ten_rl", vendor="x", name="limited"
    )


def info(requests: float, per_seconds: float = 1.0) -> ConnectorInfo:
    return ConnectorInfo(
        vendor="x",
        display_name="x",
        capabilities=frozenset(),
        auth_kind="api_key",
        rate_limit=RateLimit(requests=requests, per_seconds=per_seconds),
    )


def most_in_window(times: list[float], window: float) -> int:
    """The most of ``times`` inside any window of ``window`` seconds (the vendor's count)."""
    ordered = sorted(times)
    most, start = 0, 0
    for end, at in enumerate(ordered):
        while at - ordered[start] >= window:
            start += 1
        most = max(most, end - start + 1)
    return most


@pytest_asyncio.fixture
async def buses(hub_settings: Settings) -> AsyncIterator[list[Bus]]:
    """Four separate NATS connections: one per worker process of the tests."""
    assert hub_settings.nats_url is not None
    opened = [await Bus(hub_settings, hub_settings.nats_url).connect() for _ in range(4)]
    yield opened
    for bus in opened:
        await bus.close()


def sent(bus: Bus) -> int:
    """Messages this NATS connection has sent: every request to the server is one."""
    assert bus.nc is not None
    return int(bus.nc.stats["out_msgs"])


async def calls(
    limiter: SharedLimiter, stamps: list[float], until: float, pace: float = 0.0
) -> None:
    """One caller: acquire and note the time, until ``until`` (``pace``: then rest)."""
    while time.time() < until:
        await limiter.acquire()
        stamps.append(time.time())
        if pace:
            await asyncio.sleep(pace)


async def test_workers_sharing_a_connection_stay_within_its_limit(buses: list[Bus]) -> None:
    """Three workers, three callers each, all wanting more than 10 calls/s: together they
    make at most 10 in any second, and use the budget (each worker had its turns)."""
    limited, limit = connection(), info(10)
    workers = [RateLimits(bus) for bus in buses[:3]]
    stamps: list[list[float]] = [[], [], []]
    began = time.time()
    until = began + 3.0
    await asyncio.gather(
        *(
            calls(w.limiter(limited, limit), stamps[i], until)  # type: ignore[arg-type]
            for i, w in enumerate(workers)
            for _ in range(3)
        )
    )
    everything = [t for s in stamps for t in s]
    assert most_in_window(everything, 1.0) <= 10
    # Used, not starved: about 3 s x 9.5 calls/s, less the slot kept free after each
    # worker's first (cold) call, less the first reservation's round trip.
    assert len(everything) >= 0.9 * 3.0 * 10 * SAFETY - 3, len(everything)
    assert all(len(s) >= 5 for s in stamps), [len(s) for s in stamps]


async def test_a_high_rate_costs_round_trips_per_chunk_not_per_call(buses: list[Bus]) -> None:
    """At 2,000 requests/s: three workers calling steadily (about 150/s each, one call at a
    time) and then all at once (1,000 callers each) stay within the limit, and their
    reservations are a small fraction of their calls, counted as messages sent to NATS."""
    limited, limit = connection(), info(2000)
    workers = [RateLimits(bus) for bus in buses[:3]]
    limiters = [w.limiter(limited, limit) for w in workers]
    assert all(lim is not None for lim in limiters)

    before = [sent(bus) for bus in buses[:3]]
    steady: list[float] = []
    began = time.time()
    await asyncio.gather(*(calls(lim, steady, began + 1.5, pace=1 / 150) for lim in limiters))  # type: ignore[arg-type]
    seconds = time.time() - began
    trips = sum(sent(bus) - b for bus, b in zip(buses, before, strict=False))
    assert len(steady) >= 150  # (the pace is a floor: a loaded machine makes fewer)
    assert trips / len(steady) <= 0.35, (trips, len(steady))
    assert trips / seconds / 3 <= 40, (trips, seconds)  # per worker and second

    before = [sent(bus) for bus in buses[:3]]
    burst: list[float] = []

    async def one(lim: SharedLimiter) -> None:
        await lim.acquire()
        burst.append(time.time())

    await asyncio.gather(*(one(lim) for lim in limiters for _ in range(1000)))  # type: ignore[arg-type]
    trips = sum(sent(bus) - b for bus, b in zip(buses, before, strict=False))
    assert len(burst) == 3000
    assert most_in_window(burst, 1.0) <= 2000
    assert trips / len(burst) <= 0.05, (trips, len(burst))


async def test_a_dead_workers_slots_hold_the_others_back_briefly(buses: list[Bus]) -> None:
    """A worker that took a chunk of slots and died (its callers gone, its NATS connection
    closed) holds the others back no longer than that chunk: at a low rate (one lane) and a
    high one (every lane). The worker after it is a new one, started then."""
    for requests, callers in ((20, 50), (2000, 2000)):
        limited, limit = connection(), info(requests)
        dead_bus, *_ = buses
        doomed = RateLimits(dead_bus).limiter(limited, limit)
        assert doomed is not None
        waiting = [asyncio.create_task(doomed.acquire()) for _ in range(callers)]
        # (the first caller reserves before the others arrive: its chunk is one slot)
        await eventually(lambda: doomed.acquired >= 2, timeout=5, interval=0.001)  # noqa: B023
        held = max(doomed._held.values())  # the last slot it took
        assert held > time.time() + doomed.interval  # it did take more than it used
        for task in waiting:
            task.cancel()
        await asyncio.gather(*waiting, return_exceptions=True)
        await dead_bus.close()

        fresh = RateLimits(buses[1]).limiter(limited, limit)
        assert fresh is not None
        began = time.time()
        await fresh.acquire()
        waited = time.time() - began
        assert waited <= CHUNK_SECONDS + 2 * fresh.interval + 0.1, waited
        if requests == 20:  # one lane: strictly after the dead worker's slots
            assert time.time() >= held + fresh.interval - 0.005
        buses[0] = await Bus(dead_bus.settings, dead_bus.url).connect()


async def test_a_cold_call_keeps_the_slot_after_it_free(buses: list[Bus]) -> None:
    """A worker's first call at a low rate reaches the vendor later after ``acquire`` than
    its later ones (a new HTTP connection, first-time work): the slot after it stays unused,
    so the next worker's call comes two intervals later, not one. Warm calls are one apart."""
    limited, limit = connection(), info(10)
    first, second = (RateLimits(bus).limiter(limited, limit) for bus in buses[:2])
    assert first is not None and second is not None
    await first.acquire()
    cold_at = time.time()
    await second.acquire()  # cold too: the slot after it stays free as well
    assert time.time() - cold_at >= 2 * first.interval - 0.005
    warm_from = time.time()
    await first.acquire()
    await first.acquire()
    assert time.time() - warm_from <= 3 * first.interval + 0.05  # (a guard, then one apart)
    assert first.guards == second.guards == 1


# --- end to end: three push workers, each with a hub of its own, one Resend budget ------------


def timed_resend(**kwargs: Any) -> ResendSandbox:
    """The Resend sandbox, noting when each call arrived and from which worker (in
    ``arrivals``)."""
    from journeyhub_resend.sandbox import ResendSandbox

    class TimedResend(ResendSandbox):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.arrivals: list[tuple[float, str, str, int]] = []  # (time, worker, path, status)

        async def handle(
            self, method: str, path: str, headers: dict[str, str], body: bytes
        ) -> tuple[int, Any, dict[str, str]]:
            at = time.monotonic()
            status, payload, extra = await super().handle(method, path, headers, body)
            self.arrivals.append((at, headers.get("user-agent", "?"), path, status))
            return status, payload, extra

    return TimedResend(**kwargs)


def tag_calls(hub: Hub, user_agent: str) -> None:
    """Have the hub's vendor calls say which worker made them (their user agent)."""
    http: Any = hub.http
    if hasattr(http, "user_agent"):  # journeyhub.vendor_http.VendorHttp: read at first use
        http.user_agent = user_agent
    else:  # an httpx.AsyncClient
        http.headers["user-agent"] = user_agent


@contextlib.asynccontextmanager
async def worker_hubs(settings: Settings, count: int) -> AsyncIterator[list[Hub]]:
    """``count`` hubs, each with its own store engine and NATS connection, on streams of
    their own (a subject prefix of this test), running a router and a push worker each."""
    prefix = f"rl{uuid.uuid4().hex[:6]}"
    mine = msgspec.structs.replace(settings, subject_prefix=prefix)
    hubs: list[Hub] = []
    stop = asyncio.Event()
    running: list[asyncio.Task[None]] = []
    try:
        for index in range(count):
            hub = await Hub.start(mine, run_migrations=False)
            tag_calls(hub, f"journeyhub-worker-{index}")
            hubs.append(hub)
        running = [
            asyncio.create_task(run_workers(h, stop, names=["router", "push"])) for h in hubs
        ]
        yield hubs
    finally:
        stop.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*running, return_exceptions=True), 20)
        if hubs:
            js = hubs[0].bus.js
            for name in await js.streams_info():
                if name.config.name and name.config.name.startswith(
                    (prefix.upper() + "_", f"KV_{prefix.upper()}_")
                ):
                    await js.delete_stream(name.config.name)
        for hub in hubs:
            await hub.close()


@pytest.mark.plugins
async def test_three_push_workers_keep_to_one_resend_budget(
    hub: Hub, hub_settings: Settings, tenant: TenantKeys
) -> None:
    """Three push workers (own hub each) mail 36 clients, whose events arrive over 2.4 s, at
    a Resend allowing 4 calls/s (the connection says so: the plugin assumes Resend's default
    of 2): no 429, every email once, no second with more than 4 calls,
    calls about a slot apart, and more than one worker made them."""
    limit = 4
    interval = 1.0 / (limit * SAFETY)
    resend: Any
    with timed_resend(rate_limit=limit, per_seconds=1.0) as resend:
        await hub.store.connections.create(
            tenant_id=tenant.id,
            vendor="resend",
            name="mail",
            direction="outbound",
            enabled=True,
            credentials={"api_key": resend.api_key},
            config={
                "api_base": resend.url,
                "from_address": "Studio <hello@example.com>",
                "rate_limit_per_second": limit,
                "templates": {"welcome": {"subject": "Welcome", "html": "<p>Hello</p>"}},
            },
            event_types=[],
            field_mappings=[],
            actor="test",
        )
        async with worker_hubs(hub_settings, 3) as hubs:
            bus = hubs[0].bus
            for n in range(36):
                body = event(
                    f"rl-{n}",
                    "email_requested",
                    client_id=f"cl_rl{n}",
                    data={"template": "welcome"},
                )
                journey = msgspec.convert(body, JourneyEvent)
                await bus.publish(
                    bus.subjects.events(tenant.id),
                    msgspec.json.encode(journey),
                    msg_id=f"{tenant.id}:{journey.id}",
                )
                await asyncio.sleep(1 / 15)
            await eventually(lambda: resend.accepted >= 36, timeout=30)
            await asyncio.sleep(0.5)  # a late duplicate would show now

    assert resend.refused_429 == 0
    assert resend.duplicates == 0 and resend.accepted == 36
    arrivals = sorted(a for a in resend.arrivals if a[2].startswith("/emails"))
    times = [a[0] for a in arrivals]
    assert most_in_window(times, 1.0) <= limit
    gaps = [b - a for a, b in itertools.pairwise(times)]
    late = LATE_SHARE * (1 / SAFETY - 1)  # how late a slot may be used, for a 1 s window
    assert min(gaps) >= interval - late - 0.05, gaps
    assert len(times) >= 8  # (many small calls: the events came in over 2.4 s)
    assert len({a[1] for a in arrivals}) >= 2, arrivals
