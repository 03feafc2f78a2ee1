"""Runs the workers of one process as asyncio tasks until asked to stop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from journeyhub.hub import Hub
from journeyhub.logs import get_logger

log = get_logger(__name__)

WorkerFactory = Callable[[Hub, asyncio.Event], Awaitable[None]]


def worker_factories() -> dict[str, WorkerFactory]:
    """Every worker loop of the hub, by name."""
    from journeyhub.workers import inbound, incidents, pull, push, retention, router, sampler

    return {
        "inbound": inbound.run,
        "router": router.run_events,
        "trigger-router": router.run_triggers,
        "push": push.run,
        "sync": pull.run,
        "retention": retention.run,
        "incidents": incidents.run,
        "sampler": sampler.run,
    }


async def run_workers(hub: Hub, stop: asyncio.Event, names: list[str] | None = None) -> None:
    """Run the named workers (all by default) until ``stop`` is set; a crashed loop restarts."""
    factories = worker_factories()
    selected = {n: f for n, f in factories.items() if names is None or n in names}

    async def supervise(name: str, factory: WorkerFactory) -> None:
        delay = 0.5
        while not stop.is_set():
            try:
                await factory(hub, stop)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error("worker_crashed", worker=name, error=repr(exc), restart_in=delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                delay = min(delay * 2, 30.0)

    log.info("workers_started", workers=sorted(selected))
    await asyncio.gather(*(supervise(n, f) for n, f in selected.items()), stop.wait())
