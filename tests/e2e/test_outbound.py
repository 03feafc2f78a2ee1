"""Outbound end to end: POST /v1/events → router → push worker → vendor sandboxes over HTTP."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import msgspec
import pytest
from journeyhub.hub import Hub
from journeyhub.testing.fixtures import Gateway, TenantKeys, eventually
from journeyhub.testing.sandbox import Fault
from journeyhub.workers.push import OUTCOME_UNKNOWN_WAIT

from ..conftest import create_connection, event

if TYPE_CHECKING:
    from journeyhub_resend.sandbox import ResendSandbox
    from journeyhub_tave.sandbox import TaveSandbox

pytestmark = [pytest.mark.usefixtures("workers"), pytest.mark.plugins]  # Tave, Resend


@pytest.fixture
def tave() -> Iterator[TaveSandbox]:
    """A sandbox of its own per test: the hub is shared by the session, and a late retry or a
    scheduled pull left by an earlier test must not take the faults this test plans."""

    from journeyhub_tave.sandbox import TaveSandbox

    with TaveSandbox() as sandbox:
        yield sandbox


async def tave_connection(
    gateway: Gateway, tenant: TenantKeys, tave: TaveSandbox, **extra: Any
) -> dict:
    return await create_connection(
        gateway,
        tenant,
        vendor="tave",
        name="studio crm",
        direction="outbound",
        config={"api_base": tave.api_base, **extra.pop("config", {})},
        credentials={"api_key": tave.api_key},
        **extra,
    )


async def send(gateway: Gateway, tenant: TenantKeys, body: Any) -> Any:
    answer = await gateway.client.post("/v1/events", json=body, headers=tenant.headers("ingest"))
    assert answer.status_code == 202, answer.text
    return answer.json()


async def delivered(hub: Hub, tenant: TenantKeys, count: int = 1, timeout: float = 20) -> list:
    async def check() -> list | None:
        rows = await hub.store.deliveries.list(tenant.id, status="delivered", limit=1000)
        return rows if len(rows) >= count else None

    return await eventually(check, timeout=timeout)


async def test_a_journey_start_reaches_tave_once(
    gateway: Gateway, tenant: TenantKeys, hub: Hub, tave: TaveSandbox
) -> None:
    await tave_connection(gateway, tenant, tave)
    answer = await send(gateway, tenant, event("ev-start-1", client_id="cl_a"))
    assert answer == {"accepted": ["ev-start-1"], "duplicates": []}
    again = await send(gateway, tenant, [event("ev-start-1", client_id="cl_a")])
    assert again["duplicates"] == ["ev-start-1"]
    rows = await delivered(hub, tenant)
    await asyncio.sleep(0.5)
    assert len(tave.contacts) == 1 and len(tave.jobs) == 1
    job = tave.jobs[0]
    assert "2026-09-12" in str(job)
    assert rows[0].external_ids["contact"] == tave.contacts[0]["id"]
    assert len(await hub.store.deliveries.list(tenant.id, status="delivered")) == 1


async def test_invalid_events_get_422_naming_the_field(
    gateway: Gateway, tenant: TenantKeys
) -> None:
    client = gateway.client
    headers = tenant.headers("ingest")
    bad_type = event("e1")
    bad_type["client"]["email"] = 42
    answer = await client.post("/v1/events", json=bad_type, headers=headers)
    assert answer.status_code == 422
    assert answer.json()["extra"]["errors"][0]["field"] == "$.client.email"
    second_bad = [event("e2"), {**event("e3"), "type": "journey_exploded"}]
    answer = await client.post("/v1/events", json=second_bad, headers=headers)
    assert answer.status_code == 422 and answer.json()["extra"]["errors"][0]["field"] == "$[1].type"
    missing = event("e4")
    del missing["client"]["id"]
    answer = await client.post("/v1/events", json=missing, headers=headers)
    assert answer.status_code == 422 and "`id`" in answer.json()["detail"]
    step = await client.post("/v1/events", json=event("e5", "step_completed"), headers=headers)
    assert step.status_code == 422 and "step" in step.json()["detail"]
    too_many = [event(f"e{i}") for i in range(501)]
    answer = await client.post("/v1/events", json=too_many, headers=headers)
    assert answer.status_code == 422 and "at most 500" in answer.json()["detail"]
    assert (await client.post("/v1/events", content=b"{nope", headers=headers)).status_code == 422
    read_only = await client.post("/v1/events", json=event("e6"), headers=tenant.headers("read"))
    assert read_only.status_code == 403


async def test_a_vendor_500_then_success_gives_one_contact(
    gateway: Gateway, tenant: TenantKeys, hub: Hub, tave: TaveSandbox
) -> None:
    await tave_connection(gateway, tenant, tave)
    tave.faults.plan(Fault(status=500), Fault(status=502))
    await send(gateway, tenant, event("ev-retry", client_id="cl_retry"))
    await delivered(hub, tenant)
    attempts = await hub.store.deliveries.list(tenant.id)
    statuses = [a.status for a in reversed(attempts)]
    assert statuses[-1] == "delivered" and "failed" in statuses
    assert len(tave.contacts) == 1 and tave.creates("address-book") == 1


async def test_429_with_retry_after_is_honoured(
    gateway: Gateway, tenant: TenantKeys, hub: Hub, tave: TaveSandbox
) -> None:
    await tave_connection(gateway, tenant, tave)
    tave.faults.plan(Fault(status=429, retry_after=1.5))
    await send(gateway, tenant, event("ev-429", client_id="cl_429"))
    await delivered(hub, tenant)
    attempts = list(reversed(await hub.store.deliveries.list(tenant.id)))
    limited = next(a for a in attempts if a.status == "rate_limited")
    done = next(a for a in attempts if a.status == "delivered")
    assert limited.vendor_status == 429
    assert (done.created_at - limited.created_at).total_seconds() >= 1.4
    assert len(tave.contacts) == 1


async def test_a_permanent_error_is_dead_lettered_and_its_replay_delivers_once(
    gateway: Gateway, tenant: TenantKeys, hub: Hub, tave: TaveSandbox
) -> None:
    await tave_connection(gateway, tenant, tave)
    tave.faults.plan(
        Fault(
            status=422,
            body={
                "type": "validation",
                "title": "Validation Error",
                "detail": "bad",
                "status": 422,
            },
        )
    )
    await send(gateway, tenant, event("ev-perm", client_id="cl_perm"))
    dead = await eventually(lambda: hub.store.deliveries.list_dead(tenant.id), timeout=20)
    assert len(dead) == 1 and dead[0].stage == "push" and "permanent error" in dead[0].error
    assert len(tave.contacts) == 0
    listed = (await gateway.client.get("/v1/dlq", headers=tenant.headers("read"))).json()
    assert listed[0]["id"] == dead[0].id and listed[0]["payload"]["event"]["id"] == "ev-perm"

    replay = await gateway.client.post(f"/v1/dlq/{dead[0].id}/replay", headers=tenant.headers())
    assert replay.status_code == 202
    await delivered(hub, tenant)
    again = await gateway.client.post(f"/v1/dlq/{dead[0].id}/replay", headers=tenant.headers())
    assert again.status_code == 202
    await asyncio.sleep(1.0)
    assert len(tave.contacts) == 1 and tave.creates("address-book") == 1
    assert len(await hub.store.deliveries.list(tenant.id, status="delivered")) == 1
    audit = await hub.store.audit.list(tenant.id, action="dead_letter.replayed")
    assert len(audit) == 2
    other = await gateway.client.post(
        f"/v1/dlq/{dead[0].id}/replay", headers={"authorization": "Bearer jh_x_y"}
    )
    assert other.status_code == 401


async def test_a_dead_letter_of_a_replay_is_kept_under_its_task(
    gateway: Gateway, tenant: TenantKeys, hub: Hub, tave: TaveSandbox
) -> None:
    """A replay that dies again makes a second dead letter, whose bus message id is the
    replay's. Its own replay must still count and record under the task."""
    await tave_connection(gateway, tenant, tave)
    refusal = Fault(
        status=422,
        body={"type": "validation", "title": "Validation Error", "detail": "bad", "status": 422},
    )
    tave.faults.plan(refusal)
    await send(gateway, tenant, event("ev-twice-dead", client_id="cl_twice"))
    (first,) = await eventually(lambda: hub.store.deliveries.list_dead(tenant.id), timeout=20)
    tave.faults.plan(refusal)
    await gateway.client.post(f"/v1/dlq/{first.id}/replay", headers=tenant.headers())

    async def second_dead():  # type: ignore[no-untyped-def]
        rows = await hub.store.deliveries.list_dead(tenant.id)
        return [r for r in rows if r.id != first.id]

    (second,) = await eventually(second_dead, timeout=20)
    assert second.msg_id != first.msg_id  # the replay's message id
    await gateway.client.post(f"/v1/dlq/{second.id}/replay", headers=tenant.headers())
    (done,) = await delivered(hub, tenant)
    task_id = json.loads(second.payload)["id"]
    assert done.task_id == task_id == first.msg_id
    replays = await hub.store.deliveries.list(tenant.id, status="replayed")
    assert [r.task_id for r in replays] == [task_id, task_id]
    assert len(tave.contacts) == 1 and tave.creates("address-book") == 1


