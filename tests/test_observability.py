"""Structured logs: one correlation id per pickup, from the socket frame or the REST request that
touches it through each Celery task to each notification; the JSON and text formats."""

import json
import logging
import uuid
import weakref
from types import SimpleNamespace

import pytest

from pickups.models import PickupRequest
from procurement_system import observability
from procurement_system.observability import (
    CORRELATION_HEADER,
    PICKUP_HEADER,
    JsonFormatter,
    LogContextFilter,
    TextFormatter,
)
from tests.consumers import ask, connect, token_for
from tests.factories import UserFactory, VendorFactory, client_for, create_pickup
from tests.pickups.test_consumers import create_frame


class Collected(logging.Handler):
    """Keeps the records, after the same filter the console handler has."""

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.records: list[logging.LogRecord] = []
        self.addFilter(LogContextFilter())

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def about(self, pickup_id: int) -> list[logging.LogRecord]:
        return [r for r in self.records if getattr(r, "pickup_id", None) == pickup_id]


@pytest.fixture
def logs():
    root = logging.getLogger()
    handler, level = Collected(), root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    # A fresh context, whatever earlier tests in this thread bound.
    with observability.log_context():
        yield handler
    root.removeHandler(handler)
    root.setLevel(level)


def transitions(records: list[logging.LogRecord]) -> list[logging.LogRecord]:
    return [r for r in records if r.name == "pickups.transitions"]


def deliveries(records: list[logging.LogRecord]) -> list[logging.LogRecord]:
    return [r for r in records if r.name == "notifications.tasks"]


# --- the chain: request -> tasks -> notifications -------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("worker_thread_connections")
async def test_a_socket_create_its_assignment_and_notifications_log_one_correlation_id(logs):
    from channels.db import database_sync_to_async

    alice = await database_sync_to_async(lambda: UserFactory(username="alice"))()
    await database_sync_to_async(VendorFactory)()
    socket = await connect("/ws/pickups/", await database_sync_to_async(token_for)(alice))
    reply = await ask(socket, create_frame())
    pickup_id = reply["pickup"]["id"]
    correlation_id = str(
        await database_sync_to_async(
            lambda: PickupRequest.objects.get(pk=pickup_id).correlation_id
        )()
    )

    moves = transitions(logs.records)
    assert [(r.event, r.from_status, r.to_status) for r in moves] == [
        ("create", "", "pending"),
        ("assign", "pending", "offered"),
    ]
    assert moves[0].getMessage() == f"pickup {pickup_id} create: (new) -> pending"
    assert moves[0].user_id == alice.pk  # the socket's user
    assert moves[1].task_name == "pickups.tasks.assign_vendor_task"
    sent = deliveries(logs.records)
    # pickup.created to alice; pickup.offered to the vendor's member and to alice
    assert len(sent) == 3 and all(r.pushed for r in sent)
    assert {r.task_name for r in sent} == {"notifications.tasks.push_notifications_task"}
    assert {r.notification_kind for r in sent} == {"pickup.created", "pickup.offered"}
    for record in [*moves, *sent]:
        assert (record.correlation_id, record.pickup_id) == (correlation_id, pickup_id)
    assert logs.about(pickup_id) == [r for r in logs.records if r in logs.about(pickup_id)]


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("worker_thread_connections")
async def test_the_next_frame_on_the_same_socket_starts_with_a_fresh_context(logs, monkeypatch):
    from channels.db import database_sync_to_async

    from pickups.consumers import PickupConsumer

    seen = []

    async def ping(self, content):
        seen.append(observability.current())
        return {"type": "pong"}

    monkeypatch.setattr(PickupConsumer, "action_ping", ping)
    alice = await database_sync_to_async(lambda: UserFactory(username="alice"))()
    socket = await connect("/ws/pickups/", await database_sync_to_async(token_for)(alice))
    await ask(socket, create_frame())  # binds the new pickup's correlation id in the service
    await ask(socket, {"action": "ping"})
    assert seen == [{"user_id": alice.pk}]


@pytest.mark.django_db(transaction=True)
def test_a_rest_create_logs_with_its_user_and_the_pickups_correlation_id(logs):
    alice = UserFactory(username="alice")
    VendorFactory()
    frame = create_frame()["data"]
    response = client_for(alice).post("/api/pickups/", frame, format="json")
    assert response.status_code == 201, response.content
    pickup = PickupRequest.objects.get(pk=response.json()["id"])
    moves = transitions(logs.records)
    assert [r.event for r in moves] == ["create", "assign"]
    assert moves[0].user_id == alice.pk
    for record in [*moves, *deliveries(logs.records)]:
        assert record.correlation_id == str(pickup.correlation_id)


@pytest.mark.django_db
def test_a_transition_is_logged_only_once_committed(logs, django_capture_on_commit_callbacks):
    customer = UserFactory()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        create_pickup(customer)
    assert transitions(logs.records) == []
    for callback in callbacks:
        callback()
    assert [r.event for r in transitions(logs.records)] == ["create"]


@pytest.mark.django_db
def test_every_transition_by_a_service_carries_the_pickups_ids(logs, run_on_commit):
    from pickups import services

    customer = UserFactory()
    VendorFactory()
    pickup = run_on_commit(create_pickup, customer)
    logs.records.clear()
    with observability.log_context():
        run_on_commit(services.pickup_cancel, pickup_id=pickup.pk, by=customer, reason="")
    [cancel] = transitions(logs.records)
    assert (cancel.event, cancel.from_status, cancel.to_status) == (
        "cancel",
        "offered",
        "cancelled",
    )
    assert cancel.correlation_id == str(pickup.correlation_id)
    assert all(r.correlation_id == str(pickup.correlation_id) for r in deliveries(logs.records))


