"""A uvicorn server embedded in a process that owns its signals.

While it serves, uvicorn installs its own SIGINT and SIGTERM handlers (``capture_signals``)
and re-raises the signal after it stops. The hub (``serve``, the demo, the test fixtures)
stops everything in its own order on those signals, so its servers must leave them alone.
"""

from __future__ import annotations

import contextlib

import uvicorn


def embedded_server(config: uvicorn.Config) -> uvicorn.Server:
    server = uvicorn.Server(config)
    setattr(server, "capture_signals", contextlib.nullcontext)  # noqa: B010 (a method)
    return server