async def test_per_client_order_holds_under_concurrency_and_faults(
    gateway: Gateway, tenant: TenantKeys, hub: Hub, tave: TaveSandbox
) -> None:
    await tave_connection(gateway, tenant, tave)
    # Three faults land on whichever calls come first: some tasks retry, none exhausts its
    # attempts, and later steps for the client must wait for the earlier ones.
    tave.faults.plan(Fault(status=500), Fault(status=503), Fault(status=500))
    batch = [event("ord-0", client_id="cl_ord")]
    batch += [
        event(
            f"ord-{i}",
            "step_completed",
            client_id="cl_ord",
            step={"name": f"step {i}", "type": "task"},
        )
        for i in range(1, 13)
    ]
    batch += [event(f"other-{i}", client_id=f"cl_o{i}") for i in range(6)]
    await send(gateway, tenant, batch)
    await delivered(hub, tenant, count=len(batch), timeout=60)
    tave.faults.clear()
    notes = sorted(tave.notes, key=lambda n: n["created"] if "created" in n else n["id"])
    steps = [int(s) for n in notes for s in __import__("re").findall(r"step (\d+)", str(n))[:1]]
    assert steps == list(range(1, 13))
    assert len(tave.contacts) == 7 and tave.creates("address-book") == 7


async def test_a_bad_mapping_is_refused_when_the_connection_is_saved(
    gateway: Gateway, tenant: TenantKeys, tave: TaveSandbox
) -> None:
    body = {
        "vendor": "tave",
        "name": "crm",
        "config": {"api_base": tave.api_base},
        "credentials": {"api_key": tave.api_key},
    }
    cases = [
        ([{"source": "client.emali", "target": "email"}], "$.field_mappings[0].source"),
        (
            [
                {"source": "client.email", "target": "email"},
                {"source": "wedding.date", "target": "date", "transform": "date:DD/MM"},
            ],
            "$.field_mappings[1].transform",
        ),
        (
            [
                {
                    "source": "client.name",
                    "target": "n",
                    "transform": "template",
                    "options": {"template": "{{ event.client.name "},
                }
            ],
            "$.field_mappings[0].options.template",
        ),
        (
            [{"source": "client.name", "target": "n", "transform": "shout"}],
            "$.field_mappings[0].transform",
        ),
    ]
    for mappings, field in cases:
        answer = await gateway.client.post(
            "/v1/connections", json={**body, "field_mappings": mappings}, headers=tenant.headers()
        )
        assert answer.status_code == 422, mappings
        assert answer.json()["extra"]["errors"][0]["field"] == field
    bad_config = await gateway.client.post(
        "/v1/connections",
        json={**body, "config": {"api_base": "ftp://x"}},
        headers=tenant.headers(),
    )
    assert bad_config.status_code == 422 and bad_config.json()["extra"]["errors"][0][
        "field"
    ].startswith("$.config")
    good = await gateway.client.post(
        "/v1/connections",
        json={
            **body,
            "field_mappings": [
                {"source": "wedding.venue.name", "target": "venue", "transform": "upper"}
            ],
        },
        headers=tenant.headers(),
    )
    assert good.status_code == 201


