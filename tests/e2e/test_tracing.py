"""One correlation id per journey on every log line: from the HTTP request (or webhook) through
the bus, the router, the push worker and the vendor call; never leaking onto another message."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from journeyhub.hub import Hub
from journeyhub.logs import child_correlation_id
from journeyhub.testing.fixtures import Gateway, TenantKeys, eventually
from journeyhub.testing.sandbox import Fault, SandboxServer

from ..conftest import create_connection, event

if TYPE_CHECKING:
    from journeyhub_stripe.sandbox import StripeSandbox
    from journeyhub_tave.sandbox import TaveSandbox

pytestmark = pytest.mark.usefixtures("workers")
STRIPE_SECRET = "whsec_" + "dHJhY2luZy1zdHJpcGUtc2VjcmV0"


class Captured:
    """The JSON log lines written to stderr so far (they accumulate across reads)."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys
        self.lines: list[dict[str, Any]] = []
        capsys.readouterr()

    def read(self) -> list[dict[str, Any]]:
        self.lines += log_lines(self.capsys)
        return self.lines

    async def until(self, **match: Any) -> list[dict[str, Any]]:
        """Wait for a line matching ``match`` (a worker logs just after it writes its row)."""
        await eventually(lambda: about(self.read(), **match), timeout=20)
        return self.lines


def log_lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    lines = []
    for raw in capsys.readouterr().err.splitlines():
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        if isinstance(line, dict) and "event" in line:
            lines.append(line)
    return lines


def about(lines: list[dict[str, Any]], **match: Any) -> list[dict[str, Any]]:
    return [line for line in lines if all(line.get(k) == v for k, v in match.items())]


