"""Where the gateway's CPU goes, per accepted webhook, layer by layer: drives ASGI apps
in-process (no HTTP server, no wrk) on uvloop, as the gateway runs, and measures this process's
CPU time per request. CPU time, unlike a rate, stays meaningful on a busy machine.

    uv run --frozen python bench/ingest/attribution.py [--requests 20000]

Every variant gets distinct, freshly signed Stripe events, 32 requests in flight, and answers
200 (else the run stops). The rows:

  raw ASGI no-op              reads the body, answers: the floor of this driver
  litestar no-op              the bare endpoint of run.py (Litestar, one route)
  ladder (cumulative)         a plain ASGI app doing the gateway's work one layer at a time,
                              with the kernel's own pieces:
    + framing                 header dict, request id, log context, the JSON answer
    + connection lookup       ``hub.connection_cache.get`` (the in-process cache)
    + signature check         the Stripe plugin's ``journeyhub_verify_webhook`` via the registry
    + publish                 StoredWebhook encoded, JetStream publish, await the PubAck
    + metrics                 the webhooks counter
    + log line (info)         one structlog JSON line per webhook (``webhook_stored``)
  gateway as is               ``create_app(hub)`` on /webhooks/stripe/<id>, logs at info
  through Litestar's stack    the same app on the path with a trailing slash, which the
                              fast path leaves to Litestar's route (middleware, auth
                              exclusion, dependency injection, Response)
  gateway, log level debug    ``JOURNEYHUB_LOG_LEVEL=debug``: a line per accepted webhook

The difference between two consecutive ladder rows is that layer's cost. Then micro-measurements
of single pieces (verification, one log line, the encoding, one publish).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import cli, provision, stripe_template  # noqa: E402
from serve_app import bare_app, raw_app  # noqa: E402


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
    """POST every request through ``app``; return CPU µs per request (all 200, else raise)."""
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


def ladder_app(hub: Any, depth: int) -> Any:
    """The gateway's work up to layer ``depth`` (1 framing … 6 log line), as a plain ASGI app
    built from the kernel's own pieces, so that each layer's cost is the difference between
    two depths."""
    import msgspec
    import structlog
    from journeyhub import metrics
    from journeyhub.logs import get_logger
    from journeyhub.model import StoredWebhook, utcnow

    encode = msgspec.json.Encoder().encode
    log = get_logger("journeyhub.gateway.webhooks")
    counter = metrics.webhooks_received.labels("stripe", "accepted")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        request_id = headers.get("x-request-id", "")[:80] or uuid.uuid4().hex
        vendor, connection_id = scope["path"].split("/")[2:4]
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(
            request_id=request_id,
            correlation_id=request_id,
            vendor=vendor,
            connection_id=connection_id,
        )
        message = await receive()
        body = message["body"]
        answer: dict[str, Any] = {"received": True, "duplicate": False, "event_id": "-"}
        if depth >= 2:
            connection, credentials = await hub.connection_cache.get(connection_id)
        if depth >= 3:
            now = utcnow()
            receipt = await hub.registry.call(
                vendor,
                "journeyhub_verify_webhook",
                connection=connection,
                credentials=credentials,
                headers=headers,
                body=body,
                now=now,
                query={},
            )
            answer["event_id"] = receipt.event_id
        if depth >= 4:
            stored = StoredWebhook(
                vendor=vendor,
                connection_id=connection.id,
                tenant_id=connection.tenant_id,
                event_id=receipt.event_id,
                event_type=receipt.event_type,
                received_at=now,
                headers=headers,
                body=body,
                correlation_id=request_id,
            )
            ack = await hub.bus.publish(
                hub.bus.subjects.inbound(vendor, connection.id),
                encode(stored),
                msg_id=f"{vendor}:{connection.id}:{receipt.event_id}",
            )
            answer["duplicate"] = bool(ack.duplicate)
        if depth >= 5:
            counter.inc()
        if depth >= 6:
            log.info(
                "webhook_stored",
                event_id=receipt.event_id,
                event_type=receipt.event_type,
                duplicate=answer["duplicate"],
            )
        out = encode(answer)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(out)).encode()),
                    (b"x-request-id", request_id.encode("latin-1")),
                ],
            }
        )
        await send({"type": "http.response.body", "body": out})

    return app


LADDER = [
    "+ framing",
    "+ connection lookup",
    "+ signature check",
    "+ publish (PubAck awaited)",
    "+ metrics",
    "+ log line (info)",
]


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
    from journeyhub.gateway.app import create_app
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
    pieces: list[tuple[str, float]] = []
    try:
        tenant = cli(env, "tenants", "add", "Attribution")
        await provision(env)
        hub = await Hub.start(load_settings(env), run_migrations=False, provision=False)
        whsec = "whsec_" + secrets.token_urlsafe(24)
        connection_id = await _create_connection(hub, tenant, whsec)
        path = f"/webhooks/stripe/{connection_id}"
        n, c = args.requests, args.concurrency
        sys.stderr = log_sink  # the JSON log lines go to a file, as in production
        configure_logging("json", "info")

        def at_level(level: str) -> Callable[[], Any]:
            def build() -> Any:
                configure_logging("json", level)
                return create_app(hub)

            return build

        variants: list[tuple[str, Callable[[], Any], str]] = [
            ("raw ASGI no-op", lambda: raw_app, "/noop"),
            ("litestar no-op (bare endpoint)", bare_app, "/noop"),
        ]
        for depth, label in enumerate(LADDER, start=1):
            variants.append((label, lambda d=depth: ladder_app(hub, d), path))
        variants += [
            ("gateway as is (log level info)", at_level("info"), path),
            ("through Litestar's stack", at_level("info"), path + "/"),
            ("gateway as is, log level debug", at_level("debug"), path),
        ]
        results: dict[str, list[float]] = {label: [] for label, *_ in variants}
        for round_ in range(args.rounds):  # alternate the variants; keep each one's best round
            for label, build, where in variants:
                app = build()
                if round_ == 0:
                    await drive(app, where, signed_events(1000, whsec), c)  # warm-up
                results[label].append(await drive(app, where, signed_events(n, whsec), c))
                configure_logging("json", "info")
        rows = [(label, min(values)) for label, values in results.items()]
        pieces = await _pieces(hub, connection_id, whsec)
        sys.stderr = real_stderr
        await hub.close()
    finally:
        sys.stderr = real_stderr
        log_sink.close()
        nats_server.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"\ngateway CPU per request, in-process ASGI on uvloop ({n:,} requests, {c} in flight)")
    by_label = dict(rows)
    previous = by_label["raw ASGI no-op"]
    for label, us in rows:
        delta = ""
        if label in LADDER:
            delta = f"  ({us - previous:+.0f})"
            previous = us
        elif label != "raw ASGI no-op":
            delta = f"  ({us - by_label['litestar no-op (bare endpoint)']:+.0f} vs litestar no-op)"
        print(f"  {label:36}{us:8.0f} µs{delta}")
    print("pieces, one at a time")
    for label, us in pieces:
        print(f"  {label:36}{us:8.1f} µs")


async def _pieces(hub: Any, connection_id: str, whsec: str) -> list[tuple[str, float]]:
    import msgspec
    from journeyhub.logs import get_logger
    from journeyhub.model import StoredWebhook, utcnow
    from journeyhub_stripe.plugin import journeyhub_verify_webhook

    entry = await hub.connection_cache.get(connection_id)
    assert entry is not None
    conn, creds = entry
    sample = signed_events(1, whsec)
    headers = {"stripe-signature": sample[0][1], "content-type": "application/json"}
    pieces = [
        micro(
            "stripe verify + parse (direct)",
            lambda: journeyhub_verify_webhook(
                connection=conn,
                credentials=creds,
                headers=headers,
                body=sample[0][0],
                now=utcnow(),
            ),
            5000,
        )
    ]

    async def via_registry(_: int) -> Any:
        return await hub.registry.call(
            "stripe",
            "journeyhub_verify_webhook",
            connection=conn,
            credentials=creds,
            headers=headers,
            body=sample[0][0],
            now=utcnow(),
            query={},
        )

    pieces.append(await amicro("stripe verify via the registry", via_registry, 5000))
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
    pieces.append(micro("StoredWebhook msgspec encode", lambda: msgspec.json.encode(stored), 20000))
    tag = secrets.token_hex(4)
    payload = msgspec.json.encode(stored)

    async def publish(i: int) -> Any:
        return await hub.bus.publish(
            f"jh.inbound.stripe.{conn.id}", payload, msg_id=f"attr:{tag}:{i}"
        )

    pieces.append(await amicro("one JetStream publish + PubAck", publish, 5000))
    return pieces


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
    import uvloop

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2, help="rounds per variant; best kept")
    uvloop.run(main(parser.parse_args()))
