"""OpenTelemetry: one trace from a journey event (or a vendor's webhook, or a sync run) through
the gateway, the bus, the workers and the vendor call, checked span by span with the SDK's
in-memory exporter; log lines carry its id; and with tracing off, nothing of it reaches the
messages."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

import httpx
import msgspec
import nats
import pytest
import pytest_asyncio
from journeyhub import tracing
from journeyhub.hub import Hub
from journeyhub.testing.fixtures import Gateway, TenantKeys, eventually
from journeyhub.testing.sandbox import SandboxServer
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, format_trace_id

from ..conftest import create_connection, event

if TYPE_CHECKING:
    from journeyhub_resend.sandbox import ResendSandbox
    from journeyhub_stripe.sandbox import StripeSandbox
    from journeyhub_tave.sandbox import TaveSandbox

pytestmark = pytest.mark.usefixtures("workers")
STRIPE_SECRET = "whsec_" + "b3RlbC1zdHJpcGUtc2VjcmV0LWZvci10ZXN0cw"
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Tracing on, into memory, for one test; off again after it."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    yield exporter
    tracing.uninstall()
    provider.shutdown()


class Tap:
    """Every message published on some subjects, as NATS delivers it (headers included)."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, dict[str, str]]] = []

    async def handler(self, msg: Any) -> None:
        self.messages.append((msg.subject, dict(msg.headers or {})))


@pytest_asyncio.fixture
async def tap(hub: Hub, tenant: TenantKeys) -> AsyncIterator[Tap]:
    found = Tap()
    nc = await nats.connect(hub.bus.url)
    await nc.subscribe(hub.bus.subjects.events(tenant.id), cb=found.handler)
    await nc.subscribe(hub.bus.subjects.wildcard("push"), cb=found.handler)
    await nc.subscribe(hub.bus.subjects.triggers(tenant.id), cb=found.handler)
    await nc.flush()
    yield found
    await nc.drain()


class Tree:
    """The finished spans of one trace, by id."""

    def __init__(self, exporter: InMemorySpanExporter, trace_id: int) -> None:
        self.spans = [
            s
            for s in exporter.get_finished_spans()
            if s.context is not None and s.context.trace_id == trace_id
        ]
        self.by_id = {s.context.span_id: s for s in self.spans if s.context is not None}

    def named(self, name: str, **attributes: Any) -> list[ReadableSpan]:
        return [
            s
            for s in self.spans
            if s.name == name
            and all((s.attributes or {}).get(k) == v for k, v in attributes.items())
        ]

    def parent(self, span: ReadableSpan) -> ReadableSpan:
        assert span.parent is not None, f"{span.name} has no parent"
        return self.by_id[span.parent.span_id]

    def chain(self, leaf: ReadableSpan) -> list[str]:
        """The names from ``leaf`` up to the trace's root in this process."""
        names = [leaf.name]
        while leaf.parent is not None and leaf.parent.span_id in self.by_id:
            leaf = self.parent(leaf)
            names.append(leaf.name)
        return names


def trace_of(exporter: InMemorySpanExporter, server_span: str, **attributes: Any) -> int:
    (root,) = [
        s
        for s in exporter.get_finished_spans()
        if s.name == server_span
        and all((s.attributes or {}).get(k) == v for k, v in attributes.items())
    ]
    assert root.kind == SpanKind.SERVER and root.context is not None
    return root.context.trace_id


def log_lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    lines = []
    for raw in capsys.readouterr().err.splitlines():
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        if isinstance(line, dict):
            lines.append(line)
    return lines