async def test_one_event_carries_one_correlation_id_to_the_vendor_call(
    gateway: Gateway,
    tenant: TenantKeys,
    hub: Hub,
    tave_sandbox: TaveSandbox,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tave_sandbox.reset()
    connection = await create_connection(
        gateway,
        tenant,
        vendor="tave",
        name="crm",
        direction="outbound",
        config={"api_base": tave_sandbox.api_base},
        credentials={"api_key": tave_sandbox.api_key},
    )
    tave_sandbox.faults.plan(Fault(status=503))  # one retry: the second attempt keeps the id
    captured = Captured(capsys)
    request_id = f"req-trace-{tenant.id}"
    events = [event(f"tr-{tenant.id}-{i}", client_id=f"cl_tr{i}") for i in range(3)]
    answer = await gateway.client.post(
        "/v1/events",
        json=events,
        headers={**tenant.headers("ingest"), "x-request-id": request_id},
    )
    assert answer.status_code == 202 and answer.headers["x-request-id"] == request_id

    async def all_delivered() -> bool:
        rows = await hub.store.deliveries.list(tenant.id, status="delivered")
        return len(rows) == 3

    await eventually(all_delivered, timeout=30)
    for body in events:
        await captured.until(
            correlation_id=child_correlation_id(request_id, body["id"]), event="delivered"
        )
    lines = captured.read()

    for body in events:
        cid = child_correlation_id(request_id, body["id"])
        assert cid.startswith(request_id)
        mine = about(lines, correlation_id=cid)
        by_logger: dict[str, set[str]] = {}
        for line in mine:
            by_logger.setdefault(line.get("logger", "?"), set()).add(line["event"])
        assert "event_accepted" in by_logger["journeyhub.gateway.events_api"]
        assert "delivered" in by_logger["journeyhub.workers.push"]
        # The router's line for its batch lists the event by its id, with its connections.
        (routed,) = [
            line for line in lines if line["event"] == "routed" and cid in line["correlation_ids"]
        ]
        at = routed["correlation_ids"].index(cid)
        assert routed["connections"][at] == [connection["id"]] and routed["worker"] == "router"
        assert routed["logger"] == "journeyhub.workers.router"
        done = about(mine, event="delivered")
        assert len(done) == 1 and done[0]["connection_id"] == connection["id"]
        assert done[0]["vendor"] == "tave" and done[0]["worker"] == "push-worker"
        # Nothing about this event was logged under another id.
        for line in lines:
            if line.get("event_id") == body["id"] or line.get("task_id") in {
                d["task_id"] for d in done
            }:
                assert line.get("correlation_id") == cid, line

    retried = about(lines, event="push_failed_will_retry", connection_id=connection["id"])
    assert len(retried) == 1
    assert retried[0]["correlation_id"] in {
        child_correlation_id(request_id, e["id"]) for e in events
    }
    rows = await hub.store.deliveries.list(tenant.id)
    assert {r.correlation_id for r in rows} == {
        child_correlation_id(request_id, e["id"]) for e in events
    }


async def test_a_webhook_keeps_its_id_through_the_trigger_to_the_journey_engine(
    gateway: Gateway,
    tenant: TenantKeys,
    hub: Hub,
    stripe_sandbox: StripeSandbox,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from journeyhub import signing
    from journeyhub_stripe.sandbox import payment_intent
    from litestar import Litestar, Request, post
    from standardwebhooks.webhooks import Webhook

    engine_secret = signing.new_secret()
    received: list[str] = []

    @post("/hooks", status_code=204)
    async def engine(request: Request) -> None:
        Webhook(engine_secret).verify(await request.body(), dict(request.headers))
        received.append(request.headers["webhook-id"])

    with SandboxServer(Litestar([engine])) as server:
        outbound = await create_connection(
            gateway,
            tenant,
            vendor="webhook",
            name="journey engine",
            direction="outbound",
            config={"url": f"{server.url}/hooks"},
            credentials={"secret": engine_secret},
            event_types=["payment_received"],
        )
        stripe = await create_connection(
            gateway,
            tenant,
            vendor="stripe",
            name="payments",
            direction="inbound",
            credentials={"webhook_secret": STRIPE_SECRET},
        )
        captured = Captured(capsys)
        request_id = f"wh-trace-{tenant.id}"
        intent = payment_intent(amount=5_000, currency="gbp", metadata={"client_id": "cl_wh"})
        sent = stripe_sandbox.emit("payment_intent.succeeded", intent)
        async with httpx.AsyncClient(headers={"x-request-id": request_id}) as http:
            answer = await stripe_sandbox.deliver(
                sent, stripe["webhook_url"], [STRIPE_SECRET], http
            )
        assert answer.status_code == 200
        await eventually(lambda: received, timeout=20)
        await eventually(lambda: hub.store.deliveries.list(tenant.id, status="delivered"))
    lines = await captured.until(correlation_id=request_id, event="delivered")
    mine = about(lines, correlation_id=request_id)
    seen = {(line.get("logger"), line["event"]) for line in mine}
    # The gateway logs an accepted webhook at debug only; the inbound worker's line for its
    # batch lists the webhook by the request id.
    batches = [
        line
        for line in lines
        if line["event"] == "webhooks_processed" and request_id in line["correlation_ids"]
    ]
    assert [line["logger"] for line in batches] == ["journeyhub.workers.inbound"]
    assert any(
        line["event"] == "routed" and request_id in line["correlation_ids"] for line in lines
    ), "the trigger router's line lists the trigger"
    assert ("journeyhub.workers.push", "delivered") in seen
    pushed = about(mine, event="delivered")
    assert pushed[0]["connection_id"] == outbound["id"] and pushed[0]["vendor"] == "webhook"
    rows = await hub.store.deliveries.list(tenant.id, status="delivered")
    assert [r.correlation_id for r in rows] == [request_id]


async def test_ids_do_not_leak_from_one_message_to_the_next(
    gateway: Gateway,
    tenant: TenantKeys,
    hub: Hub,
    tave_sandbox: TaveSandbox,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tave_sandbox.reset()
    await create_connection(
        gateway,
        tenant,
        vendor="tave",
        name="crm",
        direction="outbound",
        config={"api_base": tave_sandbox.api_base},
        credentials={"api_key": tave_sandbox.api_key},
    )
    captured = Captured(capsys)
    ids = []
    for i in range(4):  # one request each, several clients, in quick succession
        request_id = f"leak-{i}-{tenant.id}"
        body = event(f"lk-{tenant.id}-{i}", client_id=f"cl_lk{i % 2}")
        ids.append((child_correlation_id(request_id, body["id"]), body["id"]))
        answer = await gateway.client.post(
            "/v1/events",
            json=body,
            headers={**tenant.headers("ingest"), "x-request-id": request_id},
        )
        assert answer.status_code == 202

    async def all_delivered() -> bool:
        return len(await hub.store.deliveries.list(tenant.id, status="delivered")) == 4

    await eventually(all_delivered, timeout=30)
    for cid, _ in ids:
        await captured.until(correlation_id=cid, event="delivered")
    lines = captured.read()
    for cid, event_id in ids:
        for line in about(lines, event_id=event_id):
            assert line["correlation_id"] == cid, line
        assert about(lines, correlation_id=cid, event="delivered")
    # Lines of the workers' own loops carry no message's id.
    for line in lines:
        if line["event"] in ("fetch_failed", "workers_started", "synced"):
            assert not str(line.get("correlation_id", "")).startswith("leak-"), line


def test_child_correlation_ids_fit_the_column() -> None:
    assert child_correlation_id("req", "ev-1") == "req:ev-1"
    long = child_correlation_id("r" * 80, "e" * 200)
    assert len(long) <= 80 and long.startswith("r" * 40)
    assert child_correlation_id("r" * 80, "e" * 200) == long  # stable
    assert child_correlation_id("r" * 80, "f" * 200) != long
