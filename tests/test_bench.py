"""The benchmark keeps working: ``python -m bench --quick`` against a real stack of its own.

Small on purpose (300 sockets, a few pickups a second): it checks that every scenario runs and
that nothing is lost or duplicated under load, not how fast anything is; the speed targets are
the full run's (``make bench``, docs/benchmark.rst).
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_service

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict:
    for name, port in (("RabbitMQ", 5672), ("Redis", 6379), ("PostgreSQL", 5432)):
        require_service(name, port)
    out = tmp_path_factory.mktemp("bench")
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return {
        "json": json.loads((out / "results.json").read_text()),
        "files": {p.name for p in out.iterdir()},
        "figures": (out / "figures.inc").read_text(),
        "stdout": done.stdout,
    }


def test_every_socket_connects_answers_and_costs_memory(results):
    connections = results["json"]["connections"]
    assert connections["sockets_open"] == connections["sockets_asked"] == 300
    assert connections["failed_handshakes"] == 0
    assert connections["answered_ping"] == 300
    assert [p["connections"] for p in connections["points"]] == [0, 100, 200, 300]
    assert connections["rss_per_connection_kb"] > 0


def test_fan_out_delivers_every_notification_once_on_both_paths(results):
    fanout = results["json"]["fanout"]
    for mode in ("platform", "naive"):
        run = fanout[mode]
        assert run["notifications"] == 600  # 2 events to each of the 300 sockets' users
        assert (run["delivered"], run["lost"], run["duplicated"]) == (600, 0, 0), mode
        assert run["per_second"] > 0


def test_the_pipeline_loses_nothing_at_each_rate(results):
    pipeline = results["json"]["pipeline"]
    assert [r["offered_rate"] for r in pipeline["rates"]][0] == 5
    for run in pipeline["rates"]:
        assert run["sent"] == run["created"] == run["offers_delivered"] == run["accepted_notified"]
        assert run["errors"] == run["unanswered"] == run["lost_offers"] == 0
        assert run["duplicated_notifications"] == 0
        for key in ("create_to_reply_ms", "create_to_offer_ms", "accept_to_customer_ms"):
            s = run[key]
            assert s["count"] == run["sent"]
            assert 0 < s["p50"] <= s["p95"] <= s["p99"] <= s["max"], key


def test_it_writes_the_json_the_plots_and_the_docs_figures(results):
    assert {"results.json", "memory.png", "latency.png", "figures.inc"} <= results["files"]
    assert results["json"]["machine"]["cores"] >= 1
    assert results["json"]["database"] == "PostgreSQL"
    assert ".. list-table::" in results["figures"]
    assert "Sockets on one uvicorn" in results["figures"]
    assert "Notifications/s delivered to sockets" in results["stdout"]