async def test_a_journey_event_is_one_trace_from_the_gateway_to_the_vendor_call(
    gateway: Gateway,
    tenant: TenantKeys,
    hub: Hub,
    tave_sandbox: TaveSandbox,
    spans: InMemorySpanExporter,
    tap: Tap,
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
    capsys.readouterr()
    request_id = f"otel-{tenant.id}"
    answer = await gateway.client.post(
        "/v1/events",
        json=event(f"ot-{tenant.id}", client_id="cl_otel"),
        headers={
            **tenant.headers("ingest"),
            "x-request-id": request_id,
            # The journey engine's own trace: the hub's spans continue it.
            "traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01",
        },
    )
    assert answer.status_code == 202

    def pushed() -> list[ReadableSpan]:
        return [
            s
            for s in spans.get_finished_spans()
            if s.name == "process jh.push"
            and (s.attributes or {}).get("journeyhub.connection_id") == connection["id"]
        ]

    await eventually(pushed, timeout=30)
    trace_id = trace_of(spans, "POST /v1/events", **{"journeyhub.request_id": request_id})
    assert format_trace_id(trace_id) == CALLER_TRACE
    tree = Tree(spans, trace_id)

    (server,) = tree.named("POST /v1/events")
    assert server.parent is not None and server.parent.span_id == int(CALLER_SPAN, 16)
    assert (server.attributes or {})["http.response.status_code"] == 202
    (push,) = tree.named("process jh.push", **{"journeyhub.connection_id": connection["id"]})
    assert (push.attributes or {})["journeyhub.vendor"] == "tave"
    calls = [s for s in tree.spans if s.kind == SpanKind.CLIENT]
    assert calls, "the vendor calls have spans"
    host = httpx.URL(tave_sandbox.api_base).host
    for call in calls:
        assert tree.chain(call) == [
            call.name,
            "process jh.push",
            "publish jh.push",
            "process jh.events",
            "publish jh.events",
            "POST /v1/events",
        ]
        attributes = call.attributes or {}
        assert attributes["server.address"] == host
        assert attributes["http.response.status_code"] < 400
        assert "url.full" not in attributes and "url.path" not in attributes
    assert [s.kind for s in (push, tree.parent(push), tree.parent(tree.parent(push)))] == [
        SpanKind.CONSUMER,
        SpanKind.PRODUCER,
        SpanKind.CONSUMER,
    ]
    # Nothing of the client's in any attribute.
    for span in tree.spans:
        text = json.dumps(dict(span.attributes or {}))
        assert "Ada" not in text and "example.com" not in text and "+44" not in text

    # The messages carried the trace context.
    mine = {hub.bus.subjects.events(tenant.id), hub.bus.subjects.push(connection["id"])}
    carried = [headers for subject, headers in tap.messages if subject in mine]
    assert len(carried) == 2
    assert all(CALLER_TRACE in headers.get("traceparent", "") for headers in carried)

    lines = log_lines(capsys)
    delivered = [
        line
        for line in lines
        if line.get("event") == "delivered" and line.get("connection_id") == connection["id"]
    ]
    assert delivered and delivered[0]["trace_id"] == CALLER_TRACE
    assert delivered[0]["span_id"] == format(push.context.span_id, "016x")  # type: ignore[union-attr]
    accepted = [line for line in lines if line.get("event") == "event_accepted"]
    assert any(line.get("trace_id") == CALLER_TRACE for line in accepted)


async def test_a_webhook_is_one_trace_through_its_trigger_to_the_journey_engine(
    gateway: Gateway,
    tenant: TenantKeys,
    hub: Hub,
    stripe_sandbox: StripeSandbox,
    spans: InMemorySpanExporter,
) -> None:
    from journeyhub import signing
    from journeyhub_stripe.sandbox import payment_intent
    from litestar import Litestar, Request, post

    engine_secret = signing.new_secret()
    received: list[str] = []

    @post("/hooks", status_code=204)
    async def engine(request: Request) -> None:
        received.append(request.headers.get("traceparent", ""))

    with SandboxServer(Litestar([engine])) as server:
        await create_connection(
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
        intent = payment_intent(amount=5_000, currency="gbp", metadata={"client_id": "cl_ot"})
        sent = stripe_sandbox.emit("payment_intent.succeeded", intent)
        # A vendor's traceparent is not trusted: the webhook starts a trace of its own.
        headers = {"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"}
        async with httpx.AsyncClient(headers=headers) as http:
            answer = await stripe_sandbox.deliver(
                sent, stripe["webhook_url"], [STRIPE_SECRET], http
            )
        assert answer.status_code == 200
        await eventually(lambda: received, timeout=20)

    def engine_called() -> list[ReadableSpan]:
        return [
            s
            for s in spans.get_finished_spans()
            if s.name == "process jh.push"
            and (s.attributes or {}).get("journeyhub.vendor") == "webhook"
        ]

    await eventually(engine_called, timeout=20)
    trace_id = trace_of(
        spans,
        "POST /webhooks/{vendor}/{connection_id}",
        **{"journeyhub.connection_id": stripe["id"]},
    )
    assert format_trace_id(trace_id) != CALLER_TRACE
    tree = Tree(spans, trace_id)
    (process,) = tree.named("process jh.inbound")
    assert (process.attributes or {})["journeyhub.vendor"] == "stripe"
    assert (process.attributes or {})["journeyhub.outcome"] == "processed"
    (published,) = tree.named("publish jh.triggers")
    assert tree.chain(published) == [
        "publish jh.triggers",
        "process jh.inbound",
        "publish jh.inbound",
        "POST /webhooks/{vendor}/{connection_id}",
    ]
    (call,) = [s for s in tree.spans if s.kind == SpanKind.CLIENT]
    assert tree.chain(call)[:5] == [
        "POST",
        "process jh.push",
        "publish jh.push",
        "process jh.triggers",
        "publish jh.triggers",
    ]
    # The journey engine can continue the trace too.
    assert received[0].split("-")[1] == format_trace_id(trace_id)


async def test_tasks_sent_in_one_batch_call_are_each_in_its_span(
    gateway: Gateway,
    tenant: TenantKeys,
    hub: Hub,
    resend_sandbox: ResendSandbox,
    spans: InMemorySpanExporter,
) -> None:
    resend_sandbox.reset()
    connection = await create_connection(
        gateway,
        tenant,
        vendor="resend",
        name="mail",
        direction="outbound",
        config={
            "from_address": "Studio <hello@example.com>",
            "api_base": resend_sandbox.url,
            "templates": {"welcome": {"subject": "Welcome", "html": "<p>Hello</p>"}},
        },
        credentials={"api_key": resend_sandbox.api_key},
    )
    request_id = f"otel-mail-{tenant.id}"
    mails = [
        event(
            f"om-{i}-{tenant.id}",
            "email_requested",
            client_id=f"cl_om{i}",
            data={"template": "welcome"},
        )
        for i in range(4)
    ]
    answer = await gateway.client.post(
        "/v1/events", json=mails, headers={**tenant.headers("ingest"), "x-request-id": request_id}
    )
    assert answer.status_code == 202

    async def all_delivered() -> bool:
        return len(await hub.store.deliveries.list(tenant.id, status="delivered")) == 4

    await eventually(all_delivered, timeout=30)
    await eventually(
        lambda: len(
            [
                s
                for s in spans.get_finished_spans()
                if s.kind == SpanKind.CLIENT and s.name == "POST"
            ]
        )
    )
    tree = Tree(spans, trace_of(spans, "POST /v1/events", **{"journeyhub.request_id": request_id}))
    published = {s.context.span_id for s in tree.named("publish jh.push") if s.context}
    assert len(published) == 4
    pushes = tree.named("process jh.push", **{"journeyhub.connection_id": connection["id"]})
    # Each task's publish is the parent of its push span, or linked from its batch's span.
    reached = set()
    for push in pushes:
        assert push.parent is not None
        reached.add(push.parent.span_id)
        reached |= {link.context.span_id for link in push.links}
    assert reached == published
    calls = [s for s in tree.spans if s.kind == SpanKind.CLIENT]
    assert calls and all(tree.parent(call) in pushes for call in calls)


async def test_with_tracing_off_no_trace_context_is_put_on_messages(
    gateway: Gateway, tenant: TenantKeys, hub: Hub, tave_sandbox: TaveSandbox, tap: Tap
) -> None:
    assert not tracing.ENABLED
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
    answer = await gateway.client.post(
        "/v1/events",
        json=event(f"off-{tenant.id}", client_id="cl_off"),
        headers={
            **tenant.headers("ingest"),
            "traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01",
        },
    )
    assert answer.status_code == 202
    await eventually(lambda: hub.store.deliveries.list(tenant.id, status="delivered"), timeout=30)
    mine = {hub.bus.subjects.events(tenant.id), hub.bus.subjects.push(connection["id"])}
    await eventually(lambda: {subject for subject, _ in tap.messages} >= mine)
    for _, headers in tap.messages:
        assert "Nats-Msg-Id" in headers
        assert not {"traceparent", "tracestate"} & set(headers), headers


def test_the_environment_decides_whether_tracing_is_on() -> None:
    wanted = tracing.wanted_exporters
    assert wanted({}) == []
    assert wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}) == ["otlp"]
    assert wanted({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}) == ["otlp"]
    assert wanted({"OTEL_TRACES_EXPORTER": "otlp"}) == ["otlp"]
    assert wanted({"OTEL_TRACES_EXPORTER": "console, otlp"}) == ["console", "otlp"]
    assert wanted({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "x"}) == []
    assert wanted({"OTEL_TRACES_EXPORTER": "zipkin"}) == []
    assert wanted({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}) == []
    assert wanted({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "TRUE"}) == []
    assert wanted({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "false"}) == ["otlp"]
    assert tracing.setup_from_env({}) is False and not tracing.ENABLED
    assert tracing.service_name({}, "unknown_service:python") == "journeyhub"
    assert tracing.service_name({}, "from-attributes") == "from-attributes"
    assert tracing.service_name({"OTEL_SERVICE_NAME": "hub-eu"}, "x") == "hub-eu"


