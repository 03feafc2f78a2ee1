"""Observer hooks: dispatched through pluggy (traced), one failing observer isolated, async
observers refused at load, and a plugin that only observes loads as an observer."""

from __future__ import annotations

import json

import pytest
from journeyhub.hookspecs import hookimpl
from journeyhub.logs import configure_logging
from journeyhub.plugins import get_plugin_manager


class Watcher:
    def __init__(self) -> None:
        self.seen: list[str] = []

    @hookimpl
    def journeyhub_trigger_emitted(self, trigger) -> None:  # type: ignore[no-untyped-def]
        self.seen.append(trigger)


def test_a_plugin_that_only_observes_loads_and_is_called() -> None:
    registry = get_plugin_manager(load_entry_points=False)
    watcher = Watcher()
    registry.register(watcher, name="audit-log", distribution=None)
    assert "audit-log" in registry.observers and "audit-log" not in registry.connectors
    registry.broadcast("journeyhub_trigger_emitted", trigger="t1")
    assert watcher.seen == ["t1"]
    registry.unregister("audit-log")
    registry.broadcast("journeyhub_trigger_emitted", trigger="t2")
    assert watcher.seen == ["t1"] and "audit-log" not in registry.observers


def test_an_async_observer_is_refused_at_load_with_a_clear_message() -> None:
    class AsyncWatcher:
        @hookimpl
        async def journeyhub_trigger_emitted(self, trigger) -> None:  # type: ignore[no-untyped-def]
            pass

    registry = get_plugin_manager(load_entry_points=False)
    with pytest.raises(TypeError, match="observer hook: implement it with a plain def"):
        registry.register(AsyncWatcher(), name="late")
    assert "late" not in registry.observers
    assert registry.pm.get_plugin("late") is None


def test_a_plugin_that_is_no_connector_may_not_implement_vendor_hooks() -> None:
    class Stray:
        @hookimpl
        def journeyhub_push(self, task) -> None:  # type: ignore[no-untyped-def]
            pass

    class Empty:
        pass

    registry = get_plugin_manager(load_entry_points=False)
    with pytest.raises(TypeError, match="only a connector may implement vendor hooks"):
        registry.register(Stray(), name="stray")
    with pytest.raises(TypeError, match="implements no journeyhub hook"):
        registry.register(Empty(), name="empty")


def test_observer_calls_are_traced(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("json", "info")
    registry = get_plugin_manager(load_entry_points=False, trace=True)
    registry.register(Watcher(), name="audit-log")
    capsys.readouterr()
    registry.broadcast("journeyhub_trigger_emitted", trigger="t1")
    lines = [json.loads(x) for x in capsys.readouterr().err.splitlines() if x.startswith("{")]
    calls = [x for x in lines if x["event"] == "hook_call"]
    assert [(c["hook"], c["plugins"]) for c in calls] == [
        ("journeyhub_trigger_emitted", ["audit-log"])
    ]
