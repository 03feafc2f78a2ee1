"""The short chaos run (the full one is bench/chaos/run.py): a few hundred journey events and
signed Stripe webhooks while workers are SIGKILLed and started again, a 3-node NATS cluster
(streams at 3 replicas) loses a node and gets it back, PostgreSQL is restarted (on a scratch
cluster of the test's own, when the PostgreSQL binaries are installed), and the sandboxes
answer 30 % of calls with 5xx, 429 or timeouts. Then every dead letter is replayed with the
faults off. Nothing may be lost, nothing done twice, and every replay must be delivered.

Everything it starts (nats-server, postgres, gateway and worker processes) listens on
loopback and is ended by its pid, also when the test fails.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest
from journeyhub.testing.fixtures import database_url_for_tests

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench" / "chaos"))

EVENTS = 200
WEBHOOKS = 200


TIMEOUT = 240


@pytest.mark.plugins  # the workload is Tave pushes and Stripe webhooks (bench/chaos imports them)
@pytest.mark.timeout(TIMEOUT)
async def test_nothing_is_lost_or_doubled_under_chaos(tmp_path: Path) -> None:
    from chaos_infra import postgres_bin_dir, postgres_reachable, scratch_database
    from chaos_run import print_report

    logging.getLogger("httpx").setLevel(logging.WARNING)
    pg_restart = postgres_bin_dir() is not None
    database = "scratch" if pg_restart else "sqlite"
    if not pg_restart:
        # (c) needs a PostgreSQL of our own to restart; the bench runs it where it can.
        print("PostgreSQL restart skipped: no initdb/pg_ctl under /usr/lib/postgresql/*/bin")
        url = database_url_for_tests()
        if url and url.startswith("postgresql") and postgres_reachable(url) is None:
            with scratch_database(url, "jh_chaos") as scratch:
                report = await _run(scratch, pg_restart=False)
        else:
            report = await _run("sqlite", pg_restart=False)
    else:
        report = await _run(database, pg_restart=True)
    print_report(report)
    summary = report["summary"]
    assert summary["events"]["delivered"] == EVENTS, report["counted"]["events_lost"][:20]
    assert summary["webhooks"]["delivered"] == WEBHOOKS, report["counted"]["webhooks_lost"][:20]
    assert summary["events"]["lost"] == summary["webhooks"]["lost"] == 0
    assert summary["events"]["duplicated"] == 0, report["counted"]["duplicate_creates"]
    assert summary["webhooks"]["duplicated"] == 0, report["counted"]["duplicate_triggers_bus"]
    assert summary["dead_lettered"] == summary["replayed"]
    assert summary["replayed_not_delivered"] == 0, report["dead_letters"]["replayed_not_delivered"]
    assert summary["out_of_order"] == 0, report["counted"]["notes_out_of_order"]
    assert not report["sent"]["refused"]
    injected = report["counted"]["faults_injected"]["tave"]
    assert sum(injected.values()) > 0, "the chaos injected no fault"
    kills = [line for line in report["timeline"] if "SIGKILL worker" in line]
    assert len(kills) >= 2, report["timeline"]
    assert any("SIGKILL nats node" in line for line in report["timeline"]), report["timeline"]
    if pg_restart:
        assert any("PostgreSQL restarted" in line for line in report["timeline"])
    assert report["ok"]


async def _run(database: str, *, pg_restart: bool) -> dict:
    from chaos_run import Chaos, run
    from chaos_workload import Options

    options = Options(
        events=EVENTS,
        webhooks=WEBHOOKS,
        studios=8,
        workers=2,
        nats_nodes=3,
        database=database,
        fault_rate=0.3,
        max_deliver=3,
        ack_wait=5,
        breaker_threshold=20,
        breaker_cooldown=1,
        batch=20,
        log_level="debug",  # a task's story then says why it waited (``task_waits``)
    )
    chaos = Chaos(worker_kills=2, nats_kill=True, pg_restart=pg_restart, span=30, nats_down=0.2)
    # The run ends its waits in time to count and report, so a task that never settles fails
    # the asserts below with its story (attempts, task state, worker log lines) printed.
    return await run(options, chaos, settle_timeout=120, send_timeout=90, budget=TIMEOUT - 40)
