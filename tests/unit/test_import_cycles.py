"""The kernel's modules import each other without a cycle, and every one of them imports.

The import graph is read from the source with ``ast``:

- an edge for every import of a ``journeyhub`` module run when the module is loaded: at module
  level, in a class body, under a module-level ``if``/``try``/``with``; not under
  ``if TYPE_CHECKING:`` (annotations only, never run);
- ``from package import name`` depends on the package's ``__init__``, unless ``name`` is a
  submodule: then on the submodule only. (Importing a submodule runs its package's
  ``__init__`` first, but a package that imports its own submodules is no cycle, unless one of
  them reads a name back from the package.)

Module-level imports must have no cycle at all. An import inside a function runs when the
function is called, after the modules are loaded, so a cycle through one cannot break an
import; but it hides the same tangle (``hub`` and ``resilience.auth`` were one, the inbound and
sync workers another, the store and its repositories a third), so those are checked too, and
the only one allowed is listed in :data:`LAZY_CYCLES_ALLOWED` with its reason.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator
from pathlib import Path

import journeyhub

PACKAGE_DIR = Path(journeyhub.__file__).parent

# Modules that do something when imported: Alembic's env runs the migrations, ``__main__``
# runs the CLI.
NOT_IMPORTED = {"journeyhub.__main__", "journeyhub.migrations.env"}

# Cycles through imports inside functions that are allowed, each with its reason.
LAZY_CYCLES_ALLOWED: dict[frozenset[str], str] = {
    frozenset(
        {
            "journeyhub.demo",
            "journeyhub.demo.report",
            "journeyhub.demo.runner",
            "journeyhub.demo.scenario",
        }
    ): (
        "journeyhub.demo.run() imports the runner when the demo starts (behind a 'loading…' "
        "status, so `journeyhub --help` stays fast); the runner and the scenario read the "
        "options and step names from journeyhub.demo, loaded long before run() is called"
    ),
}


def module_names() -> dict[str, Path]:
    """Every module of the kernel by its dotted name (a package by its ``__init__``)."""
    found = {}
    for path in PACKAGE_DIR.rglob("*.py"):
        parts = ["journeyhub", *path.relative_to(PACKAGE_DIR).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


# Statements whose body runs when the module is loaded (a class body too); a function's runs
# when it is called.
BLOCKS = (ast.With, ast.AsyncWith, ast.For, ast.AsyncFor, ast.While, ast.ClassDef)
FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(body: list[ast.stmt], *, lazy: bool) -> Iterator[ast.Import | ast.ImportFrom]:
    """The import statements run when the module is loaded (and, with ``lazy``, those in its
    functions too), never those under ``if TYPE_CHECKING:``."""
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                yield from _imports(node.body, lazy=lazy)
            yield from _imports(node.orelse, lazy=lazy)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody):
                yield from _imports(block, lazy=lazy)
            for handler in node.handlers:
                yield from _imports(handler.body, lazy=lazy)
        elif isinstance(node, BLOCKS) or (isinstance(node, FUNCTIONS) and lazy):
            yield from _imports(node.body, lazy=lazy)


def import_graph(*, lazy: bool) -> dict[str, set[str]]:
    """Module → the kernel modules it imports."""
    modules = module_names()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        package = name if is_package else name.rpartition(".")[0]
        depends: set[str] = set()
        for node in _imports(ast.parse(path.read_text(), str(path)).body, lazy=lazy):
            if isinstance(node, ast.Import):
                depends.update(alias.name for alias in node.names if alias.name in modules)
                continue
            source = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                source = ".".join([*base, *([node.module] if node.module else [])])
            if source not in modules:
                continue
            submodules = {f"{source}.{alias.name}" for alias in node.names}
            depends.update(submodules & modules.keys())
            if submodules - modules.keys():  # a name read from the module itself
                depends.add(source)
        depends.discard(name)
        graph[name] = depends
    return graph


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in sorted(graph[module]):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def describe(component: frozenset[str], graph: dict[str, set[str]]) -> str:
    return "\n".join(
        f"  {module} -> {', '.join(sorted(graph[module] & component))}"
        for module in sorted(component)
    )


def test_every_kernel_module_imports() -> None:
    names = sorted(module_names().keys() - NOT_IMPORTED)
    assert len(names) > 100
    for name in names:
        importlib.import_module(name)


def test_module_level_imports_have_no_cycle() -> None:
    graph = import_graph(lazy=False)
    assert "journeyhub.resilience.auth" in graph["journeyhub.hub"]  # the graph sees imports
    found = cycles(graph)
    assert not found, "import cycles:\n" + "\n\n".join(describe(c, graph) for c in found)


def test_imports_inside_functions_hide_no_cycle_either() -> None:
    graph = import_graph(lazy=True)
    found = [c for c in cycles(graph) if c not in LAZY_CYCLES_ALLOWED]
    assert not found, "import cycles through imports in functions:\n" + "\n\n".join(
        describe(c, graph) for c in found
    )


def test_the_graph_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [frozenset({"a", "b", "c"})]
