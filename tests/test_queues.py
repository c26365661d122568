"""The operators' queue commands against the real RabbitMQ: ``queues`` and
``requeue_dead_letters`` (``procurement_system/queues.py``), and ``check_services``' word on the
management API.

Each test gets queue names of its own (a prefix, as ``CELERY_QUEUE_PREFIX`` gives), declared as
the workers declare them, and deletes them afterwards; nothing else on the broker is touched.
Without RabbitMQ the tests are skipped, or fail with ``CI=true``.
"""

import io
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from types import SimpleNamespace

import pika
import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.core.management.base import CommandError
from kombu import Exchange, Queue
from pika.adapters.blocking_connection import BlockingChannel

from procurement_system import queues
from procurement_system.celery import app, declare_queues
from procurement_system.settings import TASK_DELIVERY_LIMIT
from tests.conftest import require_service
from tests.e2e.stack import wait_until

REPO = Path(__file__).resolve().parents[1]
ROLES = ("assignments", "notifications", "maintenance")


class Broker:
    """One test's queues on the real RabbitMQ, and what a worker or a poison message does."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.dead_letter = f"{prefix}dead_letter"
        self.exchange = f"{prefix}celery_tasks"
        self.connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1"))
        self.channel = self.connection.channel()
        # A confirmed publish is in its queue: the get that follows finds it.
        self.channel.confirm_delivery()

    def name(self, role: str) -> str:
        return f"{self.prefix}{role}"

    def publish(self, role: str, task_id: str, **properties) -> None:
        """A task message as Celery publishes it, with a few more properties to keep."""
        self.channel.basic_publish(
            self.exchange,
            self.name(role),
            json.dumps([[task_id], {}, {}]).encode(),
            pika.BasicProperties(
                content_type="application/json",
                content_encoding="utf-8",
                headers={"lang": "py", "task": "poison.example", "id": task_id, "retries": 0},
                correlation_id=task_id,
                delivery_mode=2,
                **properties,
            ),
        )

    def reject(self, role: str, task_id: str, **properties) -> None:
        """Publish, then refuse it as a worker refuses a message it cannot run: dead-lettered
        at once, reason ``rejected``."""
        self.publish(role, task_id, **properties)
        method, header, _ = self.channel.basic_get(self.name(role), auto_ack=False)
        assert header.headers["id"] == task_id
        self.channel.basic_nack(method.delivery_tag, requeue=False)

    def deliveries_until_dead(self, role: str, task_id: str) -> int:
        """Take the message and die holding it, as a worker killed mid-task does, until the
        queue's delivery limit dead-letters it; how many times it was delivered."""
        deliveries = 0
        while not any(i == task_id for i, _ in self.contents(self.dead_letter)):
            crashing = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1"))
            method, _, _ = crashing.channel().basic_get(self.name(role), auto_ack=False)
            crashing.close()  # the message goes back, one delivery more
            deliveries += method is not None
            assert deliveries <= TASK_DELIVERY_LIMIT + 2, "never dead-lettered"
        return deliveries

    def contents(self, queue: str) -> list[tuple[str, pika.BasicProperties]]:
        """Each message's task id and properties, in order, leaving them in the queue."""
        connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1"))
        found = []
        try:
            channel = connection.channel()
            while True:
                method, properties, _ = channel.basic_get(queue, auto_ack=False)
                if method is None:
                    return found
                found.append(((properties.headers or {}).get("id"), properties))
        finally:
            connection.close()  # everything taken goes back, in order

    def ids(self, queue: str) -> list[str]:
        return [task_id for task_id, _ in self.contents(queue)]

    def take(self, queue: str) -> tuple[pika.BasicProperties, bytes]:
        method, properties, body = self.channel.basic_get(queue, auto_ack=True)
        assert method is not None, f"{queue} is empty"
        return properties, body

    def close(self) -> None:
        channel = self.connection.channel()
        for queue in [*(self.name(role) for role in ROLES), self.dead_letter]:
            channel.queue_delete(queue)
        channel.exchange_delete(self.exchange)
        channel.exchange_delete(self.dead_letter)
        self.connection.close()