# --- Celery: the id into the message and out of it ------------------------------------------


def test_a_task_published_while_a_pickup_is_bound_carries_its_ids():
    pickup = SimpleNamespace(pk=7, correlation_id=uuid.uuid4())
    headers: dict = {}
    with observability.log_context():
        observability.add_context_headers(headers=headers)
        assert headers == {}
        observability.bind_pickup(pickup)
        observability.add_context_headers(headers=headers)
    assert headers == {CORRELATION_HEADER: str(pickup.correlation_id), PICKUP_HEADER: 7}


def test_a_task_runs_in_the_context_its_message_carried_and_leaves_none_behind():
    request = SimpleNamespace(**{CORRELATION_HEADER: "abc", PICKUP_HEADER: 7})
    task = SimpleNamespace(name="pickups.tasks.assign_vendor_task", request=request)
    with observability.log_context():
        observability.enter_task_context(task_id="t-1", task=task)
        assert observability.current() == {
            "correlation_id": "abc",
            "pickup_id": 7,
            "task_id": "t-1",
            "task_name": "pickups.tasks.assign_vendor_task",
        }
        observability.bind(pickup_id=8)  # a sweep moving on to another pickup
        observability.leave_task_context(task_id="t-1")
        assert observability.current() == {}


def test_a_task_message_without_ids_starts_without_them():
    task = SimpleNamespace(name="pickups.tasks.expire_offers_task", request=SimpleNamespace())
    with observability.log_context():
        observability.enter_task_context(task_id="t-2", task=task)
        assert observability.current() == {
            "task_id": "t-2",
            "task_name": "pickups.tasks.expire_offers_task",
        }
        observability.leave_task_context(task_id="t-2")


def test_the_celery_app_has_the_hooks_connected():
    from celery import signals

    from procurement_system.celery import app  # noqa: F401 - connects them

    def receivers(signal) -> set:
        return {
            ref() if isinstance(ref, weakref.ReferenceType) else ref for _, ref in signal.receivers
        }

    assert observability.add_context_headers in receivers(signals.before_task_publish)
    assert observability.enter_task_context in receivers(signals.task_prerun)
    assert observability.leave_task_context in receivers(signals.task_postrun)
    assert observability.configure_worker_logging in receivers(signals.setup_logging)


# --- formats ----------------------------------------------------------------------------------


def record(message: str = "pickup %s offered", *args, **extra) -> logging.LogRecord:
    made = logging.LogRecord("pickups.transitions", logging.INFO, __file__, 1, message, args, None)
    made.__dict__.update(extra)
    LogContextFilter().filter(made)
    return made


def test_a_json_line_has_time_level_logger_message_the_context_and_the_extras():
    with observability.log_context(correlation_id="c-1", pickup_id=5, user_id=3):
        line = JsonFormatter().format(record("pickup %s offered", 5, event="assign"))
    assert "\n" not in line
    fields = json.loads(line)
    assert fields.pop("time").endswith("+00:00")
    assert fields == {
        "level": "INFO",
        "logger": "pickups.transitions",
        "message": "pickup 5 offered",
        "event": "assign",
        "correlation_id": "c-1",
        "pickup_id": 5,
        "user_id": 3,
    }


def test_a_json_line_leaves_out_the_libraries_noise_and_keeps_the_traceback():
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        made = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    made.color_message = "\x1b[31mfailed\x1b[0m"
    made.data = {"args": ["secret"]}
    fields = json.loads(JsonFormatter().format(made))
    assert "color_message" not in fields and "data" not in fields
    assert "ValueError: boom" in fields["exc_info"]


def test_a_text_line_is_readable_with_the_context_in_brackets():
    with observability.log_context(correlation_id="c-1", pickup_id=5):
        line = TextFormatter().format(record("pickup %s offered", 5))
    assert line.endswith(
        "INFO pickups.transitions pickup 5 offered [correlation_id=c-1 pickup_id=5]"
    )
    with observability.log_context():
        assert TextFormatter().format(record("plain")).endswith("pickups.transitions plain")


def test_the_log_format_follows_debug_unless_log_format_says(tmp_path):
    from tests.security.test_production_settings import production_env, settings_in

    production = production_env(tmp_path, LOG_FORMAT=None)
    assert settings_in(production, "LOG_FORMAT") == {"LOG_FORMAT": "json"}
    development = production_env(tmp_path, DJANGO_DEBUG="true", LOG_FORMAT=None)
    assert settings_in(development, "LOG_FORMAT") == {"LOG_FORMAT": "text"}
    forced = production_env(tmp_path, LOG_FORMAT="text")
    assert settings_in(forced, "LOG_FORMAT") == {"LOG_FORMAT": "text"}


# --- from a log line back to the pickup -----------------------------------------------------


@pytest.mark.django_db
def test_operators_find_a_pickup_by_the_correlation_id_of_a_log_line():
    from django.test import Client

    pickup = create_pickup(UserFactory(username="alice"))
    other = create_pickup(UserFactory(username="bob"))
    client = Client()
    client.force_login(UserFactory(username="operator", is_staff=True, is_superuser=True))
    found = client.get("/admin/pickups/pickuprequest/", {"q": str(pickup.correlation_id)})
    assert [p.pk for p in found.context["cl"].result_list] == [pickup.pk]
    assert client.get("/admin/pickups/pickuprequest/", {"q": "alice"}).status_code == 200
    page = client.get(f"/admin/pickups/pickuprequest/{pickup.pk}/change/").content.decode()
    assert str(pickup.correlation_id) in page and str(other.correlation_id) not in page
