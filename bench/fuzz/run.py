"""Fuzz the gateway with schemathesis against the OpenAPI document it serves.

    uv run --with schemathesis python bench/fuzz/run.py            # 100 examples
    uv run --with schemathesis python bench/fuzz/run.py --max-examples 25           # quicker
    uv run --with schemathesis python bench/fuzz/run.py --phases examples,coverage,fuzzing,stateful

schemathesis is not a dependency of the workspace: ``uv run --with`` adds it to a throw-away
environment for this command only (the lock is untouched).

It starts, under a temporary directory, a hub on the embedded defaults (its own nats-server,
SQLite), the workers, and the gateway on a free loopback port; makes a tenant with an admin key
and connections for the webhook, Stripe, Resend, Tave and HoneyBook (Zapier) connectors, plus a
delivery, a dead letter and a trigger, so that every route answers with real data; then runs
``st run`` on ``/schema/openapi.json`` with that key on every request, every operation (the
``/webhooks/*`` route included, with real connection ids and garbage signatures and bodies), a
bounded number of examples per operation, and these checks: no 5xx
(``not_a_server_error``), and no response that the schema does not describe (status code,
content type, headers, body: the ``*_conformance`` checks), and schema-invalid input refused
(``negative_data_rejection``), ``unsupported_method``, ``use_after_free``,
``ensure_resource_availability``. ``positive_data_acceptance`` is left out on purpose: a body
can match the schema and still be refused with 422 (an unknown vendor, ``step_completed``
without ``step``, a config that the plugin refuses), which is the API's contract.

It prints, per operation, the requests made and their status codes, then the totals: 5xx
responses and check failures. The exit status is 1 when either is not 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import socket
import sys
import tempfile
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "unsupported_method",
    "use_after_free",
    "ensure_resource_availability",
]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def schemathesis_command() -> list[str]:
    try:
        import schemathesis  # noqa: F401
    except ImportError:
        sys.exit(
            "schemathesis is not installed here: run this with\n"
            "    uv run --with schemathesis python bench/fuzz/run.py"
        )
    return [sys.executable, "-m", "schemathesis.cli"]


async def setup_records(hub: Any, client: httpx.AsyncClient, admin: dict[str, str]) -> dict:
    """Connections and records of the fuzzing tenant; returns the ids the hooks use."""
    from journeyhub import signing
    from journeyhub.model import Trigger, stable_id

    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens: pushes fail, nothing leaves
    webhook_secret = signing.new_secret()

    async def create(**body: Any) -> dict[str, Any]:
        answer = await client.post("/v1/connections", json=body, headers=admin)
        answer.raise_for_status()
        return answer.json()

    inbound = [
        await create(
            vendor="webhook",
            name="engine in",
            direction="inbound",
            credentials={"secret": webhook_secret},
        ),
        await create(
            vendor="stripe",
            name="payments",
            direction="inbound",
            credentials={"webhook_secret": signing.new_secret()},
        ),
        await create(
            vendor="resend",
            name="mail",
            direction="bidirectional",
            config={"from_address": "Studio <hello@example.com>", "api_base": closed},
            credentials={
                "api_key": "re_fuzz_0123456789abcdef",
                "webhook_secret": signing.new_secret(),
            },
        ),
        await create(
            vendor="tave",
            name="crm",
            direction="bidirectional",
            config={"api_base": f"{closed}/api/v2"},
            credentials={"api_key": "tave-fuzz-key-0123456789"},
        ),
        await create(
            vendor="honeybook",
            name="zapier",
            direction="inbound",
            credentials={"secret": signing.new_secret()},
        ),
    ]
    victims = [
        await create(
            vendor="webhook",
            name=f"victim {i}",
            direction="bidirectional",
            config={"url": f"{closed}/hooks"},
            credentials={"secret": signing.new_secret()},
        )
        for i in range(3)
    ]
    tenant_id = victims[0]["tenant_id"]
    dead_letters = []
    for victim in victims:
        tag = secrets.token_hex(4)
        await hub.store.deliveries.record_attempt(
            task_id=f"task_{tag}",
            tenant_id=tenant_id,
            connection_id=victim["id"],
            vendor="webhook",
            source_id=f"src_{tag}",
            attempt=1,
            status="failed",
            error="fuzz",
        )
        dead_letters.append(
            await hub.store.deliveries.dead_letter(
                tenant_id=tenant_id,
                connection_id=victim["id"],
                vendor="webhook",
                stage="push",
                subject=hub.bus.subjects.push(victim["id"]),
                msg_id=f"fuzz_{tag}",
                payload=b'{"fuzz": true}',
                error="fuzz error",
                attempts=4,
            )
        )
        await hub.store.triggers.record(
            Trigger(
                id=stable_id("trg", tag),
                type="payment_received",
                tenant_id=tenant_id,
                connection_id=victim["id"],
                vendor="webhook",
                occurred_at=datetime.now(UTC),
                source_event_id=f"evt_{tag}",
            )
        )
    return {
        "webhooks": [[c["vendor"], c["id"]] for c in inbound],
        "connections": [c["id"] for c in victims],
        "dead_letters": dead_letters,
    }


async def serve_and_fuzz(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    import uvicorn
    from journeyhub.gateway.app import create_app
    from journeyhub.hub import Hub
    from journeyhub.logs import configure_logging
    from journeyhub.settings import load_settings
    from journeyhub.workers.runner import run_workers

    configure_logging("json", "error")  # the hub's own lines would drown the report
    port = free_port()
    settings = load_settings({}, data_dir=workdir / "data", port=port, log_format="json")
    hub = await Hub.start(settings)  # embedded nats-server, SQLite, migrations
    stop = asyncio.Event()
    workers = asyncio.create_task(run_workers(hub, stop))
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(hub),
            host="127.0.0.1",
            port=port,
            log_level="error",
            access_log=False,
            lifespan="off",
        )
    )
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    gateway = asyncio.create_task(server.serve())
    try:
        for _ in range(1500):
            if server.started or gateway.done():
                break
            await asyncio.sleep(0.02)
        if not server.started:
            raise RuntimeError(f"the gateway did not start on 127.0.0.1:{port}")
        base = f"http://127.0.0.1:{port}"
        tenant_id = await hub.store.tenants.add("fuzz studio")
        key = await hub.store.tenants.create_key(tenant_id, ("admin", "ingest", "read"))
        admin = {"authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            ids = await setup_records(hub, client, admin)
            operations = [
                f"{method.upper()} {path}"
                for path, item in (await client.get("/schema/openapi.json")).json()["paths"].items()
                for method in item
                if method in {"get", "post", "put", "patch", "delete"}
            ]
        calls = workdir / "calls.jsonl"
        env = {
            **os.environ,
            "SCHEMATHESIS_HOOKS": "hooks",
            "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
            "JOURNEYHUB_FUZZ_IDS": json.dumps(ids),
            "JOURNEYHUB_FUZZ_CALLS": str(calls),
        }
        command = [
            *schemathesis_command(),
            "run",
            f"{base}/schema/openapi.json",
            "--header",
            f"Authorization: Bearer {key}",
            "--checks",
            ",".join(CHECKS),
            "--max-examples",
            str(args.max_examples),
            "--phases",
            args.phases,
            "--workers",
            "1",
            "--seed",
            str(args.seed),
            "--continue-on-failure",
            "--request-timeout",
            "30",
            "--suppress-health-check",
            "all",
            "--report",
            "junit,ndjson",
            "--report-dir",
            str(workdir / "report"),
            "--output-sanitize",
            "true",
        ]
        started = time.monotonic()
        process = await asyncio.create_subprocess_exec(*command, env=env, cwd=workdir)
        returncode = await process.wait()
        elapsed = time.monotonic() - started
        return {
            "returncode": returncode,
            "elapsed": elapsed,
            "operations": operations,
            "calls": [json.loads(line) for line in calls.read_text().splitlines()]
            if calls.exists()
            else [],
            "report": workdir / "report",
        }
    finally:
        server.should_exit = True
        stop.set()
        for task in (gateway, workers):
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(task, timeout=15)
        await hub.close()


def check_failures(report_dir: Path) -> tuple[int, list[str]]:
    """The failed checks in schemathesis' JUnit report: (count, one line each)."""
    import xml.etree.ElementTree as ElementTree

    lines: list[str] = []
    for path in sorted(report_dir.glob("*.xml")):
        for case in ElementTree.parse(path).getroot().iter("testcase"):
            for failure in list(case.iter("failure")) + list(case.iter("error")):
                text = (failure.get("message") or failure.text or "").strip().splitlines()
                lines.append(f"{case.get('name')}: {text[0] if text else failure.tag}")
    return len(lines), lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-examples", type=int, default=100, help="per operation")
    parser.add_argument("--phases", default="examples,coverage,fuzzing")
    parser.add_argument("--seed", type=int, default=20260620)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    schemathesis_command()
    workdir = Path(tempfile.mkdtemp(prefix="journeyhub-fuzz-"))
    try:
        result = asyncio.run(serve_and_fuzz(args, workdir))
        by_operation: dict[str, Counter[int]] = defaultdict(Counter)
        for call in result["calls"]:
            by_operation[call["operation"]][call["status"]] += 1
        server_errors = [c for c in result["calls"] if c["status"] >= 500]
        failures, failure_lines = check_failures(result["report"])
        print("\n=== journeyhub fuzz (schemathesis) ===")
        print(
            f"phases {args.phases}; max examples per operation {args.max_examples}; "
            f"seed {args.seed}; {result['elapsed']:.0f} s"
        )
        for operation in result["operations"]:
            statuses = by_operation.get(operation, Counter())
            spread = " ".join(f"{s}:{n}" for s, n in sorted(statuses.items()))
            print(f"  {operation:<52} {sum(statuses.values()):>6} requests  {spread}")
        untested = [o for o in result["operations"] if o not in by_operation]
        print(
            f"operations: {len(result['operations'])} in the schema, "
            f"{len(result['operations']) - len(untested)} fuzzed"
            + (f" (not reached: {', '.join(untested)})" if untested else "")
        )
        print(f"requests: {len(result['calls'])}")
        print(f"5xx responses: {len(server_errors)}")
        for call in server_errors[:20]:
            print(f"  {call['status']} {call['operation']} {call['path']}: {call.get('body', '')}")
        print(f"check failures (schema violations and others): {failures}")
        for line in failure_lines[:40]:
            print(f"  {line}")
        print(f"schemathesis exit status: {result['returncode']}")
        ok = not server_errors and failures == 0 and not untested
        return 0 if ok else 1
    finally:
        if args.keep:
            print(f"kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
