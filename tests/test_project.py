"""Project wiring: Celery routing and serialization, the service check, migrations."""

import io
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from unittest.mock import patch

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError

from procurement_system.celery import app

REPO = Path(__file__).resolve().parents[1]


def route_of(task_name: str) -> str:
    return app.amqp.router.route({}, task_name)["queue"].name


def test_tasks_are_routed_to_their_queues():
    assert route_of("pickups.tasks.assign_vendor_task") == settings.QUEUE_ASSIGNMENTS
    assert route_of("notifications.tasks.send_notification_task") == settings.QUEUE_NOTIFICATIONS
    assert route_of("notifications.tasks.push_notifications_task") == settings.QUEUE_NOTIFICATIONS
    assert route_of("anything.else") == settings.QUEUE_MAINTENANCE


def test_queues_are_durable_and_messages_json_only():
    assert {q.name for q in app.conf.task_queues} == {
        settings.QUEUE_ASSIGNMENTS,
        settings.QUEUE_NOTIFICATIONS,
        settings.QUEUE_MAINTENANCE,
    }
    assert all(q.durable for q in app.conf.task_queues)
    assert app.conf.accept_content == ["json"]
    assert app.conf.task_serializer == app.conf.result_serializer == "json"
    assert app.conf.task_acks_late and app.conf.task_reject_on_worker_lost


def test_results_go_to_the_database_cache_and_expire():
    from procurement_system import settings as production  # the tests swap in a local cache

    assert app.conf.result_backend == "django-cache"
    cache = production.CACHES[app.conf.cache_backend]
    assert cache["BACKEND"] == "django.core.cache.backends.db.DatabaseCache"
    assert app.conf.result_expires == cache["TIMEOUT"] > 0
    assert cache["OPTIONS"]["MAX_ENTRIES"] >= 100_000


def test_tasks_are_registered():
    app.loader.import_default_modules()
    assert {
        "pickups.tasks.assign_vendor_task",
        "notifications.tasks.send_notification_task",
    } <= set(app.tasks)


def test_check_services_names_the_missing_service_and_how_to_start_it(settings):
    settings.CELERY_BROKER_URL = "amqp://guest:guest@127.0.0.1:1//"
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    stderr = io.StringIO()
    with pytest.raises(CommandError, match="RabbitMQ and Redis unavailable"):
        call_command("check_services", stderr=stderr)
    assert "rabbitmq-server -detached" in stderr.getvalue()
    assert "redis-server --daemonize yes" in stderr.getvalue()


@pytest.mark.django_db
def test_models_and_migrations_agree():
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


@pytest.mark.django_db
def test_seed_demo_is_repeatable():
    first, second = io.StringIO(), io.StringIO()
    call_command("seed_demo", stdout=first)
    call_command("seed_demo", stdout=second)
    assert first.getvalue() == second.getvalue()
    assert "victor  Authorization: Token " in first.getvalue()


@pytest.mark.django_db
def test_the_admin_shows_pickups_but_cannot_change_them(client, customer):
    from django.contrib.auth import get_user_model

    from tests.factories import create_pickup

    pickup = create_pickup(customer)
    client.force_login(get_user_model().objects.create_superuser("op", "op@example.com", "x"))
    page = client.get(f"/admin/pickups/pickuprequest/{pickup.pk}/change/")
    assert page.status_code == 200
    assert b"Alexanderplatz 1, Berlin" in page.content
    posted = client.post(
        f"/admin/pickups/pickuprequest/{pickup.pk}/change/", {"status": "completed"}
    )
    assert posted.status_code == 403
    assert client.get("/admin/pickups/pickuprequest/").status_code == 200


def test_the_admin_stylesheet_is_served_by_the_app(client):
    response = client.get("/static/admin/css/base.css")
    assert response.status_code == 200
    assert b"".join(response.streaming_content).startswith(b"/*")


def test_the_openapi_schema_validates_without_warnings(tmp_path):
    call_command(
        "spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml")
    )
    schema = (tmp_path / "schema.yaml").read_text()
    assert "/api/pickups/{id}/accept/" in schema