async def test_suppressed_addresses_are_not_mailed(
    gateway: Gateway, tenant: TenantKeys, hub: Hub, resend_sandbox: ResendSandbox
) -> None:
    resend_sandbox.reset()
    await create_connection(
        gateway,
        tenant,
        vendor="resend",
        name="mail",
        direction="outbound",
        config={
            "from_address": "Studio <hello@example.com>",
            "api_base": resend_sandbox.url,
            "templates": {
                "welcome": {
                    "subject": "Welcome {{ client.first_name }}",
                    "html": "<p>See you at {{ wedding.venue.name }}</p>",
                }
            },
        },
        credentials={"api_key": resend_sandbox.api_key},
    )
    await hub.store.triggers.suppress(tenant.id, "cl_gone@example.com", "bounced")
    await send(
        gateway,
        tenant,
        [
            event("mail-1", "email_requested", client_id="cl_gone", data={"template": "welcome"}),
            event("mail-2", "email_requested", client_id="cl_here", data={"template": "welcome"}),
        ],
    )
    rows = await eventually(
        lambda: _statuses(hub, tenant.id, {"delivered", "skipped"}, 2), timeout=20
    )
    by_source = {r.source_id: r for r in rows}
    assert by_source["mail-1"].status == "skipped"
    assert by_source["mail-2"].status == "delivered"
    assert [e["to"] for e in resend_sandbox.emails] == [["cl_here@example.com"]]
    assert "Kew Gardens" in resend_sandbox.emails[0]["html"]


