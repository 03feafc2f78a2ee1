"""Process entry points: the all-in-one ``serve``, the ``gateway`` and the ``worker``."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Coroutine
from typing import Any, TypeVar

import uvicorn

from journeyhub import tracing
from journeyhub.embedded_server import embedded_server
from journeyhub.gateway.app import create_app
from journeyhub.hub import Hub
from journeyhub.logs import get_logger
from journeyhub.settings import Settings
from journeyhub.workers.runner import run_workers

log = get_logger(__name__)
T = TypeVar("T")


def run_process(main: Coroutine[Any, Any, T]) -> T:
    """Run a long-lived process (gateway, worker) on uvloop where it is installed: the
    ingest benchmark (bench/ingest) measured it, with httptools, as the larger share of the
    gateway's throughput. Plain asyncio elsewhere (Windows)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def _uvicorn_server(hub: Hub) -> uvicorn.Server:
    config = uvicorn.Config(
        create_app(hub),
        host=hub.settings.host,
        port=hub.settings.port,
        log_level="warning",
        access_log=False,
        http="auto",  # httptools (a dependency) where it builds, else h11
        lifespan="off",  # the Hub is started and stopped around the server
        timeout_graceful_shutdown=10,
    )
    return embedded_server(config)


async def run(settings: Settings, *, gateway: bool = True, workers: bool = True) -> None:
    """Start the hub, then the gateway and/or the workers, until SIGINT or SIGTERM."""
    tracing.setup_from_env()  # off unless OTEL_* turns it on
    hub = await Hub.start(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    tasks: list[asyncio.Task[None]] = []
    server: uvicorn.Server | None = None
    try:
        if workers:
            tasks.append(asyncio.create_task(run_workers(hub, stop), name="workers"))
        if gateway:
            server = _uvicorn_server(hub)
            tasks.append(asyncio.create_task(server.serve(), name="gateway"))
            log.info(
                "gateway_listening",
                url=f"http://{settings.host}:{settings.port}",
                embedded_nats=hub.embedded_nats is not None,
                database="sqlite" if settings.is_sqlite else "postgresql",
            )
        done_waiter = asyncio.create_task(stop.wait())
        finished, _ = await asyncio.wait([done_waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
        if not stop.is_set():
            # A part ended on its own: that is a failure (the port taken, a crash).
            for task in finished:
                if task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
            raise RuntimeError(f"the gateway could not listen on {settings.host}:{settings.port}")
    finally:
        stop.set()
        if server is not None:
            server.should_exit = True
        for task in tasks:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(task, timeout=15)
        await hub.close()
        tracing.shutdown()  # exports the spans still buffered
        log.info("stopped")
