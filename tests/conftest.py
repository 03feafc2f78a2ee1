"""The kernel's tests: ``unit/`` (no nats-server, no hub, no plugin: fast) and ``e2e/`` (a real
nats-server, the hub, the gateway, vendor sandboxes). Each test gets the marker of its folder
(``unit`` or ``e2e``) here; a test that needs the connector plugins installed is marked
``plugins`` (by hand, or here when it uses a plugin sandbox fixture), so ``-m "not plugins"``
runs what works with no plugin installed. This file imports no plugin.

Infrastructure fixtures (nats_server, hub, gateway, tenant, workers) come from the
``journeyhub.testing.fixtures`` pytest plugin that the kernel ships; the vendor sandboxes'
fixtures are in ``e2e/conftest.py``.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from journeyhub.testing.fixtures import Gateway, TenantKeys

TESTS = Path(__file__).resolve().parent
CONNECTORS = TESTS.parent / "plugins"
FOLDER_MARKERS = ("unit", "e2e")
# Fixtures (e2e/conftest.py) that start a plugin's sandbox: a test using one needs the plugins.
PLUGIN_FIXTURES = frozenset({"tave_sandbox", "stripe_sandbox", "resend_sandbox"})


@pytest.hookimpl(tryfirst=True)  # before ``-m`` deselects
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``unit`` or ``e2e`` from the test's folder; ``plugins`` for a test that uses a plugin
    sandbox fixture, and for the connectors' own tests (``plugins/<vendor>/tests``)."""
    for item in items:
        path = Path(item.path).resolve()
        if not path.is_relative_to(TESTS):
            if path.is_relative_to(CONNECTORS):
                item.add_marker(pytest.mark.plugins)
            continue
        folder = path.relative_to(TESTS).parts[0]
        if folder in FOLDER_MARKERS:
            item.add_marker(getattr(pytest.mark, folder))
        if PLUGIN_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.plugins)


async def create_connection(gateway: Gateway, tenant: TenantKeys, **body: Any) -> dict[str, Any]:
    answer = await gateway.client.post("/v1/connections", json=body, headers=tenant.headers())
    assert answer.status_code == 201, answer.text
    return answer.json()


def event(
    event_id: str, event_type: str = "journey_started", client_id: str = "cl_1", **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": event_id,
        "type": event_type,
        "occurred_at": "2026-03-01T12:00:00Z",
        "journey_instance_id": f"ji_{client_id}",
        "journey_name": "Wedding onboarding",
        "client": {
            "id": client_id,
            "name": "Ada Lovelace",
            "email": f"{client_id}@example.com",
            "phone": "+44 20 7946 0000",
        },
        "wedding": {
            "date": "2026-09-12",
            "venue": {"name": "Kew Gardens", "address": "Richmond"},
            "guest_count": 120,
        },
    }
    body.update(extra)
    return body


async def settle(seconds: float = 0.3) -> None:
    await asyncio.sleep(seconds)


# --- no credential in any log line ------------------------------------------------------------
#
# Every line the suite writes goes to one file: what pytest captured of each test phase
# (``pytest_runtest_logreport``: stdout, stderr — the hub's JSON lines, uvicorn's — and the
# stdlib log records), plus a direct tee of every structlog line (so ``-s`` is covered too).
# At the end of the session (``pytest_sessionfinish``, after the session fixtures are torn
# down) the file is searched for every credential the suite used: each value any
# ``SecretRegistry`` was given (every decrypted credential), each API key minted, each webhook
# secret made by ``signing.new_secret`` and token by ``signing.new_token``, each Fernet key,
# and the sandboxes' own keys. A hit adds a failed report (so the closing line says "1 failed")
# and makes the exit status 1.
#
# Proven by hand once (2026-11-24): this file copied beside a test file holding
#     def test_fine(): print("nothing secret here", file=sys.stderr)
#     def test_leak(): print("oops", journeyhub.signing.new_secret(), file=sys.stderr)
# ended with "1 failed, 2 passed" and exit status 1, naming "test_leak.py::test_leak Captured
# stderr call" and the secret masked ("whse…(38 chars)"); the same through
# ``logging.getLogger("somewhere").warning("oops %s", secret)`` ("Captured log call"); without
# the leak: "2 passed", exit status 0, also with ``-s``.
# Subprocesses whose output a test pipes to itself (the CLI tests) are outside this net.

_LOG_TEE = Path(tempfile.mkdtemp(prefix="journeyhub-test-logs-")) / "session.log"
_USED_SECRETS: set[str] = set()
_MIN_SECRET_LENGTH = 8  # shorter values are too common to search for without false alarms


