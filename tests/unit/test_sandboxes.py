"""A kernel that knows no vendor: the plugins' sandboxes reach the kernel (the demo, the tests'
leak check) only through the ``journeyhub.sandboxes`` entry points, and nothing under
``core/src`` imports a plugin; nor does a test module at import time (so the kernel's tests
that need no plugin run with none installed)."""

from __future__ import annotations

import ast
import sys
import types
from collections.abc import Iterator, Mapping
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest
from journeyhub.demo import sandboxes as demo_sandboxes
from journeyhub.demo.sandboxes import Sandboxes, plan
from journeyhub.demo.scenario import CHOICES, Scenario
from journeyhub.testing import sandbox as sandbox_module
from journeyhub.testing.sandbox import (
    SANDBOX_ENTRY_POINT_GROUP,
    FoundSandboxes,
    SandboxDemo,
    find_sandboxes,
)

ROOT = Path(__file__).resolve().parents[2]
KERNEL = ROOT / "core" / "src" / "journeyhub"
TESTS = ROOT / "tests"


# --- nothing imports a plugin where it must not ---------------------------------------------------


def plugin_imports(tree: ast.AST, *, top_level_only: bool = False) -> list[tuple[int, str]]:
    """(line, module) of every import of a ``journeyhub_*`` package in ``tree`` (outside an
    ``if TYPE_CHECKING:`` block), by statement or by ``importlib.import_module("…")`` /
    ``__import__("…")``; with ``top_level_only``, those that run when the module is imported
    (not inside a function)."""
    found: list[tuple[int, str]] = []

    def plugin(name: str | None) -> bool:
        return bool(name) and name.split(".")[0].startswith("journeyhub_")

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if top_level_only and isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            return
        if isinstance(node, ast.Import):
            found.extend((node.lineno, a.name) for a in node.names if plugin(a.name))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and plugin(node.module):
            found.append((node.lineno, str(node.module)))
        elif isinstance(node, ast.Call) and node.args:
            func = ast.unparse(node.func)
            first = node.args[0]
            if (
                func.split(".")[-1] in ("import_module", "__import__")
                and isinstance(first, ast.Constant)
                and isinstance(first.value, str)
                and plugin(first.value)
            ):
                found.append((node.lineno, first.value))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def test_the_finder_sees_every_kind_of_plugin_import() -> None:
    code = """
import journeyhub_tave
from journeyhub_stripe.sandbox import payment_intent
import importlib
importlib.import_module("journeyhub_gcal.sandbox")
if TYPE_CHECKING:
    from journeyhub_resend import sandbox
def later():
    from journeyhub_lightblue import sandbox
"""
    found = [module for _, module in plugin_imports(ast.parse(code))]
    assert found == [
        "journeyhub_tave",
        "journeyhub_stripe.sandbox",
        "journeyhub_gcal.sandbox",
        "journeyhub_lightblue",
    ]
    top = [module for _, module in plugin_imports(ast.parse(code), top_level_only=True)]
    assert top == ["journeyhub_tave", "journeyhub_stripe.sandbox", "journeyhub_gcal.sandbox"]


def test_the_kernel_imports_no_plugin() -> None:
    files = sorted(KERNEL.rglob("*.py"))
    assert len(files) > 50, KERNEL  # the whole kernel, not an empty directory
    found = [
        f"{path.relative_to(ROOT)}:{line}: {module}"
        for path in files
        for line, module in plugin_imports(ast.parse(path.read_text(encoding="utf-8")))
    ]
    assert found == [], "the kernel imports plugins:\n" + "\n".join(found)


def test_no_test_module_imports_a_plugin_when_it_is_imported() -> None:
    """A test that needs a plugin imports it where it runs (and is marked ``plugins``): the
    kernel's tests are collected with no plugin installed."""
    files = sorted(TESTS.rglob("*.py"))
    found = [
        f"{path.relative_to(ROOT)}:{line}: {module}"
        for path in files
        for line, module in plugin_imports(
            ast.parse(path.read_text(encoding="utf-8")), top_level_only=True
        )
    ]
    assert found == [], "imported with the test module:\n" + "\n".join(found)


