"""Poison messages end in the dead-letter queue, without a loop.

The task queues are quorum queues with a delivery limit and a dead-letter exchange; every worker
declares the dead-letter queue when it starts. These tests use the stack's real queues, as the
workers declared them.
"""

import json
import pickle
import uuid

import pika
import pytest
from django.conf import settings

from procurement_system.settings import TASK_DELIVERY_LIMIT
from tests.e2e.stack import wait_until

pytestmark = pytest.mark.e2e


def connect() -> pika.BlockingConnection:
    return pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1"))


def celery_message(task: str, args: list, *, content_type="application/json", body=None):
    """A task message in Celery's protocol 2, as a client would publish it."""
    task_id = str(uuid.uuid4())
    headers = {"lang": "py", "task": task, "id": task_id, "root_id": task_id, "retries": 0}
    payload = body if body is not None else json.dumps([args, {}, {}]).encode()
    properties = pika.BasicProperties(
        content_type=content_type,
        content_encoding="utf-8" if content_type == "application/json" else "binary",
        headers=headers,
        correlation_id=task_id,
        delivery_mode=2,
    )
    return task_id, payload, properties


def queue_arguments(stack) -> dict:
    """The task queues' arguments, as the settings declare them, under the stack's prefix."""
    [arguments] = {
        json.dumps(q.queue_arguments, sort_keys=True) for q in settings.CELERY_TASK_QUEUES
    }
    dead_letter = f"{stack.prefix}dead_letter"
    return {
        **json.loads(arguments),
        "x-dead-letter-exchange": dead_letter,
        "x-dead-letter-routing-key": dead_letter,
    }


def dead_letters(stack) -> list[dict]:
    """Take every message from the stack's dead-letter queue: its task id and x-death reason."""
    found = []
    connection = connect()
    try:
        channel = connection.channel()
        while True:
            method, properties, _ = channel.basic_get(f"{stack.prefix}dead_letter", auto_ack=True)
            if method is None:
                return found
            deaths = (properties.headers or {}).get("x-death") or [{}]
            found.append({"id": properties.headers.get("id"), "reason": deaths[0].get("reason")})
    finally:
        connection.close()


def test_the_task_queues_are_quorum_queues(stack):
    connection = connect()
    try:
        channel = connection.channel()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
            # Declaring it as a classic queue must clash with what the workers declared.
            channel.queue_declare(f"{stack.prefix}assignments", durable=True)
        assert refused.value.reply_code == 406  # PRECONDITION_FAILED: x-queue-type differs
    finally:
        if connection.is_open:
            connection.close()


def test_a_message_redelivered_past_the_limit_is_dead_lettered_not_looped(stack):
    """A consumer that dies holding the message (as a worker killed mid-task does) returns it to
    the queue; past the delivery limit RabbitMQ moves it to the dead-letter queue."""
    queue = f"{stack.prefix}maintenance"
    dead_letters(stack)
    task_id, body, properties = celery_message("poison.never_registered", [])
    connection = connect()
    try:
        channel = connection.channel()
        # The main stack runs no maintenance worker: declare its queue as a publisher does, with
        # the queue's own arguments, and play the crashing consumer with basic_get and a closed
        # channel, which returns the message.
        channel.queue_declare(queue, durable=True, arguments=queue_arguments(stack))
        channel.queue_bind(queue, f"{stack.prefix}celery_tasks", routing_key=queue)
        channel.basic_publish(f"{stack.prefix}celery_tasks", queue, body, properties)
    finally:
        connection.close()
    deliveries = 0
    while deliveries <= TASK_DELIVERY_LIMIT + 2:
        crashing = connect()
        method, _, _ = crashing.channel().basic_get(queue, auto_ack=False)
        crashing.close()  # dies without acknowledging: the message goes back
        if method is None:
            if any(d["id"] == task_id for d in dead_letters_peek(stack)):
                break
            continue
        deliveries += 1
    wait_until(
        lambda: any(d["id"] == task_id for d in dead_letters_peek(stack)),
        timeout=10,
        what="the message in the dead-letter queue",
    )
    assert deliveries == TASK_DELIVERY_LIMIT + 1  # delivered, then redelivered up to the limit
    [dead] = [d for d in dead_letters(stack) if d["id"] == task_id]
    assert dead["reason"] == "delivery_limit"
    assert stack.queue_depth("maintenance") == 0


