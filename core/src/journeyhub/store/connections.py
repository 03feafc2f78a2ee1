"""Connections: a tenant's account at one vendor. Credentials are stored encrypted and are
only ever handed to workers and plugins, never to the API."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec
from sqlalchemy import select

from journeyhub.model import KERNEL_CONFIG_KEYS, Connection, FieldMapping, utcnow
from journeyhub.store.ids import new_id
from journeyhub.store.tables import ConnectionRow

if TYPE_CHECKING:
    from journeyhub.store.store import Store


def to_model(row: ConnectionRow) -> Connection:
    return Connection(
        id=row.id,
        tenant_id=row.tenant_id,
        vendor=row.vendor,
        name=row.name,
        direction=row.direction,  # type: ignore[arg-type]
        enabled=row.enabled,
        config={k: v for k, v in (row.config or {}).items() if k not in KERNEL_CONFIG_KEYS},
        options={k: v for k, v in (row.config or {}).items() if k in KERNEL_CONFIG_KEYS},
        event_types=list(row.event_types or []),
        field_mappings=msgspec.convert(row.field_mappings or [], list[FieldMapping]),
        status=row.status,  # type: ignore[arg-type]
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def snapshot(connection: Connection, credentials: dict[str, Any] | None = None) -> dict[str, Any]:
    """A JSON-able view for the audit log (credentials by key only, masked there)."""
    data = msgspec.to_builtins(connection)
    data["config"] = {**data.pop("config"), **data.pop("options")}
    data["credentials"] = dict.fromkeys(credentials or {}, "")
    return data


class ConnectionRepo:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def create(
        self,
        *,
        tenant_id: str,
        vendor: str,
        name: str,
        direction: str,
        enabled: bool,
        config: dict[str, Any],
        credentials: dict[str, Any],
        event_types: list[str],
        field_mappings: list[FieldMapping],
        actor: str,
    ) -> Connection:
        now = utcnow()
        row = ConnectionRow(
            id=new_id("con"),
            tenant_id=tenant_id,
            vendor=vendor,
            name=name,
            direction=direction,
            enabled=enabled,
            config=config,
            credentials=self.store.secret_box.encrypt(credentials),
            event_types=event_types,
            field_mappings=msgspec.to_builtins(field_mappings),
            status="active",
            version=1,
            created_at=now,
            updated_at=now,
        )
        async with self.store.session() as s:
            s.add(row)
        connection = to_model(row)
        await self.store.audit.record(
            tenant_id=tenant_id,
            actor=actor,
            action="connection.created",
            connection_id=connection.id,
            after=snapshot(connection, credentials),
        )
        return connection

    async def get(self, connection_id: str, tenant_id: str | None = None) -> Connection | None:
        """The connection, or None when it does not exist or belongs to another tenant."""
        async with self.store.session() as s:
            row = await s.get(ConnectionRow, connection_id)
        if row is None or (tenant_id is not None and row.tenant_id != tenant_id):
            return None
        return to_model(row)

    async def get_with_credentials(
        self, connection_id: str
    ) -> tuple[Connection, dict[str, Any]] | None:
        async with self.store.session() as s:
            row = await s.get(ConnectionRow, connection_id)
        if row is None:
            return None
        credentials = self.store.secret_box.decrypt(row.credentials) if row.credentials else {}
        return to_model(row), credentials

    async def list(
        self, tenant_id: str | None = None, vendor: str | None = None
    ) -> list[Connection]:
        query = select(ConnectionRow).order_by(ConnectionRow.created_at)
        if tenant_id is not None:
            query = query.where(ConnectionRow.tenant_id == tenant_id)
        if vendor is not None:
            query = query.where(ConnectionRow.vendor == vendor)
        async with self.store.session() as s:
            return [to_model(row) for row in (await s.execute(query)).scalars()]

    async def update(
        self,
        connection_id: str,
        tenant_id: str,
        changes: dict[str, Any],
        *,
        actor: str,
        credentials: dict[str, Any] | None = None,
    ) -> Connection | None:
        async with self.store.session() as s:
            row = await s.get(ConnectionRow, connection_id, with_for_update=True)
            if row is None or row.tenant_id != tenant_id:
                return None
            before = snapshot(to_model(row))
            for key, value in changes.items():
                if key == "field_mappings":
                    value = msgspec.to_builtins(value)
                setattr(row, key, value)
            if credentials is not None:
                row.credentials = self.store.secret_box.encrypt(credentials)
                row.status = "active"  # new credentials: a person reconnected it
            if changes.get("enabled") is True and row.status == "gone":
                row.status = "active"  # a person re-enabled a connection disabled by a 410
            row.version += 1
            row.updated_at = utcnow()
            await s.flush()
            connection = to_model(row)
        await self.store.audit.record(
            tenant_id=tenant_id,
            actor=actor,
            action="connection.updated",
            connection_id=connection_id,
            before=before,
            after=snapshot(connection, credentials),
        )
        return connection

    async def set_credentials(self, connection_id: str, credentials: dict[str, Any]) -> None:
        """Store refreshed credentials (OAuth tokens) without an audit entry per refresh."""
        async with self.store.session() as s:
            row = await s.get(ConnectionRow, connection_id, with_for_update=True)
            if row is not None:
                row.credentials = self.store.secret_box.encrypt(credentials)

    async def set_status(self, connection_id: str, status: str) -> None:
        async with self.store.session() as s:
            row = await s.get(ConnectionRow, connection_id, with_for_update=True)
            if row is not None and row.status != status:
                row.status = status
                row.updated_at = utcnow()

    async def delete(self, connection_id: str, tenant_id: str, *, actor: str) -> bool:
        async with self.store.session() as s:
            row = await s.get(ConnectionRow, connection_id)
            if row is None or row.tenant_id != tenant_id:
                return False
            before = snapshot(to_model(row))
            await s.delete(row)
        await self.store.audit.record(
            tenant_id=tenant_id,
            actor=actor,
            action="connection.deleted",
            connection_id=connection_id,
            before=before,
        )
        return True

    async def rotate_credentials(self) -> int:
        """Re-encrypt every connection's credentials with the first secret key."""
        count = 0
        async with self.store.session() as s:
            rows = (await s.execute(select(ConnectionRow).with_for_update())).scalars()
            for row in rows:
                if row.credentials:
                    row.credentials = self.store.secret_box.rotate(row.credentials)
                    count += 1
        return count
