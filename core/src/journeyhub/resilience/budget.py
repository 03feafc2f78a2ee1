"""Where every process reserves a connection's call slots: a NATS KV key per connection.

A connection's budget is a timeline of call slots ``interval`` apart. For a high rate it is
split into ``lanes``: lane ``j`` owns the slots at ``g x interval`` (epoch seconds) for every
whole ``g`` with ``g mod lanes == j``, so slots of different lanes never come closer than
``interval``, and one lane's slots are ``lanes x interval`` apart. With one lane, slot times are
not tied to that grid.

The key holds, per lane, the time before which its slots are taken ("theoretical arrival
time", GCRA), with the interval and lane count they were taken under:
``{"i": interval, "m": lanes, "t": [time, ...]}``. :meth:`BusLedger.reserve` takes ``count``
slots in each of the ``want`` lanes that are free soonest, with one compare-and-set on the
key's revision. Nothing else is stored: a process that dies holds nothing beyond the slots it
had already taken.

Why the bus and not the store (``bench/email/limiter_cost.py``): at 400 calls/s against a
2,000/s limit, a call costs 79 us of CPU here against 163 (SQLite) or 177 us (PostgreSQL) with
the same ledger in the ``leases`` table, and a reservation takes 1.75 ms (p50) against 3.6 or
5.1 ms; a store reservation is also a write transaction, queued on SQLite behind the push
worker's own writes. A lone reservation is one NATS request, 0.36 ms.

The bucket (``<PREFIX>_RATE``) is made by the first process that needs it; its keys expire a
day after their last reservation (a connection removed or idle: the next reservation starts
from now, as after any idle time). File storage at the streams' replicas, so a NATS restart or
a node gone does not forget a time still ahead.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass

from nats.errors import NoRespondersError
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import (
    BadRequestError,
    BucketNotFoundError,
    KeyNotFoundError,
    KeyWrongLastSequenceError,
    NotFoundError,
)
from nats.js.kv import KeyValue

from journeyhub.bus.jetstream import Bus
from journeyhub.bus.subjects import token
from journeyhub.logs import get_logger

log = get_logger(__name__)

KEY_TTL = 24 * 3600.0
# A stored time further ahead than this is not a queue of waiting workers (each holds a few
# chunks of well under a second) but a clock far off on some host: it is replaced by the
# reserving process's own time, with a warning.
AHEAD_LIMIT = 600.0


@dataclass(frozen=True)
class Grant:
    """``count`` slots of one lane: at ``first``, then every ``step`` seconds."""

    lane: int
    first: float
    count: int
    step: float

    def times(self) -> list[float]:
        return [self.first + n * self.step for n in range(self.count)]

    @property
    def last(self) -> float:
        return self.first + (self.count - 1) * self.step


@dataclass
class State:
    interval: float
    lanes: int
    until: list[float]  # per lane: its slots before this time are taken
    revision: int

    def encode(self) -> bytes:
        return json.dumps({"i": self.interval, "m": self.lanes, "t": self.until}).encode()


def first_slot(lane: int, lanes: int, interval: float, at: float) -> float:
    """The first slot of ``lane`` at or after ``at``."""
    if lanes == 1:
        return at
    g = math.ceil(at / interval - 1e-6)  # (a float's error must not skip a slot)
    return (g + (lane - g) % lanes) * interval


def conform(state: State, interval: float, lanes: int, now: float, key: str = "") -> State:
    """The stored state in this process's terms. When the interval or the lane count changed
    (the connection's rate edited), every lane starts after the latest slot taken under the
    old ones; a time too far ahead is a clock gone wrong somewhere."""
    until = state.until
    if state.interval != interval or state.lanes != lanes or len(until) != lanes:
        latest = max(until, default=0.0)
        until = [latest + (state.interval if until else 0.0)] * lanes
    if max(until) - now > AHEAD_LIMIT:
        log.warning("rate_budget_time_far_ahead", key=key, ahead_seconds=max(until) - now)
        until = [min(t, now) for t in until]
    return State(interval, lanes, list(until), state.revision)


def take(
    until: list[float],
    *,
    interval: float,
    lanes: int,
    want: int,
    count: int,
    at: float,
    avoid: Collection[int] = (),
) -> list[Grant]:
    """``count`` slots in each of the ``want`` lanes not in ``avoid`` whose next free slot at
    or after ``at`` comes soonest (``until``: per lane, the time before which it is taken)."""
    starts = sorted(
        (first_slot(j, lanes, interval, max(until[j], at)), j)
        for j in range(lanes)
        if j not in avoid
    )[: max(1, want)]
    return [Grant(j, first, count, lanes * interval) for first, j in starts]


class BusLedger:
    """Call slots per connection in a NATS KV bucket of ``bus``."""

    def __init__(self, bus: Bus, clock: Callable[[], float] = time.time) -> None:
        self.bus = bus
        self.clock = clock
        self.bucket = token(f"{bus.subjects.prefix.upper()}_RATE").replace("-", "_")
        self._kv: KeyValue | None = None
        self._opening = asyncio.Lock()
        # The last state this process wrote per key. While no other process writes in
        # between, the next compare-and-set can go without reading the key first; while
        # several take turns on it, that cached state is stale more often than not, and a
        # failed write costs a round trip more than a read. So a key is written blind
        # ("optimistic") until such a write fails, then read first until two reads in a row
        # find this process's own last write.
        self._known: dict[str, State] = {}
        self._optimistic: dict[str, bool] = {}
        self._own_in_a_row: dict[str, int] = {}
        self.round_trips = 0  # requests to NATS, for the cost figures and the tests
        self.conflicts = 0  # compare-and-sets that found another process's write

    async def _bucket(self) -> KeyValue:
        if self._kv is not None:
            return self._kv
        async with self._opening:
            if self._kv is None:
                js = self.bus.js
                try:
                    self.round_trips += 1
                    self._kv = await js.key_value(self.bucket)
                except BucketNotFoundError:
                    config = KeyValueConfig(
                        bucket=self.bucket,
                        history=1,
                        ttl=KEY_TTL,
                        storage=StorageType.FILE,
                        replicas=self.bus.replicas,
                    )
                    self.round_trips += 1
                    try:
                        self._kv = await js.create_key_value(config)
                    except BadRequestError:  # made meanwhile by another process, differently
                        self.round_trips += 1
                        self._kv = await js.key_value(self.bucket)
            return self._kv

    async def reserve(
        self,
        key: str,
        *,
        interval: float,
        lanes: int,
        want: int,
        count: int,
        lead: float = 0.0,
        avoid: Collection[int] = (),
    ) -> list[Grant]:
        """Take ``count`` slots in each of the ``want`` lanes (not in ``avoid``, the lanes
        this process holds already) whose next slot is soonest, none of them earlier than
        ``lead`` s from now. Fewer lanes when fewer are left; none when ``avoid`` has all."""
        key = token(key)
        while True:
            kv = await self._bucket()
            known = self._known.get(key)
            if known is not None and self._optimistic.get(key, True):
                state = known
            else:
                state = await self._read(kv, key)
                own = known is not None and state.revision == known.revision
                self._own_in_a_row[key] = self._own_in_a_row.get(key, 0) + 1 if own else 0
                if self._own_in_a_row[key] >= 2:
                    self._optimistic[key] = True
            now = self.clock()
            state = conform(state, interval, lanes, now, key=key)
            grants = take(
                state.until,
                interval=interval,
                lanes=lanes,
                want=want,
                count=count,
                at=now + lead,
                avoid=avoid,
            )
            if not grants:
                return []
            until = list(state.until)
            for grant in grants:
                until[grant.lane] = grant.first + count * grant.step
            new = State(interval, lanes, until, 0)
            try:
                self.round_trips += 1
                new.revision = await kv.update(key, new.encode(), last=state.revision)
            except KeyWrongLastSequenceError:  # another process took slots since: read again
                self.conflicts += 1
                self._optimistic[key] = False
                self._own_in_a_row[key] = 0
                self._known.pop(key, None)
                continue
            except (NotFoundError, NoRespondersError):  # the bucket is gone (a NATS reset)
                self._kv = None
                self._known.clear()
                continue
            except BaseException:
                # A timeout may hide a write that was made: never trust the cached revision.
                self._known.pop(key, None)
                raise
            self._known[key] = new
            return grants

    async def _read(self, kv: KeyValue, key: str) -> State:
        try:
            self.round_trips += 1
            entry = await kv.get(key)
        except KeyNotFoundError as exc:
            # Never reserved, or expired (revision 0: "no value yet"), or deleted by hand (the
            # delete marker's revision is what the next write must name).
            marker = getattr(exc, "entry", None)
            return State(0.0, 0, [], (marker.revision or 0) if marker is not None else 0)
        try:
            raw = json.loads(entry.value or b"{}")
            return State(
                float(raw["i"]), int(raw["m"]), [float(t) for t in raw["t"]], entry.revision or 0
            )
        except (ValueError, KeyError, TypeError):  # not ours: overwritten by this reservation
            return State(0.0, 0, [], entry.revision or 0)