def dead_letters_peek(stack) -> list[dict]:
    """What the dead-letter queue holds, leaving it there."""
    connection = connect()
    found = []
    try:
        channel = connection.channel()
        while True:
            method, properties, _ = channel.basic_get(f"{stack.prefix}dead_letter", auto_ack=False)
            if method is None:
                return found
            found.append({"id": (properties.headers or {}).get("id")})
    finally:
        connection.close()  # everything taken goes back


def refused_by_the_notifications_worker(stack, task_id, body, properties, *, what: str) -> None:
    """Empty the dead-letter queue, publish the message to the notifications queue, and wait
    until the worker has refused it into the dead-letter queue."""
    dead_letters(stack)
    connection = connect()
    try:
        connection.channel().basic_publish(
            f"{stack.prefix}celery_tasks", f"{stack.prefix}notifications", body, properties
        )
    finally:
        connection.close()
    wait_until(
        lambda: any(d["id"] == task_id for d in dead_letters_peek(stack)),
        timeout=15,
        what=f"{what} in the dead-letter queue",
    )


@pytest.mark.parametrize(
    "kind",
    ["pickle", "unregistered"],
)
def test_a_message_the_worker_refuses_is_dead_lettered_at_once(stack, kind):
    if kind == "pickle":
        payload = pickle.dumps(((1,), {}, {}))
        task_id, body, properties = celery_message(
            "pickups.tasks.assign_vendor_task",
            [],
            content_type="application/x-python-serialize",
            body=payload,
        )
    else:
        task_id, body, properties = celery_message("poison.never_registered", [1])
    refused_by_the_notifications_worker(
        stack, task_id, body, properties, what=f"the {kind} message"
    )
    [dead] = [d for d in dead_letters(stack) if d["id"] == task_id]
    assert dead["reason"] == "rejected"  # refused once, not requeued: no loop
    assert stack.queue_depth("notifications") == 0
    log = stack.log("notifications")
    assert task_id in log or "ContentDisallowed" in log or "unregistered" in log.lower()


def test_an_operator_puts_a_dead_letter_back_and_its_worker_receives_it_again(stack):
    """``manage.py requeue_dead_letters`` with the stack's environment moves a message the
    notifications worker refused back to its queue; the worker refuses it again, and the
    message, the same one, is dead-lettered a second time."""
    task_id, body, properties = celery_message("poison.never_registered", [2])
    refused_by_the_notifications_worker(stack, task_id, body, properties, what="the message")

    out = stack.manage("requeue_dead_letters", "--queue", "notifications")

    # Ours, and any other message the shared stack's worker refused meanwhile.
    lines = out.splitlines()
    assert lines[0].startswith("Moved ") and lines[0].endswith(" back to the queue each died in:")
    assert lines[1].split()[0] == f"{stack.prefix}notifications"

    def deaths() -> int:
        """How often our message has died in the notifications queue, by its x-death count (0:
        not dead-lettered now)."""
        connection = connect()
        try:
            channel = connection.channel()
            while True:
                method, header, _ = channel.basic_get(f"{stack.prefix}dead_letter")
                if method is None:
                    return 0
                if (header.headers or {}).get("id") == task_id:
                    return sum(
                        death["count"]
                        for death in header.headers["x-death"]
                        if death["queue"] == f"{stack.prefix}notifications"
                    )
        finally:
            connection.close()  # leaves every message there

    try:
        wait_until(lambda: deaths() == 2, timeout=30, what="the worker to refuse it again")
    except TimeoutError as timeout:
        # Say where the message is, for a failure that only a loaded machine shows.
        raise AssertionError(
            f"{timeout}: deaths={deaths()}, dead letters={dead_letters_peek(stack)}, "
            f"notifications queue depth={stack.queue_depth('notifications')}, "
            f"worker log tail:\n{stack.log('notifications')[-3000:]}"
        ) from timeout
    [dead] = [d for d in dead_letters(stack) if d["id"] == task_id]
    assert dead["reason"] == "rejected"
    assert stack.queue_depth("notifications") == 0
