"""Per-connection rate limits, one budget per connection shared by every worker process.

The rate is the plugin's declared vendor limit (``ConnectorInfo.rate_limit``: N requests per
window of W seconds) or the connection's override (``rate_limit_per_second``: a window of 1 s).

The budget is a timeline of call slots ``interval = W / (N x SAFETY)`` apart, kept in the bus
(``budget.BusLedger``: one NATS KV key per connection). A process takes slots in chunks, with
one compare-and-set per chunk, and hands them to its own callers in order:
:meth:`SharedLimiter.acquire` returns at its slot's time. So the round trips go with time (a
chunk lasts up to ``CHUNK_SECONDS``), not with calls.

A high rate is split into lanes (``budget.py``), each owning every ``lanes``-th slot of one
grid, so that a process can take a share of the rate spread over time (one lane's slots are
about ``late`` apart: a caller arriving at any moment finds one it may use) instead of a
stretch of consecutive slots it could only use in a burst. A process holds as many lanes as
its demand needs (the callers waiting now, and the rate they arrive at); with one lane (up to
about 80 requests/s in a 1 s window) it takes just the slots its callers will use in time.

Why no vendor window sees more than N calls: slots are at least ``interval`` apart whichever
process took them, and ``acquire`` returns no earlier than its slot and no later than ``late``
after it (a slot found older than that is given up unused: "forfeited"). So a window of W
seconds holds the returns of slots within W + ``late``: at most ``(W + late) / interval`` of
them, which is N as long as ``late <= W x (1/SAFETY - 1)`` (53 ms for a 1 s window). ``late``
is half of that; the other half is for what the limiter cannot see: the time from
``acquire`` to the vendor's receipt varying from call to call, and the hosts' clocks differing.

Clock: slot times are wall-clock times (``time.time()``) compared across processes and hosts.
Hosts are assumed NTP-synchronised to a few milliseconds; a host whose clock is behind by d
makes its calls up to d earlier than the others expect, which comes out of that same half of
the margin. A time far ahead (``budget.AHEAD_LIMIT``) is overridden with a warning.

A call's way to the vendor varies most for a cold call (a process's first, or its first after
the HTTP keep-alive ran out): with one lane, such a call also takes the slot after its own
and leaves it unused (``COLD_AFTER_SECONDS``).

A process that dies holds nothing but the slots it had taken: at most ``CHUNK_SECONDS`` of
its lanes; with one lane, at most ``CHUNK_SECONDS`` or one slot, whichever is longer, and the
guard slot after a cold call. The others take the slots after.

A 429's ``Retry-After`` pauses the connection for every worker through the breaker state in
the store (``breaker.py``); that is apart from this.
"""

from __future__ import annotations

import asyncio
import heapq
import math
import time

from journeyhub.bus.jetstream import Bus
from journeyhub.logs import get_logger
from journeyhub.model import Connection, ConnectorInfo
from journeyhub.resilience.budget import BusLedger

log = get_logger(__name__)

# A little under the vendor's limit: the slack between the slots' spacing and the vendor's
# window absorbs late calls, the calls' varying way to the vendor, and clock differences.
SAFETY = 0.95
# The share of that slack a slot may be used late (see the module's docstring).
LATE_SHARE = 0.5
# A chunk covers at most this long (and one slot at least): what a process that dies can hold
# from the others, and what it can waste when its demand drops.
CHUNK_SECONDS = 0.25
# At most this many lanes (the key's size; 32 lanes reach a lane interval of ``late`` at about
# 1,300 requests/s; above that a lane's slots are closer together).
MAX_LANES = 32
# Demand (calls per second arriving at one process) is averaged over about this long, and
# lanes are held for it with this much to spare.
DEMAND_SECONDS = 1.0
HEADROOM = 1.25
# A cold call (a process's first on a connection, or its first after this long idle, when
# the HTTP keep-alive connection may be closed: httpx closes idle ones after 5 s, aiohttp
# after 15 s) reaches the vendor later after ``acquire`` than warm ones do: a new connection,
# first-time work. Measured on the 2-core bench machine: 55 to 140 ms, more than the margin
# at a low rate (53 ms for a 1 s window), which made the sandbox answer 429 to the third call
# of a run. So with one lane, a cold call takes the slot after its own too, unused; with
# lanes, the margin is several calls, and one late call cannot fill a window.
COLD_AFTER_SECONDS = 5.0
# A failed reservation (the bus away) is tried again after this, doubling, up to the maximum.
RETRY_WAIT, RETRY_WAIT_MAX = 0.2, 2.0


