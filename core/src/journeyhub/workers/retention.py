"""The retention purge: deletes what is older than its kind's age limit
(``JOURNEYHUB_RETENTION_*``; what each kind is and what is never deleted: ``store/retention.py``).

Once per interval however many workers run: each worker tries to claim the ``retention`` lease
for the interval and only the one that wins purges; the lease is not released, so it expires
an interval later and the next claim starts the next purge. Every batch's transaction renews
the lease (fenced: a purger that lost it deletes nothing more), so a purge that outlasts its
interval is not joined by a second one.

It runs as its own worker task and deletes in bounded batches, each its own short
transaction, pausing between them at least as long as the batch took: the purge takes at most
about half of the store's time, less when the store is slow (busy), and the hot path's
transactions get the store in between.
It reports what it removed: ``journeyhub_retention_purged_total`` by kind, and one log line
per run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from datetime import timedelta

from journeyhub import metrics
from journeyhub.hub import Hub
from journeyhub.logs import get_logger
from journeyhub.model import utcnow
from journeyhub.settings import Settings
from journeyhub.store.retention import limits, purge_batch
from journeyhub.store.store import Store

log = get_logger(__name__)
LEASE = "retention"
BATCH_PAUSE = 0.05  # least seconds between two batches: the store is the hot path's meanwhile
POLL_SECONDS = 60.0  # how often an idle worker tries the lease (at most once per interval)


class Purger:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        lease: str = LEASE,
        poll: float = POLL_SECONDS,
        pause: float = BATCH_PAUSE,
    ) -> None:
        self.store = store
        self.settings = settings
        self.lease = lease
        self.poll = min(poll, float(settings.retention_interval_seconds))
        self.pause = pause
        self.holder = f"{os.uname().nodename}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.runs = 0  # purges this purger ran

    async def run(self, stop: asyncio.Event) -> None:
        """Purge whenever this worker wins the interval's lease, until ``stop``."""
        interval = float(self.settings.retention_interval_seconds)
        while not stop.is_set():
            if limits(self.settings):
                try:
                    if await self.store.leases.claim(self.lease, self.holder, interval):
                        await self.purge(stop)
                except Exception as exc:  # the store away: the next interval tries again
                    log.warning("retention_purge_failed", error=repr(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.poll)

    async def purge(self, stop: asyncio.Event | None = None) -> dict[str, int]:
        """One purge of every kind with a limit, batch by batch; the rows deleted by kind.
        The caller holds the lease."""
        started = time.monotonic()
        interval = float(self.settings.retention_interval_seconds)
        batch = self.settings.retention_batch_size
        leases = self.store.leases
        now = utcnow()
        removed: dict[str, int] = {}
        lost = False
        for kind, days in limits(self.settings).items():
            cutoff = now - timedelta(days=days)
            removed[kind.name] = 0
            while not lost and not (stop is not None and stop.is_set()):
                began = time.monotonic()
                deleted = await purge_batch(
                    self.store,
                    kind,
                    cutoff,
                    batch,
                    lambda conn: leases.renew(conn, self.lease, self.holder, interval),
                )
                if deleted is None:
                    lost = True
                    break
                removed[kind.name] += deleted
                metrics.child(metrics.retention_purged, kind.name).inc(deleted)
                if deleted < batch:
                    break
                await asyncio.sleep(max(self.pause, time.monotonic() - began))
            if lost:
                log.warning("retention_lease_lost", lease=self.lease)
                break
        self.runs += 1
        metrics.retention_runs.inc()
        log.info(
            "retention_purged",
            seconds=round(time.monotonic() - started, 3),
            **{f"{name}_removed": count for name, count in removed.items()},
        )
        return removed


async def run(hub: Hub, stop: asyncio.Event) -> None:
    await Purger(hub.store, hub.settings).run(stop)
