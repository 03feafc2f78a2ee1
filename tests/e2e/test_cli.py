"""The command line, run as a user runs it: in a subprocess. And as scripts use it: ``--json``
gives one JSON document on stdout with the documented fields (docs/cli.md) and nothing else;
exit codes are the documented ones; ``--version``; keys and URLs are printed whole on one line
whatever the terminal's width, and work."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from importlib.metadata import version
from pathlib import Path

import httpx
import pytest
from journeyhub.bus.embedded import free_port
from journeyhub.secretbox import load_secret_box
from journeyhub.services import keys
from journeyhub.settings import load_settings
from journeyhub.store.store import Store


def cli_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "JOURNEYHUB_DATA_DIR": str(data_dir)}
    for name in ("JOURNEYHUB_NATS_URL", "JOURNEYHUB_PLUGINS", "JOURNEYHUB_DATABASE_URL"):
        env.pop(name, None)
    return {**env, **extra}


def journeyhub(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "journeyhub", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def children_of(pid: int) -> list[int]:
    found = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(p) for p in found.stdout.split()]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purpose
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def test_serve_starts_everything_and_ctrl_c_leaves_no_nats_server(tmp_path: Path) -> None:
    port = free_port()
    env = cli_env(tmp_path / "data", JOURNEYHUB_PORT=str(port), JOURNEYHUB_LOG_FORMAT="json")
    process = subprocess.Popen(
        [sys.executable, "-m", "journeyhub", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        ready = None
        while time.monotonic() < deadline:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2)
                if ready.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, process.communicate()[1]
            time.sleep(0.2)
        assert ready is not None and ready.status_code == 200
        assert ready.json()["checks"] == {"store": "ok", "bus": "ok"}
        servers = [
            pid
            for pid in children_of(process.pid)
            if "nats-server" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        ]
        assert len(servers) == 1
        assert (tmp_path / "data" / "journeyhub.db").exists()  # SQLite migrated
        assert (tmp_path / "data" / "nats" / "jetstream").exists()  # JetStream on disk

        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
        deadline = time.monotonic() + 10
        while alive(servers[0]) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(servers[0]), "nats-server survived Ctrl-C"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_tenants_add_and_keys_create(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    added = journeyhub("tenants", "add", "Golden Hour Photography", env=env)
    assert added.returncode == 0, added.stderr
    tenant_id = added.stdout.strip()
    assert tenant_id.startswith("ten_")

    created = journeyhub("keys", "create", "--tenant", tenant_id, "--role", "ingest", env=env)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("jh_") and len(key) > 40

    bad_role = journeyhub("keys", "create", "--tenant", tenant_id, "--role", "root", env=env)
    assert bad_role.returncode == 2 and "--role" in bad_role.stderr

    # several roles on one key; listed in one order whatever the order given
    both = journeyhub(
        "keys", "create", "--tenant", tenant_id, "--role", "read", "--role", "ingest", env=env
    )
    assert both.returncode == 0, both.stderr
    both_id = both.stdout.strip().split("_")[1]
    listed = as_json(journeyhub("keys", "list", "--tenant", tenant_id, "--json", env=env))
    assert isinstance(listed, list)
    assert [k["roles"] for k in listed] == [["ingest"], ["ingest", "read"]]
    assert "ingest,read" in journeyhub("keys", "list", env=env).stdout

    # narrowed in place: the same key, now ingest only
    narrowed = journeyhub("keys", "roles", both_id, "--role", "ingest", env=env)
    assert narrowed.returncode == 0, narrowed.stderr
    listed = as_json(journeyhub("keys", "list", "--tenant", tenant_id, "--json", env=env))
    assert isinstance(listed, list) and [k["roles"] for k in listed] == [["ingest"], ["ingest"]]
    assert journeyhub("keys", "roles", both_id, env=env).returncode == 2  # at least one
    assert journeyhub("keys", "roles", both_id, "--role", "root", env=env).returncode == 2
    assert journeyhub("keys", "roles", "000000000000", "--role", "read", env=env).returncode == 3
    unknown = journeyhub("keys", "create", "--tenant", "ten_missing", env=env)
    assert unknown.returncode == 3 and "no tenant" in unknown.stderr


def test_migrate_and_plugins_list(tmp_path: Path) -> None:
    env = cli_env(tmp_path, COLUMNS="200")
    migrated = journeyhub("migrate", env=env)
    assert migrated.returncode == 0 and "up to date" in migrated.stderr
    listed = journeyhub("plugins", "list", env=env)
    assert listed.returncode == 0
    assert "webhook" in listed.stdout and "push, webhook" in listed.stdout


@pytest.mark.plugins  # a Stripe connection
def test_connections_add_list_and_test(tmp_path: Path) -> None:
    env = cli_env(tmp_path, COLUMNS="200")
    tenant_id = journeyhub("tenants", "add", "Studio", env=env).stdout.strip()
    bad = journeyhub(
        "connections",
        "add",
        "--tenant",
        tenant_id,
        "--vendor",
        "stripe",
        "--name",
        "pay",
        "--credentials",
        '{"webhook_secret": "nope"}',
        env=env,
    )
    assert bad.returncode == 2 and "$.credentials" in bad.stderr and "nope" not in bad.stderr
    added = journeyhub(
        "connections",
        "add",
        "--tenant",
        tenant_id,
        "--vendor",
        "stripe",
        "--name",
        "payments",
        "--direction",
        "inbound",
        "--credentials",
        '{"webhook_secret": "whsec_dGVzdHNlY3JldA=="}',
        env=env,
    )
    assert added.returncode == 0, added.stderr
    connection_id = added.stdout.strip()
    assert f"/webhooks/stripe/{connection_id}" in added.stderr
    listed = journeyhub("connections", "list", "--tenant", tenant_id, env=env)
    assert connection_id in listed.stdout and "payments" in listed.stdout
    assert "dGVzdHNlY3JldA" not in listed.stdout + listed.stderr
    tested = journeyhub("connections", "test", connection_id, env=env)
    assert tested.returncode == 0 and "webhook" in tested.stdout.lower()


def test_dlq_list_and_replay(tmp_path: Path) -> None:
    from journeyhub.store.db import migrate

    env = cli_env(tmp_path, COLUMNS="200")
    settings = load_settings({}, data_dir=tmp_path)
    migrate(settings)

    async def seed() -> tuple[str, list[str]]:
        store = Store(settings, load_secret_box(settings))
        tenant = await store.tenants.add("t")
        ids = [
            await store.deliveries.dead_letter(
                tenant_id=tenant,
                connection_id="con_x",
                vendor="tave",
                stage="push",
                subject="jh.push.con_x",
                msg_id=f"dlv_{i}",
                payload=b'{"id": "dlv"}',
                error=f"permanent error: 422 number {i}",
                attempts=1,
            )
            for i in range(3)
        ]
        await store.close()
        return tenant, ids

    tenant, ids = asyncio.run(seed())
    listed = journeyhub("dlq", "list", "--tenant", tenant, env=env)
    assert listed.returncode == 0 and "3 dead letter(s)" in listed.stdout
    assert "permanent error: 422" in listed.stdout
    replayed = journeyhub("dlq", "replay", "--tenant", tenant, env=env)
    assert replayed.returncode == 0, replayed.stderr
    assert "replayed 3 dead letter(s)" in replayed.stdout and "3/3" in replayed.stderr
    again = journeyhub("dlq", "replay", "--tenant", tenant, env=env)
    assert "replayed 0 dead letter(s)" in again.stdout  # only those not replayed yet
    one = journeyhub("dlq", "replay", "--tenant", tenant, ids[0], env=env)
    assert "replayed 1 dead letter(s)" in one.stdout


# --- as scripts use it ----------------------------------------------------------------------

WHSEC = "whsec_dGVzdHNlY3JldHRlc3RzZWNyZXQ="
KEY = re.compile(r"jh_[0-9a-f]{12}_[A-Za-z0-9_-]{43}")
TENANT_FIELDS = {"id", "name", "created_at"}
KEY_FIELDS = {"id", "tenant_id", "roles", "label", "created_at", "revoked_at"}
CONNECTION_FIELDS = {
    "id",
    "tenant_id",
    "vendor",
    "name",
    "direction",
    "enabled",
    "status",
    "config",
    "event_types",
    "field_mappings",
    "webhook_url",
    "created_at",
    "updated_at",
}
DEAD_LETTER_FIELDS = {
    "id",
    "connection_id",
    "vendor",
    "stage",
    "subject",
    "error",
    "attempts",
    "created_at",
    "replayed_at",
    "replay_count",
    "payload",
}


def as_json(result: subprocess.CompletedProcess[str]) -> object:
    """stdout as one JSON document: it fails on anything else printed there."""
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def works(data_dir: Path, key: str) -> bool:
    """The key signs in: the API's own check of a presented key."""
    settings = load_settings({}, data_dir=data_dir)

    async def check() -> bool:
        store = Store(settings, load_secret_box(settings))
        try:
            return await keys.authenticate(store, key) is not None
        finally:
            await store.close()

    return asyncio.run(check())