class SharedLimiter:
    """One connection's budget as this process sees it: the slots it holds, and its callers."""

    def __init__(self, ledger: BusLedger, key: str, requests: float, per_seconds: float) -> None:
        self.ledger = ledger
        self.key = key
        self.interval = per_seconds / (requests * SAFETY)
        self.late = LATE_SHARE * per_seconds * (1.0 / SAFETY - 1.0)
        self.lanes = max(1, min(MAX_LANES, int(self.late / self.interval)))
        self.step = self.lanes * self.interval  # one lane's slots are this far apart
        self.max_count = max(1, int(CHUNK_SECONDS / self.step))
        self._slots: list[float] = []  # a heap of the times of slots taken and not used yet
        self._held: dict[int, float] = {}  # lane -> its last slot taken
        self._turn = asyncio.Lock()  # callers are served one at a time, first come first
        self._waiting = 0
        self._demand = 0.0  # calls per second, decayed average
        self._demand_at = time.monotonic()
        # How long a reservation takes (decayed average): slots are asked to start no
        # earlier than that from now, so they are not already late when they arrive.
        self._lead = 0.0
        self._last_call: float | None = None  # monotonic time of the last slot handed out
        self.acquired = 0
        self.reservations = 0
        self.forfeited = 0
        self.guards = 0

    async def acquire(self) -> None:
        """Return when this process may make one vendor call."""
        self._note_arrival()
        self._waiting += 1
        try:
            async with self._turn:
                await self._take()
        finally:
            self._waiting -= 1

    async def _take(self) -> None:
        wait = RETRY_WAIT
        while True:
            now = time.time()
            while self._slots and self._slots[0] + self.late < now:
                heapq.heappop(self._slots)  # too late to use without crowding the next call
                self.forfeited += 1
            if self._wants_more(now):
                try:
                    await self._reserve(now)
                except Exception as exc:  # the bus away for a moment: callers wait, not fail
                    log.warning("rate_budget_unavailable", key=self.key, error=repr(exc))
                    if not self._slots:
                        await asyncio.sleep(wait)
                        wait = min(wait * 2, RETRY_WAIT_MAX)
                        continue
                else:
                    continue
            ahead = self._slots[0] - now
            if ahead > 0:
                await asyncio.sleep(ahead)
                continue  # woken late? checked again above
            heapq.heappop(self._slots)
            self.acquired += 1
            self._last_call = time.monotonic()
            return

    def _wants_more(self, now: float) -> bool:
        if not self._slots:
            return True
        if self.lanes == 1:
            return False  # one chunk at a time: what the callers will use of it, see chunk()
        held = sum(1 for last in self._held.values() if last + self.late >= now)
        return held < min(self.lanes, self.lanes_needed())

    def lanes_needed(self) -> int:
        """Lanes for the demand: the rate callers arrive at, or the callers waiting now
        served within a chunk, with headroom."""
        rate = max(self.demand() * HEADROOM, self._waiting / CHUNK_SECONDS)
        return max(1, math.ceil(rate * self.step))

    async def _reserve(self, now: float) -> None:
        """Take a chunk of slots. With lanes: as many lanes as the demand needs, less those
        this process holds with half a chunk or more still to go (a lane that runs out sooner
        is taken again with the others, from where it ends, so that one reservation serves
        them all)."""
        cold = self.lanes == 1 and (
            self._last_call is None or time.monotonic() - self._last_call > COLD_AFTER_SECONDS
        )
        if self.lanes == 1:
            want, stocked = 1, set()
        else:
            stocked = {j for j, last in self._held.items() if last >= now + CHUNK_SECONDS / 2}
            want = max(1, self.lanes_needed() - len(stocked))
        began = time.monotonic()
        count = self.chunk() + (1 if cold else 0)
        grants = await self.ledger.reserve(
            self.key,
            interval=self.interval,
            lanes=self.lanes,
            want=want,
            count=count,
            lead=self._lead,
            avoid=stocked,
        )
        took = time.monotonic() - began
        self._lead = took if self.reservations == 0 else 0.8 * self._lead + 0.2 * took
        self.reservations += 1
        self._held = {j: last for j, last in self._held.items() if last + self.late >= now}
        for grant in grants:
            self._held[grant.lane] = grant.last
            times = grant.times()
            if cold:
                del times[1]  # the guard after a cold call (see COLD_AFTER_SECONDS)
                self.guards += 1
            for at in times:
                heapq.heappush(self._slots, at)

    def chunk(self) -> int:
        """How many slots to take per lane. With lanes: a chunk's worth. With one lane: those
        this process's callers will use before they are too late. With ``w`` callers waiting
        and more arriving at ``d`` per second, slot ``j`` (``j x interval`` after the first)
        finds one within ``late`` when ``w + d (j interval + late) >= j + 1``."""
        if self.lanes > 1:
            return self.max_count
        demand = self.demand()
        used = demand * self.interval
        if used >= 1.0:  # callers come faster than the budget: every slot finds one
            return self.max_count
        count = math.floor((max(1, self._waiting) - 1 + demand * self.late) / (1.0 - used)) + 1
        return max(1, min(count, self.max_count))

    def demand(self) -> float:
        return self._demand * math.exp(-(time.monotonic() - self._demand_at) / DEMAND_SECONDS)

    def _note_arrival(self) -> None:
        self._demand = self.demand() + 1.0 / DEMAND_SECONDS
        self._demand_at = time.monotonic()

    def stats(self) -> dict[str, float]:
        return {
            "acquired": self.acquired,
            "reservations": self.reservations,
            "forfeited": self.forfeited,
            "guards": self.guards,
            "round_trips": self.ledger.round_trips,
        }