def queue_settings(prefix: str) -> dict:
    """The settings' queues under ``prefix``: what CELERY_QUEUE_PREFIX=prefix gives."""
    tasks = Exchange(f"{prefix}celery_tasks", type="topic", durable=True)
    dead_letter = Exchange(f"{prefix}dead_letter", type="direct", durable=True)
    task_queues = [
        Queue(
            f"{prefix}{queue.name}",
            tasks,
            routing_key=f"{prefix}{queue.name}",
            durable=True,
            queue_arguments={
                **queue.queue_arguments,
                "x-dead-letter-exchange": dead_letter.name,
                "x-dead-letter-routing-key": dead_letter.name,
            },
        )
        for queue in django_settings.CELERY_TASK_QUEUES
    ]
    return {
        "CELERY_QUEUE_PREFIX": prefix,
        "TASKS_EXCHANGE": tasks.name,
        "CELERY_TASK_QUEUES": task_queues,
        "DEAD_LETTER_QUEUE": Queue(
            dead_letter.name,
            dead_letter,
            routing_key=dead_letter.name,
            durable=True,
            queue_arguments=django_settings.DEAD_LETTER_QUEUE.queue_arguments,
        ),
    }


@pytest.fixture
def prefix(settings):
    """Queue names of this test's own, not declared yet."""
    require_service("RabbitMQ", 5672)
    assert [q.name for q in settings.CELERY_TASK_QUEUES] == list(ROLES)  # unprefixed in tests
    prefix = f"test-{uuid.uuid4().hex[:8]}-"
    for name, value in queue_settings(prefix).items():
        setattr(settings, name, value)
    broker = Broker(prefix)
    try:
        yield broker
    finally:
        broker.close()


@pytest.fixture
def broker(prefix):
    """This test's queues, declared by the workers' own start-up hook."""
    declare_queues(sender=SimpleNamespace(app=app))
    return prefix


def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def lines(text: str) -> list[str]:
    """The lines, each with its runs of spaces (the columns' padding) made one."""
    return [" ".join(line.split()) for line in text.splitlines()]


# --- queues ------------------------------------------------------------------------------------


def test_queues_shows_each_queue_with_its_depth_and_consumers(broker):
    broker.publish("assignments", "a1")
    broker.publish("assignments", "a2")
    broker.reject("maintenance", "m1")
    consumer = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1"))
    try:
        consumer.channel().basic_consume(broker.name("notifications"), lambda *_: None)
        out, _ = run("queues")
        states = {s["role"]: s for s in json.loads(run("queues", "--json")[0])}
    finally:
        consumer.close()
    lines = out.splitlines()
    assert lines[0].split() == ["queue", "messages", "consumers"]
    assert lines[1].split() == [broker.name("assignments"), "2", "0"]
    assert lines[2].split() == [broker.name("notifications"), "0", "1"]
    assert lines[3].split() == [broker.name("maintenance"), "0", "0"]
    assert lines[4].startswith(f"{broker.dead_letter}  ")
    assert lines[4].split()[1:3] == ["1", "0"]
    assert "requeue_dead_letters" in lines[4]
    assert states == {
        "assignments": {
            "role": "assignments",
            "name": broker.name("assignments"),
            "exists": True,
            "messages": 2,
            "consumers": 0,
        },
        "notifications": {
            "role": "notifications",
            "name": broker.name("notifications"),
            "exists": True,
            "messages": 0,
            "consumers": 1,
        },
        "maintenance": {
            "role": "maintenance",
            "name": broker.name("maintenance"),
            "exists": True,
            "messages": 0,
            "consumers": 0,
        },
        "dead_letter": {
            "role": "dead_letter",
            "name": broker.dead_letter,
            "exists": True,
            "messages": 1,
            "consumers": 0,
        },
    }


