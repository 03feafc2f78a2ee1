"""Local vendor sandboxes: a small ASGI fake of a vendor's API served over real HTTP on a free
loopback port, with fault injection (5xx, 429 with Retry-After, slow answers).

Each plugin builds its sandbox app on this; tests, benchmarks and ``journeyhub demo`` use them.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from litestar import Response

from journeyhub.bus.embedded import free_port


@dataclass(frozen=True)
class Fault:
    status: int | None = None  # answer with this status instead of the real answer
    retry_after: float | None = None  # for 429 (and 503): the Retry-After header
    delay: float = 0.0  # answer this many seconds late (a timeout, when above the client's)
    body: dict[str, Any] | None = None


@dataclass
class Faults:
    """What the next calls suffer: a planned sequence first, then random chaos if set."""

    planned: list[Fault] = field(default_factory=list)
    chaos_rate: float = 0.0
    chaos_faults: tuple[Fault, ...] = (
        Fault(status=500),
        Fault(status=503),
        Fault(status=429, retry_after=1),
    )
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    injected: Counter[int] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def plan(self, *faults: Fault) -> None:
        with self._lock:
            self.planned.extend(faults)

    def chaos(self, rate: float, *faults: Fault, seed: int = 7) -> None:
        with self._lock:
            self.chaos_rate = rate
            if faults:
                self.chaos_faults = faults
            self.rng = random.Random(seed)

    def clear(self) -> None:
        with self._lock:
            self.planned.clear()
            self.chaos_rate = 0.0

    def next(self) -> Fault | None:
        with self._lock:
            if self.planned:
                return self.planned.pop(0)
            if self.chaos_rate and self.rng.random() < self.chaos_rate:
                return self.rng.choice(self.chaos_faults)
            return None

    async def apply(self) -> Response[Any] | None:
        """Call first in every sandbox handler: a Response to return instead, or None."""
        fault = self.next()
        if fault is None:
            return None
        if fault.delay:
            await asyncio.sleep(fault.delay)
        if fault.status is None:
            return None
        self.injected[fault.status] += 1
        headers = {}
        if fault.retry_after is not None:
            headers["retry-after"] = f"{fault.retry_after:g}"
        return Response(
            fault.body or {"error": f"injected {fault.status}"},
            status_code=fault.status,
            headers=headers,
        )


class SandboxServer:
    """Serve an ASGI app on 127.0.0.1:<free port> in a background thread."""

    def __init__(self, app: Any, port: int | None = None) -> None:
        self.app = app
        self.port = port or free_port()
        self._server = uvicorn.Server(
            uvicorn.Config(
                app,
                host="127.0.0.1",
                port=self.port,
                log_level="warning",
                access_log=False,
                lifespan="off",
            )
        )
        self._server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> SandboxServer:
        self._thread = threading.Thread(
            target=self._server.run, daemon=True, name=f"sandbox:{self.port}"
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"sandbox did not start on port {self.port}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
