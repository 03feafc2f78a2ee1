"""The Prometheus alerting rules in ``ops/prometheus`` pass their ``promtool test rules`` tests
(Debian's ``prometheus`` package). Without ``/usr/bin/promtool`` this is skipped, and fails
under ``CI=true``."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

PROMTOOL = Path("/usr/bin/promtool")
RULES = Path(__file__).resolve().parents[2] / "ops" / "prometheus"


@pytest.fixture
def promtool() -> Path:
    if not PROMTOOL.exists():
        message = (
            f"{PROMTOOL} is missing: the alerting rules are tested with promtool; install it "
            "with `apt-get install -y prometheus`"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return PROMTOOL


def run(promtool: Path, *args: str) -> str:
    done = subprocess.run(
        [str(promtool), *args], cwd=RULES, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_the_rules_are_valid(promtool: Path) -> None:
    assert "SUCCESS: 6 rules found" in run(promtool, "check", "rules", "journeyhub-alerts.yml")


def test_the_rules_pass_their_tests(promtool: Path) -> None:
    assert "SUCCESS" in run(promtool, "test", "rules", "journeyhub-alerts.test.yml")


def test_every_metric_the_rules_read_is_exported() -> None:
    """A rule on a metric journeyhub does not export would never fire."""
    rules = (RULES / "journeyhub-alerts.yml").read_text()
    used = set(re.findall(r"\bjourneyhub_[a-z_]+\b", rules))
    source = Path(__file__).resolve().parents[2] / "core" / "src" / "journeyhub"
    exported = "\n".join(
        p.read_text() for p in (source / "metrics.py", *source.glob("*/*.py")) if p.is_file()
    )
    missing = sorted(name for name in used if f'"{name}"' not in exported)
    assert not missing, f"the rules read metrics that are not exported: {missing}"