def test_queues_says_which_queue_is_missing(prefix):
    prefix.channel.queue_declare(prefix.name("notifications"), durable=True)
    out, _ = run("queues")
    states = {s["role"]: s for s in json.loads(run("queues", "--json")[0])}
    assert [role for role, s in states.items() if not s["exists"]] == [
        "assignments",
        "maintenance",
        "dead_letter",
    ]
    assert states["assignments"]["messages"] is None
    missing = [line for line in out.splitlines() if "missing" in line]
    assert [line.split()[0] for line in missing] == [
        prefix.name("assignments"),
        prefix.name("maintenance"),
        prefix.dead_letter,
    ]
    assert "not declared yet" in missing[0]


def test_queues_honours_the_prefix_from_the_environment(prefix):
    """The command as an operator runs it: the settings module, CELERY_QUEUE_PREFIX set."""
    declare_queues(sender=SimpleNamespace(app=app))
    prefix.publish("maintenance", "m1")
    env = {**os.environ, "CELERY_QUEUE_PREFIX": prefix.prefix}
    env["DJANGO_SETTINGS_MODULE"] = "procurement_system.settings"
    done = subprocess.run(
        [sys.executable, "manage.py", "queues", "--json"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    states = {s["name"]: s["messages"] for s in json.loads(done.stdout)}
    assert states == {
        prefix.name("assignments"): 0,
        prefix.name("notifications"): 0,
        prefix.name("maintenance"): 1,
        prefix.dead_letter: 0,
    }


def test_queue_commands_name_the_fix_when_rabbitmq_is_down(settings):
    settings.CELERY_BROKER_URL = "amqp://guest:guest@127.0.0.1:1//"
    for command in ("queues", "requeue_dead_letters"):
        with pytest.raises(CommandError, match="rabbitmq-server -detached") as failed:
            run(command)
        assert "not reachable at amqp://guest:**@127.0.0.1:1//" in str(failed.value)


# --- requeue_dead_letters ----------------------------------------------------------------------


def test_dead_letters_go_back_to_their_queues_in_order_as_they_were(broker):
    extra = {"priority": 3, "reply_to": "reply-queue", "app_id": "client", "message_id": "m"}
    for role, task_id in [
        ("assignments", "a1"),
        ("notifications", "n1"),
        ("assignments", "a2"),
        ("maintenance", "m1"),
        ("assignments", "a3"),
    ]:
        broker.reject(role, task_id, **extra)
    [(_, dead)] = [e for e in broker.contents(broker.dead_letter) if e[0] == "a1"]

    out, _ = run("requeue_dead_letters")

    assert lines(out) == [
        f"Moved 5 messages from {broker.dead_letter} back to the queue each died in:",
        f"{broker.name('assignments')} 3",
        f"{broker.name('maintenance')} 1",
        f"{broker.name('notifications')} 1",
    ]
    assert broker.ids(broker.dead_letter) == []
    assert broker.ids(broker.name("assignments")) == ["a1", "a2", "a3"]
    assert broker.ids(broker.name("notifications")) == ["n1"]
    assert broker.ids(broker.name("maintenance")) == ["m1"]
    again, body = broker.take(broker.name("assignments"))
    assert json.loads(body) == [["a1"], {}, {}]
    for attribute in (
        "content_type",
        "content_encoding",
        "correlation_id",
        "delivery_mode",
        *extra,
    ):
        assert getattr(again, attribute) == getattr(dead, attribute), attribute
    assert again.headers["task"] == "poison.example"
    assert again.headers["x-death"][0]["reason"] == "rejected"  # its history stays


def test_a_message_put_back_gets_the_whole_delivery_limit_again(broker):
    broker.publish("maintenance", "poison")
    assert broker.deliveries_until_dead("maintenance", "poison") == TASK_DELIVERY_LIMIT + 1
    [(_, dead)] = broker.contents(broker.dead_letter)
    assert dead.headers["x-death"][0]["reason"] == "delivery_limit"

    run("requeue_dead_letters")

    # A fresh message to the quorum queue: delivered as often as the first time before it dies.
    assert broker.deliveries_until_dead("maintenance", "poison") == TASK_DELIVERY_LIMIT + 1
    [(_, dead_again)] = broker.contents(broker.dead_letter)
    assert dead_again.headers["x-death"][0]["count"] == 2


def test_only_the_queue_asked_for_and_at_most_the_limit_move(broker):
    for role, task_id in [
        ("assignments", "a1"),
        ("notifications", "n1"),
        ("assignments", "a2"),
        ("notifications", "n2"),
        ("assignments", "a3"),
        ("notifications", "n3"),
    ]:
        broker.reject(role, task_id)

    out, _ = run("requeue_dead_letters", "--queue", "notifications", "--limit", "2")

    assert lines(out) == [
        f"Moved 2 messages from {broker.dead_letter} back to the queue each died in:",
        f"{broker.name('notifications')} 2",
        f"Left in {broker.dead_letter}: 2 from assignments.",
    ]
    assert broker.ids(broker.name("notifications")) == ["n1", "n2"]
    assert broker.ids(broker.dead_letter) == ["a1", "a2", "a3", "n3"]
    # The prefixed name works as well.
    out, _ = run("requeue_dead_letters", "--queue", broker.name("assignments"))
    assert f"{broker.name('assignments')} 3" in lines(out)
    assert broker.ids(broker.dead_letter) == ["n3"]


def test_a_message_that_dies_again_during_the_run_is_moved_once(broker, monkeypatch):
    """The worker refuses each message the moment it is back: it is dead again, at the queue's
    tail, before the run reads on. The run moves only what was there when it began."""
    for task_id in ("n1", "n2"):
        broker.reject("notifications", task_id)
    acknowledge = BlockingChannel.basic_ack
    refused = []

    def acknowledge_then_refuse_again(channel, delivery_tag=0, multiple=False):
        acknowledge(channel, delivery_tag, multiple)
        assert len(refused) < 2, "a message was moved a second time in one run"
        method, header, _ = broker.channel.basic_get(broker.name("notifications"))
        broker.channel.basic_nack(method.delivery_tag, requeue=False)
        refused.append(header.headers["id"])
        wait_until(
            lambda: refused[-1] in broker.ids(broker.dead_letter),
            timeout=10,
            what=f"{refused[-1]} dead again",
        )

    monkeypatch.setattr(BlockingChannel, "basic_ack", acknowledge_then_refuse_again)
    out, _ = run("requeue_dead_letters")
    monkeypatch.undo()

    assert lines(out) == [
        f"Moved 2 messages from {broker.dead_letter} back to the queue each died in:",
        f"{broker.name('notifications')} 2",
    ]
    assert refused == ["n1", "n2"]
    deaths = {i: p.headers["x-death"][0]["count"] for i, p in broker.contents(broker.dead_letter)}
    assert deaths == {"n1": 2, "n2": 2}


def test_a_dry_run_counts_and_changes_nothing(broker):
    for role, task_id in [("assignments", "a1"), ("maintenance", "m1"), ("assignments", "a2")]:
        broker.reject(role, task_id)
    before = broker.ids(broker.dead_letter)

    out, _ = run("requeue_dead_letters", "--dry-run")

    assert lines(out) == [
        f"Would move 3 messages from {broker.dead_letter} back to the queue each died in:",
        f"{broker.name('assignments')} 2",
        f"{broker.name('maintenance')} 1",
    ]
    assert broker.ids(broker.dead_letter) == before == ["a1", "m1", "a2"]
    assert {role: broker.ids(broker.name(role)) for role in ROLES} == {r: [] for r in ROLES}


def test_a_publish_that_fails_midway_loses_nothing(broker):
    """Unbound from the tasks exchange, maintenance takes no message: the publish is returned
    (mandatory) and the run stops there, with that message and the later ones still dead."""
    for role, task_id in [("assignments", "a1"), ("maintenance", "m1"), ("assignments", "a2")]:
        broker.reject(role, task_id)
    name = broker.name("maintenance")
    broker.channel.queue_unbind(name, broker.exchange, routing_key=name)

    out = io.StringIO()
    with pytest.raises(CommandError, match="Stopped: publishing a message again failed"):
        call_command("requeue_dead_letters", stdout=out, stderr=io.StringIO())

    assert lines(out.getvalue()) == [
        f"Moved 1 message from {broker.dead_letter} back to the queue each died in:",
        f"{broker.name('assignments')} 1",
    ]
    assert broker.ids(broker.name("assignments")) == ["a1"]
    assert broker.ids(broker.dead_letter) == ["m1", "a2"]
    assert broker.ids(name) == []


def test_messages_with_nowhere_to_go_are_left_where_they_are(broker):
    broker.reject("maintenance", "m1")
    broker.reject("assignments", "a1")
    broker.channel.queue_delete(broker.name("maintenance"))
    # Published straight to the dead-letter queue: no x-death header says where it came from.
    broker.channel.basic_publish(
        "", broker.dead_letter, b"[]", pika.BasicProperties(headers={"id": "stray"})
    )

    out, _ = run("requeue_dead_letters")

    assert lines(out) == [
        f"Moved 1 message from {broker.dead_letter} back to the queue each died in:",
        f"{broker.name('assignments')} 1",
        f"Left in {broker.dead_letter}: 1 from maintenance, which does not exist.",
        f"Left in {broker.dead_letter}: 1 not from a task queue (no x-death header).",
    ]
    assert broker.ids(broker.dead_letter) == ["m1", "stray"]


def test_requeue_with_nothing_dead(broker):
    assert run("requeue_dead_letters")[0] == f"Moved no messages from {broker.dead_letter}.\n"


def test_requeue_before_any_worker_started(prefix):
    out, _ = run("requeue_dead_letters")
    assert out == (
        f"RabbitMQ has no queue {prefix.dead_letter!r}. No worker has started yet: "
        "nothing to move.\n"
    )


def test_requeue_refuses_an_unknown_queue_and_a_limit_below_one(broker):
    with pytest.raises(CommandError, match="'bogus' is not a task queue"):
        run("requeue_dead_letters", "--queue", "bogus")
    with pytest.raises(CommandError, match="--limit must be at least 1"):
        run("requeue_dead_letters", "--limit", "0")


# --- the management API (Flower's queue lengths) -----------------------------------------------


def test_the_management_api_default_is_the_procfiles():
    flower = (REPO / "Procfile").read_text().split("flower: ", 1)[1]
    assert f"--broker-api=${{FLOWER_BROKER_API:-{queues.FLOWER_BROKER_API_DEFAULT}}}" in flower


def test_check_services_names_the_fix_for_a_missing_management_api(broker, monkeypatch):
    require_service("Redis", 6379)
    closed = f"http://guest:guest@127.0.0.1:{unused_port()}/api/"
    monkeypatch.setenv("FLOWER_BROKER_API", closed)
    out, err = run("check_services")  # a warning, not a failure
    assert "RabbitMQ and Redis are reachable." in out
    assert f"management API is not reachable at {closed.replace(':guest@', ':**@')}" in err
    assert "Enable it with: rabbitmq-plugins enable rabbitmq_management" in err
    assert "Flower works, without queue lengths." in err


def test_check_services_is_quiet_about_a_management_api_that_answers(broker, monkeypatch):
    require_service("Redis", 6379)
    require_service("RabbitMQ management API", 15672)
    monkeypatch.delenv("FLOWER_BROKER_API", raising=False)
    assert run("check_services")[1] == ""
    monkeypatch.setenv("FLOWER_BROKER_API", "http://guest:wrong@127.0.0.1:15672/api/")
    err = run("check_services")[1]
    assert "answered HTTP 401" in err and "FLOWER_BROKER_API" in err


def unused_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