@pytest.mark.django_db
def test_swagger_ui_and_redoc_are_served_without_a_cdn(client):
    for path in ("/api/docs/", "/api/redoc/"):
        page = client.get(path).content.decode()
        assert not re.findall(r"""(?:src|href)=["']https?://""", page), path
    swagger = client.get("/api/docs/").content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in swagger
    # Otherwise Swagger UI sends the schema's address to swagger.io for its validator badge.
    assert '"validatorUrl": null' in swagger
    assert (
        'src="/api/redoc/bundles/redoc.standalone.js"' in client.get("/api/redoc/").content.decode()
    )
    assert client.get("/api/schema/").status_code == 200


def test_redoc_bundle_is_the_sidecars_without_its_cdn_logo(client):
    import drf_spectacular_sidecar

    original = (
        Path(drf_spectacular_sidecar.__file__).parent
        / "static/drf_spectacular_sidecar/redoc/bundles/redoc.standalone.js"
    ).read_bytes()
    response = client.get("/api/redoc/bundles/redoc.standalone.js")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/javascript")
    assert b"cdn.redoc.ly" in original
    assert b"cdn.redoc.ly" not in response.content
    assert len(response.content) == len(original) - len(b"https://cdn.redoc.ly/redoc/logo-mini.svg")
    again = client.get(
        "/api/redoc/bundles/redoc.standalone.js", HTTP_IF_NONE_MATCH=response["ETag"]
    )
    assert again.status_code == 304
    assert client.post("/api/redoc/bundles/redoc.standalone.js").status_code == 405


def test_every_operation_has_a_summary_examples_and_its_errors():
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            name = f"{method.upper()} {path}"
            assert operation.get("summary"), name
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            assert body is None or body.get("examples"), f"{name}: no request example"
            for status, response in operation["responses"].items():
                content = response.get("content", {}).get("application/json")
                if status.startswith("2") and content:
                    assert content.get("examples"), f"{name} {status}: no response example"
            errors = {s for s in operation["responses"] if s[0] in "45"}
            assert "429" in errors, name
            if name != "POST /api/auth/token/":
                assert "401" in errors, name


@pytest.mark.django_db(transaction=True)
def test_tasks_keep_a_live_database_connection_and_drop_an_old_one():
    """Around each task the workers recycle database connections as Django does around a
    request (by CONN_MAX_AGE), and Celery's fixup, which would close them all, is told not to."""
    from celery.signals import task_postrun, task_prerun
    from django.db import connection

    from pickups.tasks import assign_vendor_task

    assert app.conf.db_reuse_max >= 100
    connection.ensure_connection()
    with patch.object(connection, "close", wraps=connection.close) as close:
        connection.close_at = time.monotonic() + 60  # as CONN_MAX_AGE=60 leaves it
        task_prerun.send(sender=assign_vendor_task, task_id="t1", task=assign_vendor_task)
        task_postrun.send(sender=assign_vendor_task, task_id="t1", task=assign_vendor_task)
        assert close.call_count == 0
        connection.close_at = time.monotonic() - 1  # older than CONN_MAX_AGE
        task_postrun.send(sender=assign_vendor_task, task_id="t2", task=assign_vendor_task)
        assert close.call_count == 1
        # A task run eagerly, inside its caller (as the tests run them), leaves the caller's
        # connection alone, obsolete or not: it may be in the middle of a transaction.
        connection.ensure_connection()
        connection.close_at = time.monotonic() - 1
        assert app.tasks["pickups.tasks.relay_events_task"].apply().successful()
        assert close.call_count == 1


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "(700, 10, 10) False"),
        ({"WEB_GC_THRESHOLDS": "50000,20,100", "WEB_GC_FREEZE": "true"}, "(50000, 20, 100) True"),
    ],
)
def test_the_web_process_tunes_its_garbage_collector(env, expected):
    """Set by ``procurement_system.asgi``, the module uvicorn loads, in a process of its own."""
    code = (
        "import gc, procurement_system.asgi; print(gc.get_threshold(), gc.get_freeze_count() > 0)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "procurement_system.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == expected
