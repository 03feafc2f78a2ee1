"""Plugin machinery: validation against the specs, routing of vendor calls to the owning plugin,
broadcast of observer hooks, and loading from entry points (with broken plugins reported)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pluggy
import pytest
from journeyhub.errors import ConnectorNotFound
from journeyhub.hookspecs import hookimpl
from journeyhub.model import ConnectorInfo, PushResult
from journeyhub.plugins import get_plugin_manager

PUSH_ARGS = {
    "task": None,
    "connection": None,
    "credentials": {},
    "http": None,
    "suppressed": frozenset(),
    "known": None,
}


def connector(vendor: str, *caps: str) -> ConnectorInfo:
    return ConnectorInfo(
        vendor=vendor, display_name=vendor.title(), capabilities=frozenset(caps), auth_kind="none"
    )


class AsyncPusher:
    def __init__(self, vendor: str) -> None:
        self.vendor = vendor
        self.calls: list[str] = []

    @hookimpl
    def journeyhub_connector(self) -> ConnectorInfo:
        return connector(self.vendor, "push")

    @hookimpl
    async def journeyhub_push(
        self, idempotency_key: str
    ) -> PushResult:  # takes fewer args: allowed
        self.calls.append(idempotency_key)
        return PushResult(detail=f"pushed by {self.vendor}")


class SyncPusher(AsyncPusher):
    @hookimpl
    def journeyhub_push(self, idempotency_key: str) -> PushResult:  # type: ignore[override]
        self.calls.append(idempotency_key)
        return PushResult(detail=f"sync push by {self.vendor}")


async def test_a_vendor_call_goes_to_the_one_plugin_that_owns_the_vendor() -> None:
    registry = get_plugin_manager(load_entry_points=False)
    alpha, beta, gamma = AsyncPusher("alpha"), AsyncPusher("beta"), SyncPusher("gamma")
    for plugin in (alpha, beta, gamma):
        registry.register(plugin, name=plugin.vendor)

    result = await registry.call("beta", "journeyhub_push", idempotency_key="k1", **PUSH_ARGS)
    assert result.detail == "pushed by beta"
    assert beta.calls == ["k1"] and alpha.calls == [] and gamma.calls == []

    result = await registry.call("gamma", "journeyhub_push", idempotency_key="k2", **PUSH_ARGS)
    assert result.detail == "sync push by gamma"
    assert alpha.calls == [] and beta.calls == ["k1"]


async def test_routing_is_not_confused_by_async_implementations_of_other_vendors() -> None:
    # With firstresult dispatch, alpha's coroutine (never None) would answer for beta.
    registry = get_plugin_manager(load_entry_points=False)
    registry.register(AsyncPusher("alpha"), name="alpha")

    class PullOnly:
        @hookimpl
        def journeyhub_connector(self) -> ConnectorInfo:
            return connector("beta", "pull")

    registry.register(PullOnly(), name="beta")
    with pytest.raises(ConnectorNotFound, match="does not implement journeyhub_push"):
        await registry.call("beta", "journeyhub_push", idempotency_key="k", **PUSH_ARGS)
    with pytest.raises(ConnectorNotFound, match="no connector plugin"):
        await registry.call("nobody", "journeyhub_push", idempotency_key="k", **PUSH_ARGS)


def test_a_misspelt_hook_is_refused_and_the_plugin_not_registered() -> None:
    registry = get_plugin_manager(load_entry_points=False)

    class Typo:
        @hookimpl
        def journeyhub_connector(self) -> ConnectorInfo:
            return connector("typo", "push")

        @hookimpl
        def journeyhub_pussh(self) -> None: ...

    with pytest.raises(pluggy.PluginValidationError, match="journeyhub_pussh"):
        registry.register(Typo(), name="typo")
    assert "typo" not in registry.connectors
    assert registry.pm.get_plugin("typo") is None


def test_an_unknown_argument_is_refused() -> None:
    registry = get_plugin_manager(load_entry_points=False)

    class BadArgs:
        @hookimpl
        def journeyhub_connector(self) -> ConnectorInfo:
            return connector("badargs", "push")

        @hookimpl
        def journeyhub_push(self, task, colour) -> None: ...  # type: ignore[no-untyped-def]

    with pytest.raises(pluggy.PluginValidationError, match="colour"):
        registry.register(BadArgs(), name="badargs")


def test_a_plugin_must_describe_the_vendor_it_is_registered_as() -> None:
    registry = get_plugin_manager(load_entry_points=False)
    with pytest.raises(TypeError, match="describes vendor 'alpha' but is registered as 'beta'"):
        registry.register(AsyncPusher("alpha"), name="beta")


def test_observers_are_broadcast_and_one_failing_does_not_stop_the_others() -> None:
    registry = get_plugin_manager(load_entry_points=False)
    seen: list[str] = []

    class Broken(AsyncPusher):
        @hookimpl
        def journeyhub_trigger_emitted(self, trigger) -> None:  # type: ignore[no-untyped-def]
            raise RuntimeError("observer bug")

    class Watcher(AsyncPusher):
        @hookimpl
        def journeyhub_trigger_emitted(self, trigger) -> None:  # type: ignore[no-untyped-def]
            seen.append(f"{self.vendor}:{trigger}")

    registry.register(Broken("broken"), name="broken")
    registry.register(Watcher("w1"), name="w1")
    registry.register(Watcher("w2"), name="w2")
    registry.broadcast("journeyhub_trigger_emitted", trigger="t1")
    assert sorted(seen) == ["w1:t1", "w2:t1"]
    with pytest.raises(ValueError, match="broadcast"):
        import asyncio

        asyncio.run(registry.call("w1", "journeyhub_trigger_emitted", trigger="t"))


def test_the_default_webhook_connector_is_registered_through_the_same_hooks() -> None:
    registry = get_plugin_manager(load_entry_points=False)
    assert "webhook" in registry.connectors
    assert registry.implements("webhook", "journeyhub_push")
    assert registry.implements("webhook", "journeyhub_verify_webhook")
    assert registry.connectors["webhook"].distribution is None


def test_only_named_plugins_load() -> None:
    registry = get_plugin_manager(only=("stripe",), load_entry_points=True)
    assert "webhook" not in registry.connectors
    assert set(registry.connectors) <= {"stripe"}


# --- entry points: a real dist-info on the path, in a fresh interpreter -------------------------

GOOD_PLUGIN = """
from journeyhub.hookspecs import hookimpl
from journeyhub.model import ConnectorInfo, PushResult