def _remember(value: Any) -> None:
    if isinstance(value, dict):
        for item in value.values():
            _remember(item)
    elif isinstance(value, list | tuple | set):
        for item in value:
            _remember(item)
    elif isinstance(value, str) and len(value) >= _MIN_SECRET_LENGTH:
        _USED_SECRETS.add(value)


def _tee(text: str) -> None:
    if text:
        with _LOG_TEE.open("a", encoding="utf-8", errors="replace") as handle:
            handle.write(text if text.endswith("\n") else text + "\n")


def _install_secret_recorders() -> None:
    """Wrap where credentials are born, so the final check knows every one of them."""
    import functools

    from journeyhub import logs, secretbox, signing
    from journeyhub.store.tenants import TenantRepo

    if getattr(logs.SecretRegistry.add, "_records_secrets", False):
        return
    registry_add = logs.SecretRegistry.add

    @functools.wraps(registry_add)
    def add(self: Any, value: object) -> None:
        _remember(value)
        registry_add(self, value)

    create_key = TenantRepo.create_key

    @functools.wraps(create_key)
    async def create_key_recorded(self: Any, *args: Any, **kwargs: Any) -> str:
        key = await create_key(self, *args, **kwargs)
        _remember(key)
        return key

    def recorded(make: Any) -> Any:
        @functools.wraps(make)
        def make_recorded() -> str:
            secret = make()
            _remember(secret)
            return secret

        return make_recorded

    box_init = secretbox.SecretBox.__init__

    @functools.wraps(box_init)
    def box_init_recorded(self: Any, keys: list[str]) -> None:
        _remember(keys)
        box_init(self, keys)

    add._records_secrets = True  # type: ignore[attr-defined]
    logs.SecretRegistry.add = add  # type: ignore[method-assign]
    TenantRepo.create_key = create_key_recorded  # type: ignore[method-assign]
    signing.new_secret = recorded(signing.new_secret)
    signing.new_token = recorded(signing.new_token)
    secretbox.SecretBox.__init__ = box_init_recorded  # type: ignore[method-assign]

    # structlog writes through logs._CurrentStderr: tee it (covers runs without capture).
    write = logs._CurrentStderr.write

    def write_teed(self: Any, text: str) -> int:
        _tee(text)
        return write(self, text)

    logs._CurrentStderr.write = write_teed  # type: ignore[method-assign]


def _sandbox_secrets() -> set[str]:
    """The installed sandboxes' own credentials, through the ``journeyhub.sandboxes`` entry
    points (none when no plugin is installed)."""
    from journeyhub.testing.sandbox import find_sandboxes

    return {secret for sandbox in find_sandboxes().sandboxes.values() for secret in sandbox.secrets}


_install_secret_recorders()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    for title, content in report.sections:
        if content:
            _tee(f"=== {report.nodeid} {title}\n{content}")


def find_leaks(text: str, secrets: set[str]) -> list[str]:
    """Where each of ``secrets`` occurs in ``text``: ``"<masked secret> in <section>"``."""
    found = []
    section = "(before any test)"
    lines = text.splitlines()
    for secret in sorted(secrets):
        if secret not in text:
            continue
        for line in lines:
            if line.startswith("=== "):
                section = line[4:]
            elif secret in line:
                masked = f"{secret[:4]}…({len(secret)} chars)"
                found.append(f"{masked} in {section}")
                break
    return found


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    secrets = _USED_SECRETS | {s for s in _sandbox_secrets() if len(s) >= _MIN_SECRET_LENGTH}
    text = _LOG_TEE.read_text(encoding="utf-8", errors="replace") if _LOG_TEE.exists() else ""
    leaks = find_leaks(text, secrets)
    if not leaks:
        shutil.rmtree(_LOG_TEE.parent, ignore_errors=True)  # kept only to show a leak
        return
    message = (
        f"{len(leaks)} credential(s) appear in log lines of this run (full log: {_LOG_TEE}):\n"
        + "\n".join(f"  {leak}" for leak in leaks)
    )
    report = pytest.TestReport(
        nodeid="tests/conftest.py::no_credential_in_any_log_line",
        location=("tests/conftest.py", 0, "no_credential_in_any_log_line"),
        keywords={},
        outcome="failed",
        longrepr=message,
        when="call",
    )
    session.config.hook.pytest_runtest_logreport(report=report)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
    print(f"\n{message}", file=sys.stderr)
