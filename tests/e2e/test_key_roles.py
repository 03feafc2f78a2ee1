"""Migration 0007 (a key's one role becomes a set of roles): a database at 0006 with keys of each
old role, upgraded, serves each key exactly as before over HTTP; a downgrade gives each key an
old role that loses nothing, and upgrading again is the same as the first time."""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from journeyhub.gateway.app import create_app
from journeyhub.hub import Hub
from journeyhub.settings import Settings
from journeyhub.store.db import downgrade, migrate, sync_url
from sqlalchemy import create_engine, text

from ..conftest import event
from .test_store import scratch_settings

__all__ = ["scratch_settings"]  # the fixture: a fresh database of the test database's kind

# What each old role allowed before 0007 (admin ⊃ ingest ⊃ read), written out here.
OLD_GRANTS = {
    "admin": {"admin", "ingest", "read"},
    "ingest": {"ingest", "read"},
    "read": {"read"},
}
# One call per role: (method, path, body); the body is refused for what it is (400/422) when
# the role is granted, so nothing but the events is made.
CALLS = {
    "read": ("GET", "/v1/connections", None),
    "admin": ("POST", "/v1/connections", {}),
    "ingest": ("POST", "/v1/events", "event"),
}
TENANT = "ten_0007migration"


def old_key(role: str) -> tuple[str, str, str]:
    """(key id, secret's hash, the whole key) of a key as 0006 stored it."""
    key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    return key_id, hashlib.sha256(secret.encode()).hexdigest(), f"jh_{key_id}_{secret}"


def execute(settings: Settings, sql: str, **params: object) -> list[tuple]:
    engine = create_engine(sync_url(settings))
    try:
        with engine.begin() as connection:
            result = connection.execute(text(sql), params)
            return [tuple(row) for row in result] if result.returns_rows else []
    finally:
        engine.dispose()


def keys_at_0006(settings: Settings) -> dict[str, str]:
    """A tenant with an active key of each old role and a revoked admin key; the whole keys."""
    now = datetime.now(UTC)
    execute(
        settings,
        "INSERT INTO tenants (id, name, created_at) VALUES (:id, 'Old Studio', :now)",
        id=TENANT,
        now=now,
    )
    made: dict[str, str] = {}
    for name, role, revoked in [
        ("admin", "admin", None),
        ("ingest", "ingest", None),
        ("read", "read", None),
        ("revoked", "admin", now),
    ]:
        key_id, digest, whole = old_key(role)
        execute(
            settings,
            "INSERT INTO api_keys (id, tenant_id, role, secret_hash, label, created_at,"
            " revoked_at) VALUES (:id, :tenant, :role, :digest, :label, :now, :revoked)",
            id=key_id,
            tenant=TENANT,
            role=role,
            digest=digest,
            label=f"old {name}",
            now=now,
            revoked=revoked,
        )
        made[name] = whole
    return made


def key_id(whole: str) -> str:
    return whole.split("_")[1]


@pytest.fixture
def settings_for_hub(scratch_settings: Settings, hub_settings: Settings) -> Iterator[Settings]:
    """The session's bus, the scratch database."""
    fields = {f: getattr(hub_settings, f) for f in hub_settings.__struct_fields__}
    fields.update(data_dir=scratch_settings.data_dir, database_url=scratch_settings.database_url)
    yield Settings(**fields)


async def allowed(client: httpx.AsyncClient, whole: str) -> set[str]:
    """The roles whose call the key may make (a 403 is a role it lacks)."""
    granted: set[str] = set()
    for role, (method, path, body) in CALLS.items():
        payload = [event(f"mig-{secrets.token_hex(4)}")] if body == "event" else body
        answer = await client.request(
            method, path, json=payload, headers={"authorization": f"Bearer {whole}"}
        )
        assert answer.status_code < 500, answer.text
        if answer.status_code == 401:
            return {"unknown key"}
        if answer.status_code != 403:
            granted.add(role)
            if role == "ingest":
                assert answer.status_code == 202, answer.text
    return granted


async def test_keys_of_every_old_role_work_as_before_after_the_upgrade(
    scratch_settings: Settings, settings_for_hub: Settings
) -> None:
    migrate(scratch_settings, "0006")
    made = keys_at_0006(scratch_settings)
    migrate(scratch_settings)

    rows = dict(execute(scratch_settings, "SELECT label, roles FROM api_keys"))
    assert {label: _roles(value) for label, value in rows.items()} == {
        "old admin": ["admin", "ingest", "read"],
        "old ingest": ["ingest", "read"],
        "old read": ["read"],
        "old revoked": ["admin", "ingest", "read"],
    }
    hub = await Hub.start(settings_for_hub, run_migrations=False)
    try:
        transport = httpx.ASGITransport(app=create_app(hub))
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
            for name in ("admin", "ingest", "read"):
                assert await allowed(client, made[name]) == OLD_GRANTS[name], name
            assert await allowed(client, made["revoked"]) == {"unknown key"}
            # and a key made now has only the roles it names
            new = await hub.store.tenants.create_key(TENANT, ["ingest"], "engine")
            assert await allowed(client, new) == {"ingest"}
            # narrowing an old key in place: the same key, now ingest only
            assert await hub.store.tenants.set_roles(key_id(made["ingest"]), ["ingest"], "test")
        # (the gateway's key cache keeps a key a few seconds: a fresh app has its own)
        transport = httpx.ASGITransport(app=create_app(hub))
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
            assert await allowed(client, made["ingest"]) == {"ingest"}
        changed = await hub.store.audit.list(TENANT, action="key.roles_changed")
        assert [(e.before["roles"], e.after["roles"]) for e in changed] == [
            (["ingest", "read"], ["ingest"])
        ]
    finally:
        await hub.close()


def test_the_downgrade_loses_no_access_and_upgrading_again_is_the_same(
    scratch_settings: Settings,
) -> None:
    migrate(scratch_settings, "0006")
    keys_at_0006(scratch_settings)
    migrate(scratch_settings, "0007")
    now = datetime.now(UTC)
    for label, roles in [
        ("new ingest", '["ingest"]'),
        ("new admin", '["admin"]'),
        ("new read+ingest", '["ingest", "read"]'),
        ("new admin+ingest", '["admin", "ingest"]'),
        ("new none", "[]"),
    ]:
        execute(
            scratch_settings,
            "INSERT INTO api_keys (id, tenant_id, roles, secret_hash, label, created_at)"
            " VALUES (:id, :tenant, :roles, 'x', :label, :now)",
            id=secrets.token_hex(6),
            tenant=TENANT,
            roles=roles,
            label=label,
            now=now,
        )
    downgrade(scratch_settings, "0006")
    old = dict(execute(scratch_settings, "SELECT label, role FROM api_keys"))
    assert old == {
        "old admin": "admin",
        "old ingest": "ingest",
        "old read": "read",
        "old revoked": "admin",
        "new ingest": "ingest",  # the least old role that sends events (it reads again)
        "new admin": "admin",
        "new read+ingest": "ingest",
        "new admin+ingest": "admin",
        "new none": "read",
    }
    migrate(scratch_settings)
    again = dict(execute(scratch_settings, "SELECT label, roles FROM api_keys"))
    assert _roles(again["old ingest"]) == _roles(again["new read+ingest"]) == ["ingest", "read"]
    assert _roles(again["new admin"]) == ["admin", "ingest", "read"]


def _roles(value: Any) -> list[str]:
    """A JSON column as read back: a list (PostgreSQL) or its text (SQLite)."""
    return json.loads(value) if isinstance(value, str) else list(value)
