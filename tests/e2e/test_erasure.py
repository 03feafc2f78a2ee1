"""Erasing one client: ``DELETE /v1/clients/{id}`` and ``journeyhub clients erase``.

A client is seeded through the hub as it runs (events in over the API, pushed to Tave's
sandbox, a dead letter, a trigger and the suppression it makes, a task held on the bus by a
429); then every table of the database and every message of every stream is searched for the
client's email, name and phone."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec
import pytest
from journeyhub.hub import Hub
from journeyhub.model import Trigger, TriggerDraft, utcnow
from journeyhub.services.erasure import decode, strings
from journeyhub.services.triggers import emit_triggers
from journeyhub.testing.fixtures import Gateway, TenantKeys, eventually, make_tenant
from journeyhub.testing.sandbox import Fault
from nats.js.errors import NotFoundError
from sqlalchemy import MetaData, select

from ..conftest import create_connection, event

if TYPE_CHECKING:
    from journeyhub_tave.sandbox import TaveSandbox

pytestmark = [pytest.mark.usefixtures("workers"), pytest.mark.plugins]  # Tave


@dataclass(frozen=True)
class Person:
    client_id: str
    name: str
    email: str
    phone: str

    def client(self) -> dict[str, str]:
        return {"id": self.client_id, "name": self.name, "email": self.email, "phone": self.phone}

    def traces(self) -> tuple[str, ...]:
        return (self.email.lower(), self.name.lower(), self.phone, self.phone.replace(" ", ""))


def people(tag: str) -> tuple[Person, Person]:
    """The client to erase and one to keep, unique to the test (the hub is the session's)."""
    return (
        Person(
            f"cl_gone_{tag}",
            f"Zelda Quartermaine {tag}",
            f"zelda.{tag}@example.com",
            f"+1 555 {tag} 017",
        ),
        Person(
            f"cl_kept_{tag}",
            f"Bertram Okonkwo {tag}",
            f"bertram.{tag}@example.com",
            f"+44 20 {tag} 046",
        ),
    )


@pytest.fixture
def sandboxes() -> Iterator[list[TaveSandbox]]:
    from journeyhub_tave.sandbox import TaveSandbox

    with ExitStack() as stack:
        yield [stack.enter_context(TaveSandbox()) for _ in range(4)]


async def tave(gateway: Gateway, tenant: TenantKeys, sandbox: TaveSandbox, name: str) -> dict:
    return await create_connection(
        gateway,
        tenant,
        vendor="tave",
        name=name,
        direction="outbound",
        config={"api_base": sandbox.api_base},
        credentials={"api_key": sandbox.api_key},
    )


async def send(gateway: Gateway, tenant: TenantKeys, body: Any) -> None:
    answer = await gateway.client.post("/v1/events", json=body, headers=tenant.headers("ingest"))
    assert answer.status_code == 202, answer.text


async def statuses(hub: Hub, tenant: TenantKeys) -> list[tuple[str, str]]:
    rows = await hub.store.deliveries.list(tenant.id, limit=1000)
    return sorted((r.source_id, r.status) for r in rows)


async def seed(
    hub: Hub, gateway: Gateway, tenant: TenantKeys, crm: TaveSandbox, slow: TaveSandbox, tag: str
) -> tuple[Person, Person]:
    """Both clients' journeys start and reach Tave (deliveries, sync links); the erased one also
    gets a dead letter, a bounce (a trigger and a suppression), an audit entry quoting it, and a
    task that Tave answers 429 to, which waits on the push stream."""
    gone, kept = people(tag)
    connection = await tave(gateway, tenant, crm, "studio crm")
    await send(
        gateway,
        tenant,
        [
            event(f"{tag}-start-gone", client_id=gone.client_id, client=gone.client()),
            event(f"{tag}-start-kept", client_id=kept.client_id, client=kept.client()),
        ],
    )
    await eventually(lambda: _count(hub, tenant, "delivered", 2), timeout=20)
    crm.faults.plan(Fault(status=422, body={"type": "validation", "title": "bad", "status": 422}))
    await send(
        gateway,
        tenant,
        event(
            f"{tag}-update-gone",
            "client_updated",
            client_id=gone.client_id,
            client=gone.client(),
            wedding={"date": "2027-05-01"},  # a change: Tave is called, and refuses it
        ),
    )
    await eventually(lambda: hub.store.deliveries.list_dead(tenant.id), timeout=20)

    found = await hub.store.connections.get(connection["id"], tenant.id)
    assert found is not None
    for person in (gone, kept):
        draft = TriggerDraft(
            type="email_bounced",
            source_event_id=f"{tag}-bounce-{person.client_id}",
            occurred_at=utcnow(),
            client_email=person.email,
            data={"email": person.email, "reason": "mailbox full"},
        )
        assert await emit_triggers(hub, found, [draft]) == 1
    await hub.store.audit.record(
        tenant_id=tenant.id,
        actor="key:test",
        action="conflict.resolved",
        connection_id=connection["id"],
        before={"email": gone.email, "phone": gone.phone},
        after={"email": gone.email.upper(), "note": "kept the studio's"},
    )

    slow.faults.plan(Fault(status=429, retry_after=300))
    await tave(gateway, tenant, slow, "slow crm")
    await send(
        gateway,
        tenant,
        event(f"{tag}-step-gone", "client_updated", client_id=gone.client_id, client=gone.client()),
    )
    await eventually(lambda: slow.faults.injected[429] >= 1, timeout=20)
    await eventually(lambda: _settled(hub, tenant), timeout=20)
    return gone, kept


async def _count(hub: Hub, tenant: TenantKeys, status: str, count: int) -> bool:
    return len(await hub.store.deliveries.list(tenant.id, status=status, limit=1000)) >= count


async def _settled(hub: Hub, tenant: TenantKeys) -> bool:
    """Nothing changes in the tenant's delivery attempts for a second."""
    before = await statuses(hub, tenant)
    await asyncio.sleep(1.0)
    return before == await statuses(hub, tenant)


# --- searching everything -----------------------------------------------------------------------


def _texts(value: Any) -> Iterator[str]:
    if isinstance(value, bytes | memoryview):
        raw = bytes(value)
        yield raw.decode("utf-8", "replace")
        yield from strings(decode(raw))
    elif isinstance(value, str):
        yield value
        with suppress(ValueError):
            yield from strings(json.loads(value))
    else:
        yield from strings(value)


def _hits(texts: Iterator[str], person: Person) -> int:
    return sum(any(t in text.lower() for t in person.traces()) for text in texts)


async def store_hits(hub: Hub, person: Person) -> dict[str, int]:
    """Rows of every table of the database (found in it, not in our models) that hold any of
    the person's traces, per table."""

    def search(conn: Any) -> dict[str, int]:
        metadata = MetaData()
        metadata.reflect(conn)
        found: dict[str, int] = {}
        for table in metadata.sorted_tables:
            for row in conn.execute(select(table)):
                if any(_hits(_texts(value), person) for value in row if value is not None):
                    found[table.name] = found.get(table.name, 0) + 1
        return found

    return await hub.store.run(search)


async def stream_hits(hub: Hub, person: Person) -> dict[str, int]:
    """Messages of every stream (payload and headers) that hold any of the person's traces."""
    found: dict[str, int] = {}
    for kind in ("inbound", "events", "push", "triggers", "dlq"):
        stream = hub.bus.subjects.stream(kind)
        sequence = 1
        while True:
            try:
                msg = await hub.bus.js.get_msg(
                    stream, seq=sequence, subject=hub.bus.subjects.wildcard(kind), next=True
                )
            except NotFoundError:
                break
            assert msg.seq is not None
            sequence = msg.seq + 1
            texts = [*_texts(msg.data or b""), *(msg.headers or {}).values()]
            if _hits(iter(texts), person):
                found[kind] = found.get(kind, 0) + 1
    return found


def cli_erase(hub: Hub, tenant: TenantKeys, client_id: str) -> dict[str, Any]:
    env = {
        **os.environ,
        "JOURNEYHUB_DATA_DIR": str(hub.settings.data_dir),
        "JOURNEYHUB_NATS_URL": hub.bus.url,
    }
    if hub.settings.database_url:
        env["JOURNEYHUB_DATABASE_URL"] = hub.settings.database_url
    command = ["clients", "erase", client_id, "--tenant", tenant.id, "--json"]
    done = subprocess.run(
        [sys.executable, "-m", "journeyhub", *command],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


# --- the tests -----------------------------------------------------------------------------------


async def test_an_erased_client_leaves_no_trace_in_any_table_or_stream(
    hub: Hub, gateway: Gateway, sandboxes: list[TaveSandbox]
) -> None:
    by_api = await make_tenant(hub, "erasure by api")
    by_cli = await make_tenant(hub, "erasure by cli")
    seeded = await asyncio.gather(
        seed(hub, gateway, by_api, sandboxes[0], sandboxes[1], "4401"),
        seed(hub, gateway, by_cli, sandboxes[2], sandboxes[3], "4402"),
    )
    for gone, _ in seeded:
        # The search sees what is there: the client is everywhere the test put it.
        there = await store_hits(hub, gone)
        for table in ("deliveries", "dead_letters", "triggers", "sync_links", "suppressions"):
            if table != "deliveries":  # attempts hold no personal data unless an error quotes it
                assert there.get(table), (table, there)
        assert there.get("audit_log")
        on_bus = await stream_hits(hub, gone)
        assert on_bus.get("push") and on_bus.get("triggers") and on_bus.get("dlq"), on_bus
    kept_before = [
        (await store_hits(hub, kept), await stream_hits(hub, kept)) for _, kept in seeded
    ]

    (gone_api, _), (gone_cli, _) = seeded
    for role in ("read", "ingest"):
        refused = await gateway.client.delete(
            f"/v1/clients/{gone_api.client_id}", headers=by_api.headers(role)
        )
        assert refused.status_code == 403
    answer = await gateway.client.delete(
        f"/v1/clients/{gone_api.client_id}", headers=by_api.headers()
    )
    assert answer.status_code == 200, answer.text
    api_result = answer.json()
    cli_result = await asyncio.to_thread(cli_erase, hub, by_cli, gone_cli.client_id)

    for result, client_id in ((api_result, gone_api.client_id), (cli_result, gone_cli.client_id)):
        assert result["client_id"] == client_id
        tables, streams = result["tables"], result["streams"]
        assert tables["dead_letters"] == 1 and tables["suppressions"] == 1, tables
        assert tables["triggers"] == 1 and tables["audit_log"] == 1, tables
        assert tables["sync_links"] >= 1 and tables["tasks"] >= 3 and tables["deliveries"] >= 3
        assert streams["push"] == 1 and streams["triggers"] == 1 and streams["dlq"] == 1, streams
    # The CLI and the API erase through the same code: the same seed, the same answer.
    assert {k: v for k, v in cli_result.items() if k != "client_id"} == {
        k: v for k, v in api_result.items() if k != "client_id"
    }

    for gone, _ in seeded:
        assert await store_hits(hub, gone) == {}
        assert await stream_hits(hub, gone) == {}
    # The other client of each tenant is as it was.
    assert [
        (await store_hits(hub, kept), await stream_hits(hub, kept)) for _, kept in seeded
    ] == kept_before

    # The audit entry says what was erased where, and names the client by its id alone.
    for tenant, result in ((by_api, api_result), (by_cli, cli_result)):
        entries = await hub.store.audit.list(tenant.id, action="client.erased")
        assert len(entries) == 1
        assert entries[0].after == {
            "client_id": result["client_id"],
            "tables": result["tables"],
            "streams": result["streams"],
        }
        assert entries[0].actor.startswith("key:" if tenant is by_api else "cli")

    again = await gateway.client.delete(
        f"/v1/clients/{gone_api.client_id}", headers=by_api.headers()
    )
    assert again.status_code == 200
    assert not any(again.json()["tables"].values()) and not any(again.json()["streams"].values())


async def test_erasure_is_scoped_to_the_key_s_tenant(
    hub: Hub, gateway: Gateway, tenant: TenantKeys
) -> None:
    """Another tenant's client of the same id (and email) keeps its trigger and suppression."""
    other = await make_tenant(hub, "other studio")
    email = "shared.client@example.com"
    await hub.store.triggers.record(
        Trigger(
            id="trg_erasure_scope",
            type="email_bounced",
            tenant_id=other.id,
            connection_id="con_elsewhere",
            vendor="resend",
            occurred_at=utcnow(),
            source_event_id="bounce-shared",
            client_id="cl_shared",
            data={"email": email},
        )
    )
    await hub.store.triggers.suppress(other.id, email, "bounced")
    answer = await gateway.client.delete("/v1/clients/cl_shared", headers=tenant.headers())
    assert answer.status_code == 200
    assert not any(answer.json()["tables"].values())
    assert await hub.store.triggers.suppressed(other.id, [email])
    assert [t.id for t in await hub.store.triggers.list(other.id)] == ["trg_erasure_scope"]

    erased = await gateway.client.delete("/v1/clients/cl_shared", headers=other.headers())
    assert erased.json()["tables"]["triggers"] == 1
    assert erased.json()["tables"]["suppressions"] == 1
    assert not await hub.store.triggers.suppressed(other.id, [email])


def test_a_vendor_s_raw_request_on_the_bus_is_searched_decoded() -> None:
    """A stored webhook keeps the vendor's request as bytes (base64 in its JSON): the client's
    address in it, JSON or form-encoded, is found; another client's request is not."""
    from journeyhub.model import StoredWebhook
    from journeyhub.services.erasure import ERASED, Identity

    who = Identity("cl_raw")
    who.learn(
        {"client": {"id": "cl_raw", "email": "Raw.Client@Example.com", "phone": "+1 555 0199 88"}}
    )

    def stored(body: bytes) -> bytes:
        return msgspec.json.encode(
            StoredWebhook(
                vendor="resend",
                connection_id="con_x",
                tenant_id="ten_x",
                event_id="evt_1",
                event_type="email.bounced",
                received_at=utcnow(),
                headers={},
                body=body,
            )
        )

    assert b"raw.client" not in stored(b'{"to": ["raw.client@example.com"]}').lower()
    assert who.about_payload(stored(b'{"to": ["raw.client@example.com"]}'))
    assert who.about_payload(stored(b"to=Raw.Client%40example.com&type=bounce"))
    assert who.about_payload(stored(b'{"phone": "+1-555-0199-88"}'))
    assert not who.about_payload(stored(b'{"to": ["someone.else@example.com"]}'))
    # Another client of the same name: its records name it, and stay.
    namesake = {"id": "cl_other", "name": "Raw Client", "email": "other@example.com"}
    who.add("name", "Raw Client")
    assert not who.about({"event": {"client": namesake}})
    assert who.about({"event": {"client": {**namesake, "id": "cl_raw"}}})
    assert who.redact({"to": ["raw.client@example.com"], "subject": "Hi"}) == {
        "to": [ERASED],
        "subject": "Hi",
    }
