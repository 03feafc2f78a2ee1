"""The demo's vendors: every installed connector's sandbox, and a small journey engine.

Each plugin's sandbox is imported on its own, so a plugin that is not installed (or whose
connector did not load) is left out with a note instead of stopping the demo. The journey
engine is the receiving end of the built-in ``webhook`` connector: it verifies each request's
Standard Webhooks signature with the ``standardwebhooks`` library, as a real engine would, and
keeps the triggers it accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from litestar import Litestar, Request, Response, post
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from journeyhub import signing
from journeyhub.plugins import PluginRegistry
from journeyhub.testing.sandbox import SandboxServer


@dataclass(frozen=True)
class Vendor:
    key: str  # the connector's name
    label: str  # what people call it
    module: str  # where its sandbox lives
    cls: str  # the sandbox class (else the module's only ``*Sandbox`` class, if it has one)


VENDORS: tuple[Vendor, ...] = (
    Vendor("tave", "Tave (VSCO Workspace)", "journeyhub_tave.sandbox", "TaveSandbox"),
    Vendor("stripe", "Stripe", "journeyhub_stripe.sandbox", "StripeSandbox"),
    Vendor("resend", "Resend", "journeyhub_resend.sandbox", "ResendSandbox"),
    Vendor("gcal", "Google Calendar", "journeyhub_gcal.sandbox", "GcalSandbox"),
    Vendor("lightblue", "Light Blue", "journeyhub_lightblue.sandbox", "LightBlueSandbox"),
    Vendor("honeybook", "HoneyBook (Zapier)", "journeyhub_honeybook.sandbox", "HoneyBookSandbox"),
    Vendor(
        "seventeenhats",
        "17hats (Zapier)",
        "journeyhub_seventeenhats.sandbox",
        "SeventeenHatsSandbox",
    ),
    Vendor("studioninja", "Studio Ninja", "journeyhub_studioninja.sandbox", "StudioNinjaSandbox"),
)
LABELS = {v.key: v.label for v in VENDORS} | {"webhook": "Journey engine"}


def label(vendor: str) -> str:
    return LABELS.get(vendor, vendor)


class JourneyEngine:
    """Stands in for the journey engine: ``POST /hooks/journeyhub`` takes triggers signed per
    Standard Webhooks with the connection's secret; a retry (same ``webhook-id``) is kept once."""

    PATH = "/hooks/journeyhub"

    def __init__(self, secret: str | None = None) -> None:
        self.secret = secret or signing.new_secret()
        self.received: list[dict[str, Any]] = []  # verified payloads, first delivery of each
        self.rejected = 0
        self.repeats = 0
        self._seen: set[str] = set()
        self._lock = threading.Lock()
        verifier = Webhook(self.secret)

        @post(self.PATH, status_code=200)
        async def receive(request: Request[Any, Any, Any]) -> Response[Any]:
            body = await request.body()
            headers = {k.lower(): v for k, v in request.headers.items()}
            try:
                payload = verifier.verify(body, headers)
            except WebhookVerificationError:
                with self._lock:
                    self.rejected += 1
                return Response({"error": "bad signature"}, status_code=401)
            with self._lock:
                msg_id = headers.get("webhook-id", "")
                if msg_id in self._seen:
                    self.repeats += 1
                else:
                    self._seen.add(msg_id)
                    self.received.append(payload)
            return Response({"received": True})

        self.server = SandboxServer(Litestar([receive], openapi_config=None, debug=False))

    @property
    def url(self) -> str:
        return self.server.url + self.PATH

    def start(self) -> JourneyEngine:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def triggers(self, type_: str | None = None) -> list[dict[str, Any]]:
        """Triggers received (journey events, which carry no ``source_event_id``, left out)."""
        with self._lock:
            found = [p for p in self.received if isinstance(p, dict) and "source_event_id" in p]
        return [p for p in found if type_ is None or p.get("type") == type_]

    def has(self, trigger_id: str) -> bool:
        return any(p.get("id") == trigger_id for p in self.triggers())


@dataclass
class Sandboxes:
    """The running sandboxes by connector name, and what was left out and why."""

    running: dict[str, Any] = field(default_factory=dict)
    engine: JourneyEngine | None = None
    skipped: dict[str, str] = field(default_factory=dict)  # connector → reason

    def get(self, vendor: str) -> Any | None:
        return self.running.get(vendor)

    def __contains__(self, vendor: str) -> bool:
        return vendor in self.running

    def urls(self) -> list[tuple[str, str]]:
        out = [(label(k), str(getattr(s, "url", ""))) for k, s in self.running.items()]
        if self.engine is not None:
            out.append((label("webhook"), self.engine.url))
        return out

    async def stop(self) -> None:
        """Stop every server side by side (each waits for its thread)."""
        parts: list[Any] = [*self.running.values()]
        if self.engine is not None:
            parts.append(self.engine)

        def stop_one(part: Any) -> None:
            with contextlib.suppress(Exception):  # one failing to stop must not keep the rest up
                part.stop()

        await asyncio.gather(*(asyncio.to_thread(stop_one, part) for part in parts))


def _sandbox_class(module: Any, vendor: Vendor) -> type | None:
    found = getattr(module, vendor.cls, None)
    if isinstance(found, type):
        return found
    classes = [
        value
        for name, value in vars(module).items()
        if name.endswith("Sandbox")
        and isinstance(value, type)
        and value.__module__ == module.__name__
    ]
    return classes[0] if len(classes) == 1 else None


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text


def plan(
    registry: PluginRegistry, wanted: Iterable[str] | None = None
) -> tuple[dict[str, type], dict[str, str]]:
    """Which sandboxes can run: {connector: sandbox class}, and {connector: why not}."""
    classes: dict[str, type] = {}
    skipped: dict[str, str] = {}
    errors = {e.name: e.reason for e in registry.errors}
    only = set(wanted) if wanted is not None else None
    for vendor in VENDORS:
        if only is not None and vendor.key not in only:
            skipped[vendor.key] = "not in JOURNEYHUB_PLUGINS"
            continue
        if vendor.key not in registry.connectors:
            reason = errors.get(vendor.key)
            skipped[vendor.key] = (
                f"connector failed to load: {_first_line(reason)}" if reason else "not installed"
            )
            continue
        try:
            module = importlib.import_module(vendor.module)
        except ImportError as exc:
            skipped[vendor.key] = f"no sandbox ({exc.name or vendor.module} not found)"
            continue
        cls = _sandbox_class(module, vendor)
        if cls is None:
            skipped[vendor.key] = f"{vendor.module} has no sandbox class"
            continue
        classes[vendor.key] = cls
    return classes, skipped


async def start(registry: PluginRegistry, wanted: Iterable[str] | None = None) -> Sandboxes:
    """Start every sandbox that can run, and the journey engine, side by side."""
    classes, skipped = plan(registry, wanted)
    boxes = Sandboxes(skipped=skipped)

    def start_all() -> None:
        # One after the other in one thread: building the apps imports modules lazily, and
        # imports racing in several threads can see half-initialised modules.
        boxes.engine = JourneyEngine().start()
        for key, cls in classes.items():
            try:
                boxes.running[key] = cls().start()
            except Exception as exc:
                boxes.skipped[key] = f"sandbox failed to start: {type(exc).__name__}: {exc}"

    try:
        await asyncio.to_thread(start_all)
    except BaseException:
        await boxes.stop()
        raise
    return boxes
