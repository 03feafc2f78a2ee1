"""Scale-out: 2 gateways + 2 workers give the same results as 1 + 1 (the short version of
bench/scaleout/run.py), on a shared 3-node NATS cluster with streams at 3 replicas and a
fresh database on the machine's PostgreSQL (created, then dropped). Also the settings that
this deployment needs: a list of NATS URLs and the stream replicas.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from pathlib import Path
from typing import Any

import pytest
from journeyhub.settings import SettingsError, load_settings
from journeyhub.testing.fixtures import database_url_for_tests

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH / "chaos"))

from chaos_infra import postgres_reachable  # noqa: E402

DEFAULT_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def test_a_cluster_url_list_and_replicas_are_settings() -> None:
    settings = load_settings(
        {
            "JOURNEYHUB_NATS_URL": "nats://10.0.0.1:4222, nats://10.0.0.2:4222,nats://10.0.0.3:4222",
            "JOURNEYHUB_STREAM_REPLICAS": "3",
        }
    )
    assert settings.nats_url == "nats://10.0.0.1:4222,nats://10.0.0.2:4222,nats://10.0.0.3:4222"
    assert settings.stream_replicas == 3
    assert load_settings({}).stream_replicas == 1
    with pytest.raises(SettingsError, match=r"JOURNEYHUB_NATS_URL.*'http://b:4222'"):
        load_settings({"JOURNEYHUB_NATS_URL": "nats://a:4222,http://b:4222"})
    with pytest.raises(SettingsError, match="JOURNEYHUB_STREAM_REPLICAS"):
        load_settings({"JOURNEYHUB_NATS_URL": "nats://a:4222", "JOURNEYHUB_STREAM_REPLICAS": "7"})
    with pytest.raises(SettingsError, match="needs a NATS cluster"):
        load_settings({"JOURNEYHUB_STREAM_REPLICAS": "3"})  # the embedded server is one node


def _load_scaleout() -> Any:
    """bench/scaleout/run.py under a name of its own (``run`` is a common module name)."""
    spec = importlib.util.spec_from_file_location(
        "jh_bench_scaleout", BENCH / "scaleout" / "run.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _server() -> str:
    url = database_url_for_tests()
    return url if url and url.startswith("postgresql") else DEFAULT_SERVER


@pytest.mark.plugins  # bench/scaleout drives Tave and Stripe
@pytest.mark.timeout(300)
async def test_two_gateways_and_two_workers_give_the_same_results_as_one() -> None:
    server = _server()
    if (reason := postgres_reachable(server)) is not None:
        pytest.skip(f"PostgreSQL is not reachable at {server}: {reason}")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    scaleout = _load_scaleout()
    report = await scaleout.compare(
        server=server, events=60, webhooks=60, studios=3, settle_timeout=150
    )
    scaleout.print_comparison(report)
    one, two = report["results"]
    for result in (one, two):
        assert result["settled"], result
        assert result["events_delivered"] == 60 and result["events_lost"] == 0
        assert result["triggers"] == 60 and result["webhooks_lost"] == 0
        assert result["duplicate_side_effects"] == 0 and result["duplicate_triggers"] == 0
        assert result["dead_letters"] == 0
    assert all(report["same"].values()), report["same"]
    # Both gateways took requests and both workers took work.
    split = two["split"]
    assert split["gateway-0"].get("webhook_stored", 0) > 0
    assert split["gateway-1"].get("webhook_stored", 0) > 0
    busy = [
        name
        for name, counts in split.items()
        if name.startswith("worker")
        and counts.get("delivered", 0) + counts.get("webhook_processed", 0)
    ]
    assert len(busy) == 2, split
    assert report["ok"]
