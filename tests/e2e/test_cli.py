"""The command line, run as a user runs it: in a subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from journeyhub.bus.embedded import free_port


def cli_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "JOURNEYHUB_DATA_DIR": str(data_dir), **extra}
    for name in ("JOURNEYHUB_NATS_URL", "JOURNEYHUB_PLUGINS", "JOURNEYHUB_DATABASE_URL"):
        env.pop(name, None)
    return env


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
    unknown = journeyhub("keys", "create", "--tenant", "ten_missing", env=env)
    assert unknown.returncode == 1 and "no tenant" in unknown.stderr


def test_migrate_and_plugins_list(tmp_path: Path) -> None:
    env = cli_env(tmp_path, COLUMNS="200")
    migrated = journeyhub("migrate", env=env)
    assert migrated.returncode == 0 and "up to date" in migrated.stdout
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
    import asyncio

    from journeyhub.secretbox import load_secret_box
    from journeyhub.settings import load_settings
    from journeyhub.store.db import migrate
    from journeyhub.store.store import Store

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
    assert "replayed 3 dead letter(s)" in replayed.stdout and "3/3" in replayed.stdout
    again = journeyhub("dlq", "replay", "--tenant", tenant, env=env)
    assert "replayed 0 dead letter(s)" in again.stdout  # only those not replayed yet
    one = journeyhub("dlq", "replay", "--tenant", tenant, ids[0], env=env)
    assert "replayed 1 dead letter(s)" in one.stdout