def test_spans_name_no_secret_of_a_vendor_url() -> None:
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    try:
        headers: dict[str, str] = {}
        span = tracing.client_span(
            "POST", "https://hooks.zapier.com:8443/hooks/catch/123/s3cr3t/?token=t0k3n", headers
        )
        tracing.vendor_answered(span, 200)
        tracing.end(span)
    finally:
        tracing.uninstall()
    (done,) = exporter.get_finished_spans()
    text = msgspec.json.encode(dict(done.attributes or {})).decode() + done.name
    assert "s3cr3t" not in text and "t0k3n" not in text
    assert (done.attributes or {})["server.address"] == "hooks.zapier.com"
    assert headers["traceparent"].startswith("00-")


async def test_a_sync_run_is_one_trace_of_its_vendor_calls_and_triggers(
    gateway: Gateway,
    tenant: TenantKeys,
    hub: Hub,
    stripe_sandbox: StripeSandbox,
    spans: InMemorySpanExporter,
) -> None:
    from journeyhub.workers.pull import SyncWorker
    from journeyhub_stripe.sandbox import payment_intent

    created = await create_connection(
        gateway,
        tenant,
        vendor="stripe",
        name="pay",
        direction="inbound",
        config={"api_base": stripe_sandbox.url, "pull_interval_seconds": 3600},
        credentials={"webhook_secret": STRIPE_SECRET, "api_key": stripe_sandbox.api_key},
    )
    # This interval's scheduled sync counts as done: only the test's own runs sync.
    await hub.store.leases.claim(f"sync:{created['id']}", "test", 3600)
    connection = await hub.store.connections.get(created["id"])
    assert connection is not None
    worker = SyncWorker(hub)
    await worker.sync(connection)  # the catch-up starts here
    stripe_sandbox.emit("payment_intent.succeeded", payment_intent(amount=7, metadata={}))
    spans.clear()
    await worker.sync(connection)

    (run,) = [s for s in spans.get_finished_spans() if s.name == "sync"]
    assert (run.attributes or {})["journeyhub.connection_id"] == created["id"]
    assert run.parent is None and run.context is not None
    tree = Tree(spans, run.context.trace_id)
    calls = [s for s in tree.spans if s.kind == SpanKind.CLIENT]
    (published,) = tree.named("publish jh.triggers")
    assert calls and all(tree.chain(s) == [s.name, "sync"] for s in [*calls, published])
