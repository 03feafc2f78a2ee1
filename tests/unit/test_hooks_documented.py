"""Every hook spec is documented in docs/hooks.md (datasette's test_plugin_hooks_are_documented)."""

import inspect
import re
from pathlib import Path

from journeyhub import hookspecs

DOCS = Path(__file__).resolve().parents[2] / "docs" / "hooks.md"


def hook_names() -> list[str]:
    return [
        name
        for name, _ in inspect.getmembers(hookspecs, inspect.isfunction)
        if name.startswith("journeyhub_")
    ]


def test_there_are_hooks() -> None:
    assert "journeyhub_push" in hook_names()
    assert len(hook_names()) >= 9


def test_every_hook_has_a_section_with_its_exact_signature() -> None:
    text = DOCS.read_text()
    for name in hook_names():
        assert f"### {name}\n" in text, f"docs/hooks.md has no section for {name}"
        section = text.split(f"### {name}\n", 1)[1].split("\n### ", 1)[0]
        params = list(inspect.signature(getattr(hookspecs, name)).parameters)
        documented = re.search(rf"{name}\(([^)]*)\)", section)
        assert documented, f"{name}: no signature in its section"
        assert [p.strip() for p in documented.group(1).split(",") if p.strip()] == params, (
            f"{name}: documented parameters differ from the spec {params}"
        )
        assert "```python" in section.split("```", 2)[-1] or section.count("```python") >= 2, (
            f"{name}: no example"
        )


def test_every_hook_has_a_docstring() -> None:
    for name in hook_names():
        doc = inspect.getdoc(getattr(hookspecs, name)) or ""
        assert "Called" in doc, f"{name}: the docstring must say when it is called"