async def routed_all(hub: Hub) -> bool:
    info = await hub.bus.js.consumer_info(hub.bus.subjects.stream("events"), "router")
    return info.num_pending == 0 and info.num_ack_pending == 0


async def _statuses(hub: Hub, tenant_id: str, statuses: set[str], count: int) -> list | None:
    rows = [r for r in await hub.store.deliveries.list(tenant_id) if r.status in statuses]
    return rows if len(rows) >= count else None


async def test_a_call_the_vendor_carries_out_after_our_timeout_is_not_made_twice(
    gateway: Gateway, tenant: TenantKeys, hub: Hub, tave: TaveSandbox
) -> None:
    """The first call answers 0.5 s after the 1 s client timeout and still creates the contact
    then: the retry waits long enough for its lookup to find it."""
    await tave_connection(gateway, tenant, tave, config={"timeout_seconds": 1})
    tave.faults.plan(Fault(delay=1.5))
    await send(gateway, tenant, event("ev-late-1", client_id="cl_late"))
    await delivered(hub, tenant, timeout=40)
    attempts = sorted(
        await hub.store.deliveries.list(tenant.id, limit=10), key=lambda row: row.created_at
    )
    assert [a.status for a in attempts] == ["failed", "delivered"]
    assert "timed out" in (attempts[0].error or "")
    assert (attempts[1].created_at - attempts[0].created_at).total_seconds() >= OUTCOME_UNKNOWN_WAIT
    await asyncio.sleep(0.5)
    assert len(tave.contacts) == 1 and tave.creates("address-book") == 1
    assert len(tave.jobs) == 1


