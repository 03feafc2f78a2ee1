"""Local vendor sandboxes: a small ASGI fake of a vendor's API served over real HTTP on a free
loopback port, with fault injection (5xx, 429 with Retry-After, slow answers).

Each plugin builds its sandbox app on this; tests, benchmarks and ``journeyhub demo`` use them.
A plugin offers its sandbox to the kernel through the ``journeyhub.sandboxes`` entry-point group
(see :class:`VendorSandbox`): the kernel never imports a plugin to find one.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Protocol

import httpx
import uvicorn
from litestar import Response

from journeyhub import signing
from journeyhub.bus.embedded import free_port
from journeyhub.embedded_server import embedded_server


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
        self._server = embedded_server(
            uvicorn.Config(
                app,
                host="127.0.0.1",
                port=self.port,
                log_level="warning",
                access_log=False,
                lifespan="off",
            )
        )
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


# --- a plugin's sandbox, found through its entry point -----------------------------------------

SANDBOX_ENTRY_POINT_GROUP = "journeyhub.sandboxes"


class VendorSandbox(Protocol):
    """A vendor's sandbox as ``journeyhub demo`` and the kernel's tests use it, knowing nothing
    of the vendor. A connector distribution offers one through an entry point of the group
    ``journeyhub.sandboxes``, named after its vendor, whose target (called with no arguments)
    returns a new one, not started; :class:`SandboxDemo` builds one in a few lines::

        [project.entry-points."journeyhub.sandboxes"]
        acme = "journeyhub_acme.sandbox:demo"

    ``webhook`` sends what the vendor would send the hub when something happens on its side,
    named after the trigger the hub should make of it (the hub's trigger types), with
    generic data:

    - ``payment_received``: ``amount`` (minor units), ``currency``, ``email``, ``metadata``
      (``client_id``, ``journey_instance_id``), ``description``;
    - ``email_delivered``, ``email_opened``, …: ``email_id``, the vendor's id of an email it
      sent.
    """

    label: str  # what people call the vendor: "Stripe", "Tave (VSCO Workspace)"
    secrets: Collection[str]  # the sandbox's own fixed credentials (for leak checks)
    webhook_kinds: Collection[str]  # what ``webhook`` can send (may be empty)

    @property
    def sandbox(self) -> Any:
        """The running sandbox, with its vendor's own API (for inspection); after start()."""
        ...

    @property
    def url(self) -> str: ...

    def start(self) -> VendorSandbox: ...

    def stop(self) -> None: ...

    def config(self) -> dict[str, Any]:
        """A connection's ``config`` that points the connector at this sandbox."""
        ...

    def credentials(self) -> dict[str, Any]:
        """That connection's credentials (with the webhook secret, when it sends webhooks)."""
        ...

    async def webhook(
        self, kind: str, data: Mapping[str, Any], url: str, *, secret: str | None = None
    ) -> httpx.Response:
        """Send the hub at ``url`` the vendor's signed webhook for ``kind``; the answer.
        ``secret`` signs it instead of the connection's webhook secret (to be refused)."""
        ...


Sender = Callable[[Any, Mapping[str, Any], str, str, httpx.AsyncClient], Awaitable[Any]]


class SandboxDemo:
    """A :class:`VendorSandbox` made of a plugin's sandbox class and a few functions of a
    running sandbox::

        def demo() -> SandboxDemo:
            return SandboxDemo(
                "Acme CRM",
                AcmeSandbox,
                config=lambda sb: {"api_base": sb.url},
                credentials=lambda sb: {"api_key": sb.api_key},
                secrets=(API_KEY,),
            )

    ``webhooks`` maps a kind (see :class:`VendorSandbox`) to ``sender(sandbox, data, url,
    secret, http)``, which posts the vendor's webhook with ``http`` (an ``httpx.AsyncClient``)
    and returns the answer. A sandbox that sends webhooks makes a webhook secret of its own
    and adds it to the credentials under ``webhook_secret_key``.
    """

    def __init__(
        self,
        label: str,
        make: Callable[[], Any],
        *,
        config: Callable[[Any], Mapping[str, Any]],
        credentials: Callable[[Any], Mapping[str, Any]] | None = None,
        webhooks: Mapping[str, Sender] | None = None,
        secrets: Collection[str] = (),
        webhook_secret_key: str = "webhook_secret",  # noqa: S107 (a key's name)
    ) -> None:
        self.label = label
        self.make = make  # a new sandbox, not started (its class, usually)
        self.config_of = config
        self.credentials_of = credentials or (lambda sandbox: {})
        self.webhooks = dict(webhooks or {})
        self.secrets = tuple(secrets)
        self.webhook_secret_key = webhook_secret_key
        self.webhook_secret = signing.new_secret() if self.webhooks else ""
        self._sandbox: Any = None

    def __repr__(self) -> str:
        return f"SandboxDemo({self.label!r})"

    @property
    def webhook_kinds(self) -> Collection[str]:
        return tuple(self.webhooks)

    @property
    def sandbox(self) -> Any:
        if self._sandbox is None:
            raise RuntimeError(f"the {self.label} sandbox is not started")
        return self._sandbox

    @property
    def url(self) -> str:
        return str(getattr(self.sandbox, "url", ""))

    def start(self) -> SandboxDemo:
        if self._sandbox is None:
            self._sandbox = self.make().start()
        return self

    def stop(self) -> None:
        if self._sandbox is not None:
            self._sandbox.stop()

    def config(self) -> dict[str, Any]:
        return dict(self.config_of(self.sandbox))

    def credentials(self) -> dict[str, Any]:
        found = dict(self.credentials_of(self.sandbox))
        if self.webhooks:
            found[self.webhook_secret_key] = self.webhook_secret
        return found

    async def webhook(
        self, kind: str, data: Mapping[str, Any], url: str, *, secret: str | None = None
    ) -> httpx.Response:
        sender = self.webhooks.get(kind)
        if sender is None:
            raise LookupError(f"the {self.label} sandbox sends no {kind!r} webhook")
        async with httpx.AsyncClient(timeout=10) as http:
            return await sender(self.sandbox, data, url, secret or self.webhook_secret, http)


@dataclass
class FoundSandboxes:
    """What ``journeyhub.sandboxes`` offers: {vendor: sandbox, not started}, and {vendor: why
    its entry point could not be loaded}."""

    sandboxes: dict[str, VendorSandbox] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def find_sandboxes(only: Iterable[str] | None = None) -> FoundSandboxes:
    """Every installed plugin's sandbox (or those named in ``only``), through the entry points;
    one that fails to load is reported, not raised."""
    wanted = set(only) if only is not None else None
    found = FoundSandboxes()
    for ep in sorted(entry_points(group=SANDBOX_ENTRY_POINT_GROUP), key=lambda e: e.name):
        if wanted is not None and ep.name not in wanted:
            continue
        if ep.name in found.sandboxes:
            continue  # the same distribution seen twice on the path
        try:
            sandbox = ep.load()()
        except Exception as exc:
            found.errors[ep.name] = f"{type(exc).__name__}: {exc}"
            continue
        missing = [name for name in _SANDBOX_MEMBERS if not hasattr(type(sandbox), name)]
        if missing or not isinstance(getattr(sandbox, "label", None), str):
            what = ", ".join(missing or ["label"])
            found.errors[ep.name] = f"{ep.value} gave a {type(sandbox).__name__}, without {what}"
            continue
        found.sandboxes[ep.name] = sandbox
    return found


# What find_sandboxes checks on the class (``isinstance`` on the Protocol would read the
# properties, which need a started sandbox).
_SANDBOX_MEMBERS = ("sandbox", "url", "start", "stop", "config", "credentials", "webhook")
