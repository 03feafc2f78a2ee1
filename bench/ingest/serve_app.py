"""Bench-only launcher: serves the real gateway app, or a bare Litestar no-op POST endpoint,
on exactly the uvicorn settings of ``journeyhub.serve._uvicorn_server``; or runs some of the
worker loops only.

Used by run.py for the bare endpoint (always), for the gateway when several processes share
one port (SO_REUSEPORT) or it is profiled, and for ``--worker-loops``. Not part of the product.

    python bench/ingest/serve_app.py {ingress|bare|raw} --port P [--reuse-port] [--ready-file F]
        [--profile FILE]
    python bench/ingest/serve_app.py worker --loops inbound[,trigger-router,...]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import socket
from pathlib import Path
from typing import Any

import uvicorn
from journeyhub.serve import run_process
from litestar import Litestar, Request, post


def uvicorn_config(app: Any, host: str, port: int) -> uvicorn.Config:
    """The same keyword arguments as ``journeyhub.serve._uvicorn_server`` (keep in step)."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        http="auto",
        timeout_graceful_shutdown=10,
    )


@post("/noop", status_code=200)
async def noop(request: Request) -> dict[str, bool]:
    await request.body()  # read the body, as any POST endpoint does
    return {"received": True}


def bare_app() -> Litestar:
    return Litestar(route_handlers=[noop], debug=False)


async def raw_app(scope: Any, receive: Any, send: Any) -> None:
    """Diagnostic: the same no-op as plain ASGI, to tell the server's cost from Litestar's."""
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": b'{"received":true}'})


def listening_socket(host: str, port: int, reuse_port: bool) -> socket.socket:
    # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY on accepted sockets only when the
    # listening socket says IPPROTO_TCP; with proto 0 every response stalls ~40 ms (Nagle +
    # delayed ACK), as it would with uvicorn's own bind_socket (--workers, --fd).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


async def worker(args: argparse.Namespace) -> None:
    """``journeyhub worker`` with only ``--loops`` running (``journeyhub.serve.run``)."""
    from journeyhub.hub import Hub
    from journeyhub.logs import configure_logging
    from journeyhub.settings import load_settings
    from journeyhub.workers.runner import run_workers

    settings = load_settings()
    configure_logging(settings.log_format, settings.log_level)
    hub = await Hub.start(settings, run_migrations=False, provision=False)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await run_workers(hub, stop, names=args.loops.split(","))
    finally:
        await hub.close()


async def main(args: argparse.Namespace) -> None:
    if args.app == "worker":
        await worker(args)
        return
    hub = None
    if args.app == "ingress":
        from journeyhub.gateway.app import create_app
        from journeyhub.hub import Hub
        from journeyhub.logs import configure_logging
        from journeyhub.settings import load_settings

        settings = load_settings()
        configure_logging(settings.log_format, settings.log_level)
        # run.py has migrated the store and provisioned the streams already.
        hub = await Hub.start(settings, run_migrations=False, provision=False)
        app: Any = create_app(hub)
    elif args.app == "raw":
        app = raw_app
    else:
        app = bare_app()

    server = uvicorn.Server(uvicorn_config(app, args.host, args.port))
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))

    async def mark_ready() -> None:
        while not server.started:  # noqa: ASYNC110 - uvicorn offers no event for it
            await asyncio.sleep(0.02)
        if args.ready_file:
            Path(args.ready_file).write_text("ready")  # noqa: ASYNC240 - once, tiny
        if PROFILER is not None:  # profile the serving only, not the imports and start-up
            PROFILER.enable()

    sock = listening_socket(args.host, args.port, args.reuse_port)
    ready = asyncio.create_task(mark_ready())
    try:
        await server.serve(sockets=[sock])
    finally:
        ready.cancel()
        if hub is not None:
            await hub.close()


PROFILER: Any = None


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("app", choices=["ingress", "bare", "raw", "worker"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--loops", default="inbound", help="worker: the loops to run")
    parser.add_argument("--reuse-port", action="store_true")
    parser.add_argument("--ready-file")
    parser.add_argument("--profile", help="write cProfile stats of this process to FILE at exit")
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.profile:
        import cProfile

        PROFILER = cProfile.Profile()
        try:
            run_process(main(arguments))
        finally:
            PROFILER.disable()
            PROFILER.dump_stats(arguments.profile)
    else:
        with contextlib.suppress(KeyboardInterrupt):
            run_process(main(arguments))