async def test_an_event_routed_again_after_its_task_finished_holds_no_one_back(
    gateway: Gateway, tenant: TenantKeys, hub: Hub, tave: TaveSandbox
) -> None:
    """The router's ack can be lost (a NATS node going down) and the event routed a second
    time after its task was delivered, or dead-lettered. The bus drops the republished task
    as a duplicate; the task must not be put back in its client's order, or the client's
    later steps would wait behind it for ever."""
    connection = await tave_connection(gateway, tenant, tave)
    first = event("again-1", client_id="cl_again")
    refused = event("again-2", client_id="cl_again_dead")
    await send(gateway, tenant, first)
    await delivered(hub, tenant)
    tave.faults.plan(Fault(status=422))  # the second client's start is refused for good
    await send(gateway, tenant, refused)
    await eventually(lambda: hub.store.deliveries.list_dead(tenant.id), timeout=20)
    for body in (first, refused):  # a redelivery of each event to the router
        await hub.bus.publish(
            hub.bus.subjects.events(tenant.id),
            msgspec.json.encode(body),
            msg_id=f"{body['id']}:again",
        )
    await eventually(lambda: routed_all(hub), timeout=20)
    assert await hub.store.tasks.pending_count(connection["id"]) == 0
    steps = [
        event(
            f"again-step-{n}",
            "step_completed",
            client_id=client,
            step={"name": f"step {n}", "type": "task"},
        )
        for n, client in enumerate(("cl_again", "cl_again_dead"))
    ]
    await send(gateway, tenant, steps)
    await delivered(hub, tenant, count=3, timeout=20)
    assert len(tave.notes) == 2


async def test_the_next_event_of_a_client_writes_by_the_ids_the_hub_learnt(
    gateway: Gateway, tenant: TenantKeys, hub: Hub, tave: TaveSandbox
) -> None:
    """The vendor id map: a journey start makes three records and no lookup; the client's
    next step and update write straight to the ids the start reported."""
    await tave_connection(gateway, tenant, tave)
    await send(gateway, tenant, event("map-1", client_id="cl_map"))
    await delivered(hub, tenant)
    # The studio's job types are a list read once and cached: not a lookup of the client's.
    records = {call: n for call, n in tave.requests.items() if "job-type" not in call}
    assert records == {
        "POST /api/v2/address-book": 1,
        "POST /api/v2/job": 1,
        "POST /api/v2/job-contact": 1,
    }
    step = event(
        "map-2",
        "step_completed",
        client_id="cl_map",
        step={"name": "Questionnaire", "type": "form"},
    )
    update = event("map-3", "client_updated", client_id="cl_map", wedding={"date": "2026-10-03"})
    update["client"]["name"] = "Ada King"
    await send(gateway, tenant, [step, update])
    await delivered(hub, tenant, count=3)
    (contact,), (job,) = tave.contacts, tave.jobs
    assert tave.requests["POST /api/v2/note"] == 1
    assert tave.requests[f"PUT /api/v2/address-book/{contact['id']}"] == 1
    assert tave.requests[f"PUT /api/v2/job/{job['id']}"] == 1
    assert not [c for c in tave.requests if c.startswith("GET") and "job-type" not in c]


async def test_a_record_the_studio_deleted_is_made_again_and_forgotten(
    gateway: Gateway, tenant: TenantKeys, hub: Hub, tave: TaveSandbox
) -> None:
    """A stale map entry: the contact the hub knows was deleted in Tave. The update finds it
    gone (404), looks up, makes a new one; the hub forgets the old id, so the next update
    goes straight to the new contact."""
    connection = await tave_connection(gateway, tenant, tave)
    await send(gateway, tenant, event("stale-1", client_id="cl_stale"))
    await delivered(hub, tenant)
    (old,) = tave.contacts
    tave.vendor_delete("address-book", old["id"])
    for n, name in ((2, "Ada King"), (3, "Ada Byron")):
        update = event(f"stale-{n}", "client_updated", client_id="cl_stale")
        update["client"]["name"] = name
        await send(gateway, tenant, update)
        await delivered(hub, tenant, count=n)
    (new,) = tave.contacts
    assert new["id"] != old["id"] and new["lastName"] == "Byron"
    assert tave.requests[f"PUT /api/v2/address-book/{old['id']}"] == 1  # once, then forgotten
    assert tave.requests[f"PUT /api/v2/address-book/{new['id']}"] == 1
    link = await hub.store.sync.find(connection["id"], "contact", old["id"])
    assert link is not None and link.deleted


