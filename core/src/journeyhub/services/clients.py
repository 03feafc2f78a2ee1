"""Erasing one client of a tenant: ``DELETE /v1/clients/{client_id}`` and ``journeyhub clients
erase`` both call :func:`erase_client`.

A client is known by the id the journey engine gives it, and its email, name and phone come in
its journey events (the client directory, ``store/clients.py``, only indexes them for the
search). So the erasure first learns who the client is from what the hub still holds (the
directory, the events and tasks on the bus, the sync links, the triggers, the dead letters:
:class:`~journeyhub.services.erasure.Identity`), then deletes the
client's messages from every stream by sequence (``bus/erasure.py``) and the client's rows
from every table in one transaction (``store/erasure.py``), and records what it erased, as
counts, in the audit log under the client's id alone.

Deleting, not encrypting per client: a per-client key would have to be applied wherever a
payload is written or read (the gateway, the router, the push and inbound workers, the dead
letters, the CLI and the API that show them), and every message already on the bus would stay
readable. Deleting by sequence reaches the messages there now, and JetStream overwrites a
deleted message on disk. What it does not reach: copies outside the hub (database and stream
backups, log lines, the vendors' own records).

A task being pushed while the client is erased may still reach the vendor and record its
attempt afterwards; erasing again removes what it left (a second erasure is harmless).
"""

from __future__ import annotations

import msgspec

from journeyhub.bus.erasure import scan
from journeyhub.bus.subjects import token
from journeyhub.hub import Hub
from journeyhub.services.erasure import Identity, decode
from journeyhub.services.errors import InvalidInput
from journeyhub.store import erasure as store_erasure

STREAM_KINDS = ("inbound", "events", "push", "triggers", "dlq")
MAX_CLIENT_ID = 200


class ClientErasure(msgspec.Struct, kw_only=True):
    """What one erasure removed: rows per table, messages per stream (by kind). It names the
    client by its id only."""

    client_id: str
    tables: dict[str, int]
    streams: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.tables.values()) + sum(self.streams.values())


def _subjects(hub: Hub, tenant_id: str, connections: list[str]) -> dict[str, list[str]]:
    subjects = hub.bus.subjects
    return {
        "inbound": [f"{subjects.prefix}.inbound.*.{token(c)}" for c in connections],
        "events": [subjects.events(tenant_id)],
        "push": [subjects.push(c) for c in connections],
        "triggers": [subjects.triggers(tenant_id)],
        "dlq": [subjects.dlq(c) for c in connections],
    }


async def erase_client(hub: Hub, tenant_id: str, client_id: str, actor: str) -> ClientErasure:
    """Erase the client's personal data everywhere the hub keeps it, within the tenant.
    Raises ``LookupError`` when there is no such tenant, ``InvalidInput`` for an empty or
    over-long client id."""
    if not client_id.strip() or len(client_id) > MAX_CLIENT_ID:
        raise InvalidInput(f"a client id has 1 to {MAX_CLIENT_ID} characters", "client_id")
    if not await hub.store.tenants.exists(tenant_id):
        raise LookupError(f"no tenant {tenant_id}")
    store = hub.store
    who = Identity(client_id)
    connections = await store.run(lambda conn: store_erasure.connection_ids(conn, tenant_id))
    subjects = _subjects(hub, tenant_id, connections)

    def learn(data: bytes, _headers: dict[str, str]) -> bool:
        who.learn(decode(data))
        return False

    for kind in STREAM_KINDS:
        await scan(hub.bus, kind, subjects[kind], learn, remove=False)
    await store.run(lambda conn: store_erasure.learn(conn, tenant_id, connections, who))

    def about(data: bytes, headers: dict[str, str]) -> bool:
        return who.about_payload(data, *headers.values())

    # The bus first: a message left there would be delivered again, writing new rows.
    streams = {
        kind: await scan(hub.bus, kind, subjects[kind], about, remove=True) for kind in STREAM_KINDS
    }
    tables = await store.run(lambda conn: store_erasure.erase(conn, tenant_id, connections, who))
    result = ClientErasure(client_id=client_id, tables=tables, streams=streams)
    await store.audit.record(
        tenant_id=tenant_id,
        actor=actor,
        action="client.erased",
        after={"client_id": client_id, "tables": tables, "streams": streams},
    )
    return result