@hookimpl
def journeyhub_connector():
    return ConnectorInfo(vendor="acme", display_name="Acme CRM",
                         capabilities=frozenset({"push"}), auth_kind="api_key")

@hookimpl
async def journeyhub_push(idempotency_key):
    return PushResult(detail="acme " + idempotency_key)
"""
BROKEN_IMPORT = "raise ImportError('acme_broken needs libfoo')\n"
TYPO_PLUGIN = """
from journeyhub.hookspecs import hookimpl
from journeyhub.model import ConnectorInfo

@hookimpl
def journeyhub_connector():
    return ConnectorInfo(vendor="typo", display_name="Typo",
                         capabilities=frozenset({"push"}), auth_kind="none")

@hookimpl
def journeyhub_pushh(task):
    return None
"""


def install_distribution(site: Path) -> Path:
    """Write a package and its dist-info, as pip would, declaring three connectors."""
    (site / "jh_acme").mkdir(parents=True)
    (site / "jh_acme" / "__init__.py").write_text("")
    (site / "jh_acme" / "good.py").write_text(GOOD_PLUGIN)
    (site / "jh_acme" / "broken.py").write_text(BROKEN_IMPORT)
    (site / "jh_acme" / "typo.py").write_text(TYPO_PLUGIN)
    dist_info = site / "journeyhub_acme-1.2.3.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: journeyhub-acme\nVersion: 1.2.3\n"
    )
    (dist_info / "entry_points.txt").write_text(
        "[journeyhub.connectors]\n"
        "acme = jh_acme.good\n"
        "acme_broken = jh_acme.broken\n"
        "typo = jh_acme.typo\n"
    )
    (dist_info / "RECORD").write_text("")
    return dist_info


PROBE = textwrap.dedent(
    """
    import asyncio, json
    from journeyhub.plugins import get_plugin_manager
    r = get_plugin_manager()
    out = {"loaded": {n: c.version for n, c in r.connectors.items()},
           "errors": {e.name: e.reason for e in r.errors}}
    if "acme" in r.connectors:
        call = r.call("acme", "journeyhub_push", idempotency_key="k", task=None,
                      connection=None, credentials={}, http=None, suppressed=frozenset(),
                      known=None)
        out["push"] = asyncio.run(call).detail
    print(json.dumps(out))
    """
)


def probe(site: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(site), "JOURNEYHUB_LOG_FORMAT": "json"}
    env.pop("JOURNEYHUB_PLUGINS", None)
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_installing_a_distribution_adds_its_connector_and_uninstalling_removes_it(
    tmp_path: Path,
) -> None:
    site = tmp_path / "site-packages"
    site.mkdir()
    before = probe(site)
    assert "acme" not in before["loaded"]

    dist_info = install_distribution(site)
    installed = probe(site)
    assert installed["loaded"]["acme"] == "1.2.3"
    assert installed["push"] == "acme k"
    # the broken ones are reported by name and reason, and the others still load
    assert "acme_needs" not in installed["errors"]
    assert "ImportError" in installed["errors"]["acme_broken"]
    assert "libfoo" in installed["errors"]["acme_broken"]
    assert "journeyhub_pushh" in installed["errors"]["typo"]
    assert "webhook" in installed["loaded"]
    assert "typo" not in installed["loaded"]

    # uninstall, as pip does: the dist-info and the files go
    import shutil

    shutil.rmtree(dist_info)
    shutil.rmtree(site / "jh_acme")
    after = probe(site)
    assert "acme" not in after["loaded"]
    assert "acme_broken" not in after["errors"]


def test_plugins_list_shows_load_errors(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    install_distribution(site)
    env = {**os.environ, "PYTHONPATH": str(site), "COLUMNS": "200"}
    env.pop("JOURNEYHUB_PLUGINS", None)
    done = subprocess.run(
        [sys.executable, "-m", "journeyhub", "plugins", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "acme" in done.stdout and "1.2.3" in done.stdout
    assert "failed to load acme_broken" in done.stdout
    assert "libfoo" in done.stdout


def test_trace_hooks_logs_every_hook_call(capsys: pytest.CaptureFixture[str]) -> None:
    from journeyhub.logs import configure_logging

    configure_logging("json", "info")
    registry = get_plugin_manager(load_entry_points=False, trace=True)
    registry.register(AsyncPusher("alpha"), name="alpha")
    import asyncio

    asyncio.run(registry.call("alpha", "journeyhub_push", idempotency_key="k", **PUSH_ARGS))
    lines = [
        json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")
    ]
    calls = [line for line in lines if line["event"] == "hook_call"]
    assert any(c["hook"] == "journeyhub_push" and c["plugins"] == ["alpha"] for c in calls)
    assert any(line["event"] == "hook_return" for line in lines)