class RateLimits:
    """The push worker's limiters, one per connection, sharing their budgets through ``bus``."""

    def __init__(self, bus: Bus) -> None:
        self.ledger = BusLedger(bus)
        self._limiters: dict[str, tuple[tuple[float, float], SharedLimiter]] = {}

    @staticmethod
    def budget(connection: Connection, info: ConnectorInfo) -> tuple[float, float] | None:
        """(requests, per seconds) for ``connection``, or None when it has no limit."""
        override = connection.options.get("rate_limit_per_second")
        if isinstance(override, int | float) and override > 0:
            return float(override), 1.0
        if info.rate_limit is None:
            return None
        return info.rate_limit.requests, info.rate_limit.per_seconds

    def per_second(self, connection: Connection, info: ConnectorInfo) -> float | None:
        found = self.budget(connection, info)
        return None if found is None else found[0] / found[1]

    def limiter(self, connection: Connection, info: ConnectorInfo) -> SharedLimiter | None:
        found = self.budget(connection, info)
        if found is None:
            return None
        current = self._limiters.get(connection.id)
        if current is None or current[0] != found:
            # A changed rate starts a new limiter; the budget in the bus is carried over.
            current = (found, SharedLimiter(self.ledger, connection.id, *found))
            self._limiters[connection.id] = current
        return current[1]

    def stats(self) -> dict[str, dict[str, float]]:
        return {key: limiter.stats() for key, (_, limiter) in self._limiters.items()}
