"""Where the gateway's CPU goes, per accepted webhook: drives the ASGI app in-process (no HTTP
server, no wrk) and measures the CPU time of this process per request for the real app and for
prototypes of kernel changes. CPU time, unlike a rate, stays meaningful on a busy machine.

    cd /work/main && uv run --frozen python bench/ingest/attribution.py [--requests 20000]

Variants (each on distinct, freshly signed Stripe events, 32 requests in flight):
  litestar no-op             the bare endpoint of run.py, through the same ASGI interface
  gateway as is              create_app(hub), JSON logs at info to a file, publish to nats-server
  - log level warning        JOURNEYHUB_LOG_LEVEL=warning: no per-request ``webhook_stored`` line
  - no RequestIdMiddleware   the app built without it
  - both                     the two above together
  - bus publish stubbed      the same app with Bus.publish answering at once (what nats-py costs)
and micro-measurements of the pieces: Stripe verification, one structlog JSON line, the
StoredWebhook encoding, one JetStream publish with nats-py.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import shutil
import sys
import tempfile
import time
import types
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from litestar import Litestar, Request, Response, post  # noqa: E402
from run import cli, provision, stripe_template  # noqa: E402
from serve_app import _NoRequestId, bare_app  # noqa: E402


def signed_events(count: int, secret: str) -> list[tuple[bytes, str]]:
    from journeyhub_stripe.sandbox import StripeSandbox

    template, event_id, intent_id = stripe_template()
    tag = secrets.token_hex(4)
    now = int(time.time())
    out = []
    for i in range(count):
        unique = f"{tag}{i:016d}"
        body = template.replace(event_id, f"evt_{unique}").replace(intent_id, f"pi_{unique}")
        raw = body.encode()
        out.append((raw, StripeSandbox.signature_header(raw, [secret], now)))
    return out


async def drive(app: Any, path: str, requests: list[tuple[bytes, str]], concurrency: int) -> float:
    """POST every request through ``app``; return CPU µs per request (all 2xx, else raise)."""
    statuses: dict[int, int] = {}

    async def one(body: bytes, signature: str) -> None:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [
                (b"host", b"127.0.0.1:8000"),
                (b"user-agent", b"Stripe/1.0 (+https://stripe.com/docs/webhooks)"),
                (b"content-type", b"application/json; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (b"stripe-signature", signature.encode()),
            ],
            "client": ("127.0.0.1", 40000),
            "server": ("127.0.0.1", 8000),
            "state": {},
        }
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                await asyncio.sleep(3600)
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses[message["status"]] = statuses.get(message["status"], 0) + 1

        await app(scope, receive, send)

    queue = list(requests)
    started = time.process_time()

    async def lane() -> None:
        while queue:
            body, signature = queue.pop()
            await one(body, signature)

    await asyncio.gather(*(lane() for _ in range(concurrency)))
    cpu = time.process_time() - started
    if set(statuses) - {200}:
        raise RuntimeError(f"non-200 answers: {statuses}")
    return cpu / len(requests) * 1e6


def micro(label: str, fn: Callable[[], Any], repeat: int) -> tuple[str, float]:
    started = time.process_time()
    for _ in range(repeat):
        fn()
    return label, (time.process_time() - started) / repeat * 1e6


async def amicro(
    label: str, fn: Callable[[int], Awaitable[Any]], repeat: int, concurrency: int = 32
) -> tuple[str, float]:
    started = time.process_time()
    for base in range(0, repeat, concurrency):
        await asyncio.gather(*(fn(base + i) for i in range(concurrency)))
    return label, (time.process_time() - started) / repeat * 1e6


async def main(args: argparse.Namespace) -> None:
    from journeyhub.bus.embedded import EmbeddedNats
    from journeyhub.gateway import app as app_module
    from journeyhub.hub import Hub
    from journeyhub.logs import configure_logging
    from journeyhub.settings import load_settings

    tmp = Path(tempfile.mkdtemp(prefix="jh-bench-attr-"))
    nats_server = EmbeddedNats(tmp / "nats").start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEYHUB_")}
    env.update(JOURNEYHUB_DATA_DIR=str(tmp / "data"), JOURNEYHUB_NATS_URL=nats_server.url)
    log_sink = (tmp / "gateway.log").open("w")
    real_stderr = sys.stderr
    rows: list[tuple[str, float]] = []
    try:
        tenant = cli(env, "tenants", "add", "Attribution")
        await provision(env)
        settings = load_settings(env)
        hub = await Hub.start(settings, run_migrations=False, provision=False)
        whsec = "whsec_" + secrets.token_urlsafe(24)
        connection_id = await _create_connection(hub, tenant, whsec)
        path = f"/webhooks/stripe/{connection_id}"
        n, c = args.requests, args.concurrency

        def fresh() -> list[tuple[bytes, str]]:
            return signed_events(n, whsec)

        sys.stderr = log_sink  # the JSON log lines go to a file, as in production
        configure_logging("json", "info")
        variants = _variants(hub, app_module)
        results: dict[str, list[float]] = {label: [] for label, *_ in variants}
        for round_ in range(args.rounds):  # alternate the variants; keep each one's best round
            for label, build, path_of, patch in variants:
                with patch():
                    app = build()
                    if round_ == 0:
                        await drive(app, path_of(path), fresh()[:1000], c)  # warm-up
                    results[label].append(await drive(app, path_of(path), fresh(), c))
        rows = [(label, min(values)) for label, values in results.items()]

        # the pieces
        import msgspec
        from journeyhub.logs import get_logger
        from journeyhub.model import StoredWebhook, utcnow
        from journeyhub_stripe.plugin import journeyhub_verify_webhook

        entry = await hub.connections.get(connection_id)
        assert entry is not None
        conn, creds = entry
        sample = fresh()[:2000]
        headers = {"stripe-signature": sample[0][1], "content-type": "application/json"}
        pieces: list[tuple[str, float]] = []
        pieces.append(
            micro(
                "stripe verify + parse",
                lambda: journeyhub_verify_webhook(
                    connection=conn,
                    credentials=creds,
                    headers=headers,
                    body=sample[0][0],
                    now=utcnow(),
                ),
                5000,
            )
        )
        log = get_logger("bench")
        pieces.append(
            micro(
                "one structlog JSON line (info)",
                lambda: log.info(
                    "webhook_stored",
                    event_id="evt_x",
                    event_type="payment_intent.succeeded",
                    duplicate=False,
                ),
                5000,
            )
        )
        stored = StoredWebhook(
            vendor="stripe",
            connection_id=conn.id,
            tenant_id=conn.tenant_id,
            event_id="evt_x",
            event_type="payment_intent.succeeded",
            received_at=utcnow(),
            headers=headers,
            body=sample[0][0],
        )
        pieces.append(
            micro("StoredWebhook msgspec encode", lambda: msgspec.json.encode(stored), 20000)
        )
        tag = secrets.token_hex(4)
        payload = msgspec.json.encode(stored)

        async def publish(i: int) -> Any:
            return await hub.bus.publish(
                f"jh.inbound.stripe.{conn.id}", payload, msg_id=f"attr:{tag}:{i}"
            )

        pieces.append(await amicro("one JetStream publish + PubAck (nats-py)", publish, 5000))
        sys.stderr = real_stderr
        await hub.close()
    finally:
        sys.stderr = real_stderr
        log_sink.close()
        nats_server.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"\ngateway CPU per request, in-process ASGI ({n:,} requests, {c} in flight)")
    base = rows[1][1]
    for label, us in rows:
        delta = f"  ({us - base:+.0f})" if label.startswith("-") else ""
        print(f"  {label:36}{us:8.0f} µs{delta}")
    print("pieces")
    for label, us in pieces:
        print(f"  {label:36}{us:8.1f} µs")


def _variants(hub: Any, app_module: Any) -> list[tuple[str, Any, Any, Any]]:
    """(label, build the app, the path for it, a context manager patching the kernel)."""
    from journeyhub.gateway import webhooks
    from journeyhub.logs import configure_logging
    from journeyhub.model import utcnow
    from journeyhub_stripe.plugin import journeyhub_verify_webhook
    from nats.js.api import PubAck

    @contextlib.contextmanager
    def nothing() -> Any:
        yield

    @contextlib.contextmanager
    def log_warning() -> Any:
        configure_logging("json", "warning")
        try:
            yield
        finally:
            configure_logging("json", "info")

    @contextlib.contextmanager
    def no_request_id() -> Any:
        original = app_module.RequestIdMiddleware
        app_module.RequestIdMiddleware = _NoRequestId
        try:
            yield
        finally:
            app_module.RequestIdMiddleware = original

    @contextlib.contextmanager
    def no_bind() -> Any:
        original = webhooks.structlog
        stub = types.SimpleNamespace(
            contextvars=types.SimpleNamespace(bind_contextvars=lambda **_: None)
        )
        webhooks.structlog = stub
        try:
            yield
        finally:
            webhooks.structlog = original

    class _NoMetric:
        def labels(self, *_: Any) -> _NoMetric:
            return self

        def inc(self) -> None:
            pass

    @contextlib.contextmanager
    def no_metrics() -> Any:
        original = webhooks.metrics
        webhooks.metrics = types.SimpleNamespace(webhooks_received=_NoMetric())
        try:
            yield
        finally:
            webhooks.metrics = original

    @contextlib.contextmanager
    def direct_call() -> Any:
        original = hub.registry.call

        async def call(vendor: str, hook: str, **kw: Any) -> Any:
            kw.pop("query", None)
            return journeyhub_verify_webhook(**kw)

        hub.registry.call = call
        try:
            yield
        finally:
            hub.registry.call = original

    @contextlib.contextmanager
    def stub_publish() -> Any:
        original = hub.bus.publish

        async def publish(subject: str, payload: bytes, **_: Any) -> PubAck:
            return PubAck(stream="JH_INBOUND", seq=1, duplicate=False)

        hub.bus.publish = publish
        try:
            yield
        finally:
            hub.bus.publish = original

    @contextlib.contextmanager
    def all_trims() -> Any:
        with log_warning(), no_request_id(), no_bind(), no_metrics(), direct_call():
            yield

    def gateway() -> Any:
        return app_module.create_app(hub)

    def same(path: str) -> str:
        return path

    def lean() -> Any:
        return _lean_app(hub, journeyhub_verify_webhook, utcnow)

    return [
        ("litestar no-op (ASGI, no server)", bare_app, lambda _: "/noop", nothing),
        ("gateway as is (log info)", gateway, same, nothing),
        ("- log level warning", gateway, same, log_warning),
        ("- no RequestIdMiddleware", gateway, same, no_request_id),
        ("- no bind_contextvars in handler", gateway, same, no_bind),
        ("- no prometheus counter", gateway, same, no_metrics),
        ("- verify hook called directly", gateway, same, direct_call),
        ("- bus publish stubbed", gateway, same, stub_publish),
        ("- the five trims above but publish", gateway, same, all_trims),
        ("lean handler prototype (log warning)", lean, same, log_warning),
    ]


def _lean_app(hub: Any, verify: Any, utcnow: Any) -> Any:
    """Prototype: the same work (cache lookup, Stripe verification, StoredWebhook to JetStream
    with Nats-Msg-Id, await the PubAck) in a minimal Litestar app: no middleware, no DI, the
    hub from a closure, a pre-built encoder, the answer encoded by hand."""
    import msgspec
    from journeyhub.model import StoredWebhook

    encode = msgspec.json.Encoder().encode

    @post("/webhooks/{vendor:str}/{connection_id:str}", status_code=200)
    async def receive(request: Request, vendor: str, connection_id: str) -> Response[bytes]:
        body = await request.body()
        entry = await hub.connections.get(connection_id)
        if entry is None or not entry[0].enabled or entry[0].vendor != vendor:
            return Response(b'{"detail":"no such webhook endpoint"}', status_code=404)
        connection, credentials = entry
        headers = dict(request.headers)
        now = utcnow()
        receipt = verify(
            connection=connection, credentials=credentials, headers=headers, body=body, now=now
        )
        stored = StoredWebhook(
            vendor=vendor,
            connection_id=connection.id,
            tenant_id=connection.tenant_id,
            event_id=receipt.event_id,
            event_type=receipt.event_type,
            received_at=now,
            headers=headers,
            body=body,
        )
        ack = await hub.bus.publish(
            hub.bus.subjects.inbound(vendor, connection.id),
            encode(stored),
            msg_id=f"{vendor}:{connection.id}:{receipt.event_id}",
        )
        return Response(
            encode(
                {"received": True, "duplicate": bool(ack.duplicate), "event_id": receipt.event_id}
            ),
            media_type="application/json",
        )

    return Litestar(route_handlers=[receive], debug=False, openapi_config=None)


async def _create_connection(hub: Any, tenant: str, whsec: str) -> str:
    """Create the connection through the real API (the same path as run.py)."""
    import httpx
    from journeyhub.gateway.app import create_app

    key = await hub.store.tenants.create_key(tenant, "admin", "attribution")
    transport = httpx.ASGITransport(app=create_app(hub))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as client:
        answer = await client.post(
            "/v1/connections",
            headers={"authorization": f"Bearer {key}"},
            json={
                "vendor": "stripe",
                "name": "Stripe (attribution)",
                "direction": "inbound",
                "credentials": {"webhook_secret": whsec},
            },
        )
    answer.raise_for_status()
    return answer.json()["id"]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2, help="rounds per variant; best kept")
    asyncio.run(main(parser.parse_args()))
