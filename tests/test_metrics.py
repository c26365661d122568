"""``/metrics``: who may read it, and that the HTTP and WebSocket metrics move with the traffic."""

import pytest
from django.test import Client, override_settings
from prometheus_client import REGISTRY

from procurement_system import metrics
from tests.consumers import ask, connect, token_for
from tests.factories import UserFactory


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(f"procurement_{name}", labels) or 0.0


# --- HTTP -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_requests_are_counted_and_timed_by_method_view_and_status():
    before = value("http_requests_total", method="GET", view="health", status="200")
    timed = value("http_request_duration_seconds_count", method="GET", view="health")
    for _ in range(3):
        assert Client().get("/health/").status_code == 200
    assert value("http_requests_total", method="GET", view="health", status="200") == before + 3
    assert value("http_request_duration_seconds_count", method="GET", view="health") == timed + 3


@pytest.mark.django_db
def test_views_are_named_by_their_url_pattern_never_by_the_path():
    user = UserFactory()
    client = Client()
    client.force_login(user)
    before = value("http_requests_total", method="GET", view="customer-pickup", status="404")
    unmatched = value("http_requests_total", method="GET", view="unmatched", status="404")
    client.get("/pickups/123456/")
    client.get("/pickups/654321/")
    client.get("/no/such/page/")
    assert value("http_requests_total", method="GET", view="customer-pickup", status="404") == (
        before + 2
    )
    assert value("http_requests_total", method="GET", view="unmatched", status="404") == (
        unmatched + 1
    )
    exposition = Client().get("/metrics").content.decode()
    assert "123456" not in exposition and "/no/such/page/" not in exposition


@pytest.mark.django_db
def test_a_method_outside_http_is_counted_as_other():
    before = value("http_requests_total", method="other", view="health", status="405")
    Client().generic("BREW", "/health/")
    assert value("http_requests_total", method="other", view="health", status="405") == before + 1


# --- /metrics -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_metrics_are_served_to_this_machine_without_a_token():
    response = Client().get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    body = response.content.decode()
    for metric in metrics.METRICS:
        assert f"# HELP {metric.describe()[0].name}" in body


@pytest.mark.django_db
def test_openmetrics_when_the_scraper_asks_for_it():
    response = Client().get("/metrics", HTTP_ACCEPT="application/openmetrics-text; version=1.0.0")
    assert response["Content-Type"].startswith("application/openmetrics-text")
    assert response.content.decode().endswith("# EOF\n")


@pytest.mark.django_db
def test_without_a_token_another_machine_is_refused():
    assert Client(REMOTE_ADDR="10.1.2.3").get("/metrics").status_code == 403
    assert Client(REMOTE_ADDR="::1").get("/metrics").status_code == 200


@pytest.mark.django_db
@override_settings(METRICS_TOKEN="s3cret-token")
def test_with_a_token_every_scrape_must_bring_it():
    assert Client().get("/metrics").status_code == 403  # this machine too
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Basic s3cret-token").status_code == 403
    remote = Client(REMOTE_ADDR="10.1.2.3")
    assert remote.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token").status_code == 200


@pytest.mark.django_db
def test_metrics_is_read_only():
    assert Client().post("/metrics").status_code == 405


# --- WebSocket ------------------------------------------------------------------------------

PICKUPS = "/ws/pickups/"


def socket_values() -> dict[str, float]:
    return {
        "open": value("websocket_connections", endpoint=PICKUPS),
        "ping_ok": value("websocket_messages_total", endpoint=PICKUPS, action="ping", outcome="ok"),
        "unknown": value(
            "websocket_messages_total",
            endpoint=PICKUPS,
            action="unknown",
            outcome="bad_request",
        ),
        "not_found": value(
            "websocket_messages_total", endpoint=PICKUPS, action="get", outcome="not_found"
        ),
        "timed": value("websocket_action_duration_seconds_count", endpoint=PICKUPS, action="ping"),
    }


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("worker_thread_connections")
async def test_sockets_and_their_frames_are_counted_by_action_and_outcome():
    from channels.db import database_sync_to_async

    key = await database_sync_to_async(lambda: token_for(UserFactory(username="alice")))()
    before = socket_values()
    socket = await connect(PICKUPS, key)
    assert socket_values()["open"] == before["open"] + 1
    assert (await ask(socket, {"action": "ping"}))["type"] == "pong"
    assert (await ask(socket, {"action": "ping"}))["type"] == "pong"
    assert (await ask(socket, {"action": "dance"}))["code"] == "bad_request"
    assert (await ask(socket, "not json"))["code"] == "bad_request"
    assert (await ask(socket, {"action": "get", "pickup_id": 999999}))["code"] == "not_found"
    after = socket_values()
    assert after["ping_ok"] == before["ping_ok"] + 2
    assert after["timed"] == before["timed"] + 2
    assert after["unknown"] == before["unknown"] + 2
    assert after["not_found"] == before["not_found"] + 1
    await socket.disconnect()
    assert socket_values()["open"] == before["open"]


@pytest.mark.django_db(transaction=True)
async def test_a_refused_handshake_leaves_no_open_socket_behind():
    before = value("websocket_connections", endpoint=PICKUPS)
    socket = await connect(PICKUPS)  # anonymous: accepted, then closed with 4401
    assert (await socket.receive_output())["code"] == 4401
    await socket.disconnect()
    assert value("websocket_connections", endpoint=PICKUPS) == before


# --- several web processes ------------------------------------------------------------------

MULTIPROCESS_SCRIPT = """
import sys, django
django.setup()
from django.test import RequestFactory
from procurement_system import metrics
if sys.argv[1] == "count":
    metrics.HTTP_REQUESTS.labels("GET", "health", "200").inc()
    metrics.socket_opened("/ws/pickups/")
else:
    print(metrics.metrics_view(RequestFactory().get("/metrics")).content.decode())
"""


def test_several_processes_sharing_a_directory_are_summed(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    directory = tmp_path / "prometheus"
    directory.mkdir()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "procurement_system.settings",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "PROMETHEUS_MULTIPROC_DIR": str(directory),
    }

    def run(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", MULTIPROCESS_SCRIPT, *args],
            cwd=Path(__file__).resolve().parents[1],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    run("count")
    run("count")
    exposition = run("show")
    assert 'procurement_http_requests_total{method="GET",status="200",view="health"} 2.0' in (
        exposition
    )
    # The gauge sums the live processes only: both that opened a socket have exited since.
    assert 'procurement_websocket_connections{endpoint="/ws/pickups/"}' not in exposition
