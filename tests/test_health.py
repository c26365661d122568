"""``/health/`` (liveness) and ``/ready/`` (readiness): against the real services, and with each
dependency pointed at a port where nothing listens."""

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pika
import pytest
from django.core.management import call_command
from django.test import Client, override_settings
from kombu import Queue

from tests.conftest import require_service
from tests.e2e.stack import free_port, wait_until

REPO = Path(__file__).resolve().parents[1]
CHECKS = {"database", "cache", "rabbitmq", "redis", "workers"}
# Short, so that the failing checks' tests do not wait long for workers' replies.
FAST = override_settings(READY_CHECK_TIMEOUT_SECONDS=0.3)


def closed_port_url(scheme: str, path: str = "/") -> str:
    return f"{scheme}://guest:guest@127.0.0.1:{free_port()}{path}"


def prefixed_queues(prefix: str) -> list[Queue]:
    return [Queue(f"{prefix}{name}") for name in ("assignments", "notifications", "maintenance")]


@pytest.fixture
def worker(tmp_path):
    """A real Celery worker on the real RabbitMQ, consuming task queues of its own (a prefix of
    this test's), which the platform's settings then name: a readiness with every worker found."""
    require_service("RabbitMQ", 5672)
    prefix = f"ready-{uuid.uuid4().hex[:8]}-"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "procurement_system.settings",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'worker.sqlite3'}",
        "CELERY_QUEUE_PREFIX": prefix,
        "PYTHONUNBUFFERED": "1",
    }
    queues = ",".join(queue.name for queue in prefixed_queues(prefix))
    log_path = tmp_path / "worker.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "procurement_system", "worker"]
            + ["--queues", queues, "--hostname", f"{prefix}all@%h", "--pool", "solo"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(
            lambda: process.poll() is None and "ready." in log_path.read_text(),
            timeout=60,
            what=f"the worker to start:\n{log_path.read_text()}",
        )
        yield prefix
    finally:
        process.terminate()
        process.wait(timeout=30)
        connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1"))
        try:
            channel = connection.channel()
            for name in ("assignments", "notifications", "maintenance", "dead_letter"):
                channel.queue_delete(f"{prefix}{name}")
            channel.exchange_delete(f"{prefix}celery_tasks")
            channel.exchange_delete(f"{prefix}dead_letter")
        finally:
            connection.close()


@pytest.fixture
def results_table(transactional_db):
    """The results cache as in production: the database table ``createcachetable`` makes,
    committed, so that the checks' own connections see it."""
    from django.conf import settings

    caches = {
        **settings.CACHES,
        settings.CELERY_RESULTS_CACHE_ALIAS: {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "celery_results_cache",
        },
    }
    with override_settings(CACHES=caches):
        call_command("createcachetable", verbosity=0)
        yield


def ready() -> tuple[int, dict]:
    response = Client().get("/ready/")
    assert response["Content-Type"] == "application/json"
    return response.status_code, response.json()


def failing(body: dict) -> set[str]:
    return {name for name, check in body["checks"].items() if check["status"] != "ok"}


def test_ready_is_200_with_every_check_ok_against_the_real_services(worker, results_table):
    require_service("Redis", 6379)
    with override_settings(CELERY_TASK_QUEUES=prefixed_queues(worker)):
        status, body = ready()
    assert status == 200, body
    assert body["status"] == "ok"
    assert set(body["checks"]) == CHECKS
    for check in body["checks"].values():
        assert check["status"] == "ok" and check["latency_ms"] >= 0 and "error" not in check
    workers = body["checks"]["workers"]
    assert list(workers["workers"].values()) == [
        [f"{worker}assignments", f"{worker}maintenance", f"{worker}notifications"]
    ]
    assert workers["queues_without_worker"] == []
    queues = body["checks"]["rabbitmq"]["queues"]
    assert queues[f"{worker}assignments"] == {"messages": 0, "consumers": 1}


@pytest.mark.django_db
def test_health_answers_whatever_the_dependencies():
    with override_settings(
        CELERY_BROKER_URL=closed_port_url("amqp"), REDIS_URL=closed_port_url("redis", "/0")
    ):
        response = Client().get("/health/")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


@pytest.mark.django_db
@FAST
def test_an_unreachable_broker_fails_rabbitmq_and_workers():
    with override_settings(CELERY_BROKER_URL=closed_port_url("amqp", "//")):
        status, body = ready()
    assert (status, body["status"]) == (503, "fail")
    assert failing(body) >= {"rabbitmq", "workers"}
    assert "Connection refused" in body["checks"]["rabbitmq"]["error"]
    assert "guest:guest" not in str(body)  # credentials never shown


@pytest.mark.django_db
@FAST
def test_an_unreachable_redis_fails_redis():
    with override_settings(REDIS_URL=closed_port_url("redis", "/0")):
        status, body = ready()
    assert status == 503
    assert "redis" in failing(body)
    assert "Connection refused" in body["checks"]["redis"]["error"]


@pytest.mark.django_db(transaction=True)
@FAST
@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_an_unreachable_database_fails_database_and_the_results_cache():
    database = {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": "127.0.0.1",
        "PORT": free_port(),
        "NAME": "procurement",
        "USER": "procurement",
    }
    from django.conf import settings

    caches = {
        **settings.CACHES,
        settings.CELERY_RESULTS_CACHE_ALIAS: {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "celery_results_cache",
        },
    }
    with override_settings(DATABASES={"default": database}, CACHES=caches):
        status, body = ready()
    assert status == 503
    assert failing(body) >= {"database", "cache"}
    assert "refused" in body["checks"]["database"]["error"]


@pytest.mark.django_db(transaction=True)
@FAST
def test_a_missing_results_table_fails_cache():
    from django.conf import settings

    caches = {
        **settings.CACHES,
        settings.CELERY_RESULTS_CACHE_ALIAS: {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "no_such_cache_table",
        },
    }
    with override_settings(CACHES=caches):
        status, body = ready()
    assert status == 503
    assert "cache" in failing(body) and "database" not in failing(body)
    assert "no_such_cache_table" in body["checks"]["cache"]["error"]


@pytest.mark.django_db
@FAST
def test_no_worker_on_the_platforms_queues_fails_workers_and_names_the_queues():
    """Workers of another platform on the same broker (other queue names) do not count."""
    require_service("RabbitMQ", 5672)
    queues = prefixed_queues(f"nobody-{uuid.uuid4().hex[:8]}-")
    with override_settings(CELERY_TASK_QUEUES=queues):
        status, body = ready()
    assert status == 503
    workers = body["checks"]["workers"]
    assert workers["status"] == "fail" and "no worker answered" in workers["error"]
    assert workers["workers"] == {}
    assert workers["queues_without_worker"] == [queue.name for queue in queues]
    assert body["checks"]["rabbitmq"]["status"] == "ok"
    assert set(body["checks"]["rabbitmq"]["queues"].values()) == {None}  # never declared


@pytest.mark.django_db
@FAST
def test_a_dependency_that_accepts_and_never_answers_is_reported_not_waited_for():
    """A port that takes the connection but says nothing (a hung server): the check times out
    and /ready/ still answers."""
    import socket

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        with override_settings(
            CELERY_BROKER_URL=f"amqp://guest:guest@127.0.0.1:{port}//",
            REDIS_URL=f"redis://127.0.0.1:{port}/0",
        ):
            status, body = ready()
    assert status == 503
    assert failing(body) >= {"rabbitmq", "redis", "workers"}


@pytest.mark.django_db
@FAST
@override_settings(SECURE_SSL_REDIRECT=True)
def test_health_ready_and_metrics_answer_over_plain_http_when_the_site_redirects_to_https():
    client = Client()
    assert client.get("/api/me/").status_code == 301
    assert client.get("/health/").status_code == 200
    assert client.get("/ready/").status_code in (200, 503)
    assert client.get("/metrics").status_code == 200