def test_every_kernel_test_is_unit_or_e2e() -> None:
    """A test module directly under tests/ would get neither marker (``-m unit`` and
    ``-m e2e`` would both leave it out)."""
    loose = sorted(p.name for p in TESTS.glob("test_*.py"))
    assert loose == [], f"move these into tests/unit/ or tests/e2e/: {loose}"


# --- finding the sandboxes: the entry points ------------------------------------------------------


class ToySandbox:
    """A vendor's sandbox as a plugin has one: start() gives itself, with a url and a key."""

    started = 0

    def __init__(self) -> None:
        self.url = "http://127.0.0.1:9/toy"
        self.api_key = "toy-sandbox-key-0123"
        self.running = False
        self.sent: list[tuple[Any, ...]] = []

    def start(self) -> ToySandbox:
        ToySandbox.started += 1
        self.running = True
        return self

    def stop(self) -> None:
        self.running = False


async def toy_paid(
    sb: ToySandbox, data: Mapping[str, Any], url: str, secret: str, http: Any
) -> Any:
    sb.sent.append((dict(data), url, secret, type(http).__name__))
    return types.SimpleNamespace(status_code=200)


def toy_demo() -> SandboxDemo:
    return SandboxDemo(
        "Toy (Sandbox Edition)",
        ToySandbox,
        config=lambda sb: {"api_base": sb.url},
        credentials=lambda sb: {"api_key": sb.api_key},
        webhooks={"payment_received": toy_paid},
        secrets=("toy-sandbox-key-0123",),
    )


def broken_demo() -> Any:
    raise ImportError("toy_broken needs libfoo")


def not_a_sandbox() -> Any:
    return types.SimpleNamespace(label="Nope")


