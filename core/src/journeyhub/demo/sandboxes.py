"""The demo's vendors: every installed connector's sandbox, and a small journey engine.

The sandboxes are found through the ``journeyhub.sandboxes`` entry points
(:func:`journeyhub.testing.sandbox.find_sandboxes`): the kernel imports no plugin. A plugin that
is not installed is not seen; one whose connector did not load, or whose sandbox did not, is
left out with a note instead of stopping the demo. The journey engine
(:mod:`journeyhub.demo.engine`) is started with them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from journeyhub.demo.engine import JourneyEngine
from journeyhub.plugins import PluginRegistry
from journeyhub.testing.sandbox import VendorSandbox, find_sandboxes

ENGINE = "webhook"  # the journey engine's connector
ENGINE_LABEL = "Journey engine"


@dataclass
class Sandboxes:
    """The running sandboxes by connector name, and what was left out and why."""

    vendors: dict[str, VendorSandbox] = field(default_factory=dict)  # started
    engine: JourneyEngine | None = None
    skipped: dict[str, str] = field(default_factory=dict)  # connector → reason
    labels: dict[str, str] = field(default_factory=dict)  # connector → what people call it
    order: list[str] = field(default_factory=list)  # every connector seen, as the demo lists them

    def get(self, vendor: str) -> Any:
        """The running sandbox of ``vendor`` (its vendor's own API), or None."""
        found = self.vendors.get(vendor)
        return None if found is None else found.sandbox

    def __contains__(self, vendor: str) -> bool:
        return vendor in self.vendors

    def label(self, vendor: str) -> str:
        if vendor == ENGINE:
            return ENGINE_LABEL
        return self.labels.get(vendor, vendor)

    def listed(self) -> list[str]:
        """Every connector seen, running or left out, in the demo's order."""
        return [v for v in self.order if v in self.vendors or v in self.skipped]

    def urls(self) -> list[tuple[str, str]]:
        out = [(self.label(k), v.url) for k, v in self.vendors.items()]
        if self.engine is not None:
            out.append((self.label(ENGINE), self.engine.url))
        return out

    async def stop(self) -> None:
        """Stop every server side by side (each waits for its thread)."""
        parts: list[Any] = [*self.vendors.values()]
        if self.engine is not None:
            parts.append(self.engine)

        def stop_one(part: Any) -> None:
            with contextlib.suppress(Exception):  # one failing to stop must not keep the rest up
                part.stop()

        await asyncio.gather(*(asyncio.to_thread(stop_one, part) for part in parts))


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text


def ordered(names: Iterable[str], first: Iterable[str] = ()) -> list[str]:
    """``names``: those in ``first`` in its order, then the others alphabetically."""
    rank = {name: n for n, name in enumerate(first)}
    return sorted(set(names), key=lambda name: (rank.get(name, len(rank)), name))


def plan(
    registry: PluginRegistry, wanted: Iterable[str] | None = None, first: Iterable[str] = ()
) -> Sandboxes:
    """Which sandboxes can run (not started yet), with every connector's label, and why the
    others cannot; listed with the connectors in ``first`` first, in its order."""
    found = find_sandboxes()
    order = ordered({*found.sandboxes, *found.errors}, first)
    boxes = Sandboxes(labels={k: s.label for k, s in found.sandboxes.items()}, order=order)
    errors = {e.name: e.reason for e in registry.errors}
    only = set(wanted) if wanted is not None else None
    for vendor in order:
        if only is not None and vendor not in only:
            boxes.skipped[vendor] = "not in JOURNEYHUB_PLUGINS"
        elif vendor not in registry.connectors:
            reason = errors.get(vendor)
            boxes.skipped[vendor] = (
                f"connector failed to load: {_first_line(reason)}" if reason else "no connector"
            )
        elif vendor in found.errors:
            boxes.skipped[vendor] = f"no sandbox ({_first_line(found.errors[vendor])})"
        else:
            boxes.vendors[vendor] = found.sandboxes[vendor]
    return boxes


async def start(
    registry: PluginRegistry, wanted: Iterable[str] | None = None, first: Iterable[str] = ()
) -> Sandboxes:
    """Start every sandbox that can run, and the journey engine, side by side."""
    boxes = plan(registry, wanted, first)
    ready = dict(boxes.vendors)
    boxes.vendors.clear()

    def start_all() -> None:
        # One after the other in one thread: building the apps imports modules lazily, and
        # imports racing in several threads can see half-initialised modules.
        boxes.engine = JourneyEngine().start()
        for key, sandbox in ready.items():
            try:
                boxes.vendors[key] = sandbox.start()
            except Exception as exc:
                boxes.skipped[key] = f"sandbox failed to start: {type(exc).__name__}: {exc}"

    try:
        await asyncio.to_thread(start_all)
    except BaseException:
        await boxes.stop()
        raise
    return boxes
