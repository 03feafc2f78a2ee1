"""The backlog sampler behind the dashboard's backlog chart: once per interval
(``JOURNEYHUB_CHART_SAMPLE_SECONDS``, a minute) however many workers run, one of them writes a
round of samples (``store/activity.py``): each tenant's pending deliveries and the messages
each bus consumer has not finished (``journeyhub_consumer_lag_messages``, at that moment).

Intervals are slots of the clock (every whole minute). At each slot every worker tries to claim
the ``chart-samples`` lease until just before the next slot; the one that wins reads the bus
and writes the round in one transaction that renews the lease (fenced, as the retention purge
is), so a slot has at most one round. The rows go after two days
(``JOURNEYHUB_RETENTION_CHART_SAMPLES_DAYS``), with the retention purge.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid

from sqlalchemy import Connection

from journeyhub.bus.jetstream import CONSUMERS
from journeyhub.hub import Hub
from journeyhub.logs import get_logger
from journeyhub.model import utcnow
from journeyhub.store.activity import record_samples

log = get_logger(__name__)
LEASE = "chart-samples"
BUS_TIMEOUT = 2.0  # seconds for each consumer's counts


def slot_left(interval: float, now: float) -> float:
    """Seconds from ``now`` (epoch seconds) to the start of the next slot."""
    return interval - (now % interval)


class Sampler:
    def __init__(self, hub: Hub, *, lease: str = LEASE) -> None:
        self.hub = hub
        self.lease = lease
        self.interval = float(hub.settings.chart_sample_seconds)
        self.holder = f"{os.uname().nodename}:{os.getpid()}:{uuid.uuid4().hex[:6]}"

    async def run(self, stop: asyncio.Event) -> None:
        """A round now and at every slot this worker wins, until ``stop``."""
        while not stop.is_set():
            try:
                await self.sample()
            except Exception as exc:  # the store away: the next slot tries again
                log.warning("chart_sample_failed", error=repr(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), slot_left(self.interval, time.time()))

    async def sample(self) -> int | None:
        """One round if this worker wins the slot: the rows written; None when another
        worker has the slot (or it is too nearly over to claim)."""
        # The lease ends a little before the next slot, so that slot's first claim wins.
        ttl = slot_left(self.interval, time.time()) - min(1.0, self.interval / 10)
        if ttl <= 0 or not await self.hub.store.leases.claim(self.lease, self.holder, ttl):
            return None
        bus = await self.bus_backlog()
        taken_at = utcnow()
        leases = self.hub.store.leases

        def work(conn: Connection) -> int | None:
            if not leases.renew(conn, self.lease, self.holder, ttl):
                return None
            return record_samples(conn, taken_at, bus)

        async with self.hub.store.transaction() as conn:
            return await conn.run_sync(work)

    async def bus_backlog(self) -> dict[str, int] | None:
        """Each durable consumer's unfinished messages (not yet delivered, or delivered and
        not acknowledged); None when the bus does not answer."""
        found: dict[str, int] = {}
        try:
            for spec in CONSUMERS:
                stream = self.hub.bus.subjects.stream(spec.stream_kind)
                info = await self.hub.bus.js.consumer_info(
                    stream, spec.durable, timeout=BUS_TIMEOUT
                )
                found[spec.durable] = (info.num_pending or 0) + (info.num_ack_pending or 0)
        except Exception as exc:
            log.warning("chart_sample_bus_unavailable", error=repr(exc))
            return None
        return found


async def run(hub: Hub, stop: asyncio.Event) -> None:
    await Sampler(hub).run(stop)