def add_webhook_connection(tenant: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return journeyhub(
        "connections",
        "add",
        "--tenant",
        tenant,
        "--vendor",
        "webhook",
        "--name",
        "forms",
        "--direction",
        "inbound",
        "--credentials",
        json.dumps({"secret": WHSEC}),
        env=env,
    )


def test_version_is_the_package_version(tmp_path: Path) -> None:
    result = journeyhub("--version", env=cli_env(tmp_path))
    assert result.returncode == 0
    assert result.stdout == version("journeyhub") + "\n"


def test_tenants_and_keys_list_as_json_without_a_secret(tmp_path: Path) -> None:
    env = cli_env(tmp_path, COLUMNS="40")
    assert as_json(journeyhub("tenants", "list", "--json", env=env)) == []
    first = journeyhub("tenants", "add", "Golden Hour Photography", env=env).stdout.strip()
    second = journeyhub("tenants", "add", "Blue Door Venue", env=env).stdout.strip()
    tenants = as_json(journeyhub("tenants", "list", "--json", env=env))
    assert isinstance(tenants, list) and [t["id"] for t in tenants] == [first, second]
    assert all(set(t) == TENANT_FIELDS for t in tenants)
    assert tenants[0]["name"] == "Golden Hour Photography"

    made = [
        journeyhub("keys", "create", "--tenant", first, "--role", role, env=env).stdout.strip()
        for role in ("admin", "read")
    ]
    other = journeyhub("keys", "create", "--tenant", second, env=env).stdout.strip()
    ids = [k.split("_")[1] for k in made]
    assert journeyhub("keys", "revoke", ids[1], env=env).returncode == 0

    listed = journeyhub("keys", "list", "--tenant", first, "--json", env=env)
    active = as_json(listed)
    assert isinstance(active, list) and [k["id"] for k in active] == [ids[0]]
    assert set(active[0]) == KEY_FIELDS and active[0]["roles"] == ["admin"]
    listed_all = journeyhub("keys", "list", "--revoked", "--json", env=env)
    every = as_json(listed_all)
    assert isinstance(every, list)
    assert [k["id"] for k in every] == [*ids, other.split("_")[1]]
    assert every[1]["revoked_at"] is not None
    table = journeyhub("keys", "list", "--revoked", env=env)
    assert ids[0] in table.stdout and first in table.stdout  # whole, at 40 columns
    for key in [*made, other]:
        secret = key.split("_", 2)[2]
        assert secret not in listed.stdout + listed_all.stdout + table.stdout


def test_lists_and_shows_as_json(tmp_path: Path) -> None:
    env = cli_env(tmp_path, JOURNEYHUB_PLUGINS="webhook", COLUMNS="40")
    tenant = journeyhub("tenants", "add", "Studio", env=env).stdout.strip()
    added = add_webhook_connection(tenant, env)
    assert added.returncode == 0, added.stderr
    connection_id = added.stdout.strip()

    listed = as_json(journeyhub("connections", "list", "--tenant", tenant, "--json", env=env))
    assert isinstance(listed, list) and len(listed) == 1
    assert set(listed[0]) == CONNECTION_FIELDS and listed[0]["id"] == connection_id
    shown = as_json(journeyhub("connections", "show", connection_id, "--json", env=env))
    assert shown == listed[0]
    assert shown["webhook_url"].endswith(f"/webhooks/webhook/{connection_id}")
    assert "dGVzdHNlY3JldHRlc3RzZWNyZXQ" not in json.dumps(shown)  # credentials never

    plugins = as_json(journeyhub("plugins", "list", "--json", env=env))
    assert isinstance(plugins, dict) and set(plugins) == {"connectors", "observers", "errors"}
    assert [c["name"] for c in plugins["connectors"]] == ["webhook"]
    assert set(plugins["connectors"][0]) == {
        "name",
        "version",
        "capabilities",
        "auth",
        "rate_limit",
    }

    settings = load_settings({}, data_dir=tmp_path)

    async def seed() -> str:
        store = Store(settings, load_secret_box(settings))
        try:
            return await store.deliveries.dead_letter(
                tenant_id=tenant,
                connection_id=connection_id,
                vendor="webhook",
                stage="push",
                subject=f"jh.push.{connection_id}",
                msg_id="dlv_1",
                payload=b'{"id": "dlv_1"}',
                error="permanent error: 422",
                attempts=1,
            )
        finally:
            await store.close()

    dead_id = asyncio.run(seed())
    dead = as_json(journeyhub("dlq", "list", "--tenant", tenant, "--json", env=env))
    assert isinstance(dead, list) and [d["id"] for d in dead] == [dead_id]
    assert set(dead[0]) == DEAD_LETTER_FIELDS and dead[0]["payload"] == {"id": "dlv_1"}
    replayed = as_json(journeyhub("dlq", "replay", "--tenant", tenant, "--json", env=env))
    assert replayed == {"replayed": [dead_id], "missing": []}


def test_exit_codes(tmp_path: Path) -> None:
    env = cli_env(tmp_path, JOURNEYHUB_PLUGINS="webhook")
    tenant = journeyhub("tenants", "add", "Studio", env=env).stdout.strip()
    connection_id = add_webhook_connection(tenant, env).stdout.strip()

    def code(*args: str, **extra: str) -> int:
        return journeyhub(*args, env={**env, **extra}).returncode

    # 2: usage, input or configuration; nothing done
    assert code("keys", "create", "--tenant", tenant, "--role", "root") == 2
    assert code("tenants", "list", "--no-such-option") == 2
    assert code("connections", "add", "--tenant", tenant, "--vendor", "nope", "--name", "x") == 2
    assert code("tenants", "list", JOURNEYHUB_PORT="not a port") == 2
    # 3: not found
    assert code("keys", "create", "--tenant", "ten_missing") == 3
    assert code("keys", "list", "--tenant", "ten_missing") == 3
    assert code("keys", "revoke", "000000000000") == 3
    assert code("connections", "show", "con_missing") == 3
    assert code("connections", "test", "con_missing") == 3
    assert code("dlq", "replay", "--tenant", tenant, "dl_missing") == 3
    # 4: refused: a connection that cannot be pulled is not synced
    refused = journeyhub("connections", "sync", connection_id, env=env)
    assert refused.returncode == 4 and "cannot be pulled" in refused.stderr
    # 0
    assert code("connections", "show", connection_id) == 0


@pytest.mark.parametrize("columns", ["40", "80"])
def test_keys_and_urls_are_printed_whole(tmp_path: Path, columns: str) -> None:
    env = cli_env(tmp_path, JOURNEYHUB_PLUGINS="webhook", COLUMNS=columns)
    tenant = journeyhub("tenants", "add", "Studio", env=env).stdout.strip()
    created = journeyhub("keys", "create", "--tenant", tenant, env=env)
    assert KEY.fullmatch(created.stdout.strip()), created.stdout
    assert works(tmp_path, created.stdout.strip())

    added = add_webhook_connection(tenant, env)
    connection_id = added.stdout.strip()
    url = f"http://127.0.0.1:8000/webhooks/webhook/{connection_id}"
    assert f"webhook URL: {url}\n" in added.stderr, added.stderr
    shown = journeyhub("connections", "show", connection_id, env=env)
    assert f"webhook_url: {url}\n" in shown.stdout, shown.stdout


@pytest.mark.timeout(200)
@pytest.mark.parametrize("columns", ["40", "80"])
def test_the_demo_prints_its_dashboard_key_whole(tmp_path: Path, columns: str) -> None:
    """``demo --keep-running`` in a narrow terminal: the key is whole on a line of its own, and
    the API takes it."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEYHUB_")}
    env.update(CI="true", PYTHONIOENCODING="utf-8", COLUMNS=columns, JOURNEYHUB_PLUGINS="webhook")
    process = subprocess.Popen(
        [sys.executable, "-m", "journeyhub", "demo", "--port", str(port), "--keep-running"],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in process.stdout or ()])
    reader.start()
    seen: list[str] = []
    try:
        while not any(KEY.search(line) for line in seen):
            try:
                seen.append(lines.get(timeout=150))
            except queue.Empty:
                pytest.fail(f"no API key printed:\n{''.join(seen)}")
        key_line = next(line for line in seen if KEY.search(line))
        key = key_line.strip()
        assert KEY.fullmatch(key), key_line  # alone on its line, not folded
        dashboard = next(line for line in seen if line.strip().startswith("dashboard"))
        assert f"http://127.0.0.1:{port}/\n" in dashboard
        answer = httpx.get(
            f"http://127.0.0.1:{port}/v1/connections",
            headers={"Authorization": f"Bearer {key}"},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        reader.join(timeout=10)