@pytest.fixture
def toy_entry_points(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Three ``journeyhub.sandboxes`` entry points, as installed distributions declare them."""
    module = types.ModuleType("toy_plugin_sandbox")
    module.demo = toy_demo  # type: ignore[attr-defined]
    module.broken = broken_demo  # type: ignore[attr-defined]
    module.wrong = not_a_sandbox  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "toy_plugin_sandbox", module)
    points = [
        EntryPoint("toy", "toy_plugin_sandbox:demo", SANDBOX_ENTRY_POINT_GROUP),
        EntryPoint("toy_broken", "toy_plugin_sandbox:broken", SANDBOX_ENTRY_POINT_GROUP),
        EntryPoint("toy_wrong", "toy_plugin_sandbox:wrong", SANDBOX_ENTRY_POINT_GROUP),
    ]

    def entry_points(*, group: str) -> list[EntryPoint]:
        return points if group == SANDBOX_ENTRY_POINT_GROUP else []

    monkeypatch.setattr(sandbox_module, "entry_points", entry_points)
    yield


def test_sandboxes_are_found_through_their_entry_points(toy_entry_points: None) -> None:
    found = find_sandboxes()
    assert set(found.sandboxes) == {"toy"}
    assert "ImportError: toy_broken needs libfoo" in found.errors["toy_broken"]
    assert "without" in found.errors["toy_wrong"]
    toy = found.sandboxes["toy"]
    assert toy.label == "Toy (Sandbox Edition)"
    assert tuple(toy.secrets) == ("toy-sandbox-key-0123",)
    assert find_sandboxes(only=["toy_broken"]).sandboxes == {}


async def test_a_sandbox_demo_starts_connects_and_sends_webhooks() -> None:
    toy = toy_demo()
    with pytest.raises(RuntimeError, match="not started"):
        toy.config()
    before = ToySandbox.started
    assert toy.start() is toy
    assert toy.start() is toy and ToySandbox.started == before + 1  # once
    assert toy.url == "http://127.0.0.1:9/toy"
    assert toy.config() == {"api_base": "http://127.0.0.1:9/toy"}
    credentials = toy.credentials()
    assert credentials["api_key"] == "toy-sandbox-key-0123"
    assert credentials["webhook_secret"].startswith("whsec_")
    assert list(toy.webhook_kinds) == ["payment_received"]

    answer = await toy.webhook("payment_received", {"amount": 100}, "http://hub/webhooks/x")
    assert answer.status_code == 200
    wrong = await toy.webhook("payment_received", {"amount": 1}, "u", secret="whsec_wrong")
    assert wrong.status_code == 200
    sent = toy.sandbox.sent
    assert sent[0] == (
        {"amount": 100},
        "http://hub/webhooks/x",
        credentials["webhook_secret"],
        "AsyncClient",
    )
    assert sent[1][2] == "whsec_wrong"
    with pytest.raises(LookupError, match="no 'email_opened' webhook"):
        await toy.webhook("email_opened", {}, "u")
    toy.stop()
    assert not toy.sandbox.running


def test_a_sandbox_that_sends_no_webhook_has_no_webhook_secret() -> None:
    quiet = SandboxDemo("Quiet", ToySandbox, config=lambda sb: {}).start()
    assert quiet.credentials() == {}
    assert list(quiet.webhook_kinds) == []


# --- the demo: what runs, what is left out and why, what is connected -----------------------------


def registry(connectors: set[str], errors: dict[str, str] | None = None) -> Any:
    return types.SimpleNamespace(
        connectors=dict.fromkeys(connectors),
        errors=[types.SimpleNamespace(name=n, reason=r) for n, r in (errors or {}).items()],
    )


def test_the_demo_plans_from_the_entry_points_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    found = FoundSandboxes(
        sandboxes={"zeta": toy_demo(), "tave": toy_demo(), "acme": toy_demo()},
        errors={"beta": "ImportError: no libbeta"},
    )
    monkeypatch.setattr(demo_sandboxes, "find_sandboxes", lambda: found)
    everything = registry({"zeta", "tave", "beta"}, errors={"acme": "ImportError: acme\nmore"})

    boxes = plan(everything, first=["tave", "stripe"])
    assert boxes.order == ["tave", "acme", "beta", "zeta"]  # the story's first, then by name
    assert list(boxes.vendors) == ["tave", "zeta"]
    assert boxes.skipped == {
        "acme": "connector failed to load: ImportError: acme",
        "beta": "no sandbox (ImportError: no libbeta)",
    }
    assert boxes.label("tave") == "Toy (Sandbox Edition)"
    assert boxes.label("beta") == "beta"  # its sandbox did not load: no label known
    assert boxes.label("webhook") == "Journey engine"

    narrowed = plan(everything, wanted=["zeta", "webhook"])
    assert list(narrowed.vendors) == ["zeta"]
    assert narrowed.skipped["tave"] == "not in JOURNEYHUB_PLUGINS"


def test_the_studio_connects_what_the_plugins_give_with_its_own_choices() -> None:
    boxes = Sandboxes(vendors={"tave": toy_demo().start(), "acme": toy_demo().start()})
    boxes.order = ["tave", "acme"]
    boxes.labels = {"tave": "Tave (VSCO Workspace)", "acme": "Acme CRM"}
    scenario = Scenario(hub=None, api=None, boxes=boxes)  # type: ignore[arg-type]
    specs = {spec["vendor"]: spec for spec in scenario.connection_specs()}
    assert list(specs) == ["tave", "acme"]  # no journey engine started here
    tave = specs["tave"]
    assert tave["name"] == CHOICES["tave"]["name"]
    assert tave["direction"] == "bidirectional"
    assert tave["config"] == {"api_base": "http://127.0.0.1:9/toy", "pull_interval_seconds": 3600}
    assert tave["credentials"]["api_key"] == "toy-sandbox-key-0123"
    assert tave["credentials"]["webhook_secret"].startswith("whsec_")
    assert tave["field_mappings"] == CHOICES["tave"]["field_mappings"]
    # a vendor the story does not know: its sandbox's own settings, named after its label
    assert specs["acme"] == {
        "vendor": "acme",
        "name": "Acme CRM",
        "config": {"api_base": "http://127.0.0.1:9/toy"},
        "credentials": boxes.vendors["acme"].credentials(),
    }