async def test_a_write_whose_answer_was_lost_is_found_by_the_retry(
    gateway: Gateway, tenant: TenantKeys, hub: Hub, tave: TaveSandbox
) -> None:
    """An unknown outcome: Tave makes the job but the answer is lost (502). The retry is a
    second attempt, so it looks up before creating, finds the job, and makes no second."""
    await tave_connection(gateway, tenant, tave)
    tave.lose_response("POST", "/job")
    await send(gateway, tenant, event("lost-1", client_id="cl_lost"))
    await delivered(hub, tenant, timeout=30)
    assert len(tave.jobs) == 1 and tave.creates("job") == 1
    assert len(tave.contacts) == 1 and len(tave.job_contacts) == 1
    assert any(call.startswith("GET /api/v2/job") for call in tave.requests)  # the lookup


# --- an endpoint that says it is gone -------------------------------------------------------------


async def test_410_gone_disables_the_connection_audits_it_and_shows_in_its_health(
    gateway: Gateway, tenant: TenantKeys, hub: Hub
) -> None:
    """A journey engine answering 410 Gone gets no retry and nothing more: the connection is
    disabled (status ``gone``), the change audited, its health says so; re-enabled by a
    person, it delivers again."""
    from journeyhub import signing
    from journeyhub.testing.sandbox import SandboxServer
    from litestar import Litestar, Request, Response, post
    from standardwebhooks.webhooks import Webhook

    secret = signing.new_secret()
    received: list[str] = []
    state = {"gone": True}

    @post("/hooks", status_code=200)
    async def engine(request: Request) -> Response[Any]:
        payload = Webhook(secret).verify(await request.body(), dict(request.headers))
        received.append(payload["data"]["id"])
        return Response({}, status_code=410 if state["gone"] else 200)

    app = Litestar([engine], signature_namespace={"Response": Response})
    with SandboxServer(app) as server:
        connection = await create_connection(
            gateway,
            tenant,
            vendor="webhook",
            name="journey engine",
            direction="outbound",
            config={"url": f"{server.url}/hooks"},
            credentials={"secret": secret},
            event_types=["journey_started"],
        )
        url = f"/v1/connections/{connection['id']}"
        await send(gateway, tenant, event(f"gone-1-{tenant.id}", client_id="cl_gone"))
        dead = await eventually(lambda: hub.store.deliveries.list_dead(tenant.id), timeout=20)
        assert len(dead) == 1 and "410" in dead[0].error

        async def health() -> dict[str, Any] | None:
            answer = await gateway.client.get(f"{url}/health", headers=tenant.headers("read"))
            found = answer.json()
            return found if found["endpoint_gone"] else None

        shown = await eventually(health, timeout=10)
        assert shown["status"] == "gone" and shown["enabled"] is False
        assert shown["connected"] is False and shown["last_24h"]["by_status"] == {"dead": 1}
        read = (await gateway.client.get(url, headers=tenant.headers("read"))).json()
        assert read["enabled"] is False and read["status"] == "gone"
        audit = await hub.store.audit.list(tenant.id, action="connection.endpoint_gone")
        assert [(a.actor, a.connection_id) for a in audit] == [("system", connection["id"])]
        assert "410" in audit[0].after["reason"]

        await send(gateway, tenant, event(f"gone-2-{tenant.id}", client_id="cl_gone2"))
        await asyncio.sleep(2.0)  # time enough for a retry, or a push of the next event
        assert received == [f"gone-1-{tenant.id}"], "a gone endpoint was called again"

        state["gone"] = False
        answer = await gateway.client.patch(url, json={"enabled": True}, headers=tenant.headers())
        assert answer.status_code == 200 and answer.json()["status"] == "active"
        await send(gateway, tenant, event(f"gone-3-{tenant.id}", client_id="cl_gone3"))
        await delivered(hub, tenant)
        assert received[-1] == f"gone-3-{tenant.id}"
