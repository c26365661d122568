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
        what=f"the {kind} message in the dead-letter queue",
    )
    [dead] = [d for d in dead_letters(stack) if d["id"] == task_id]
    assert dead["reason"] == "rejected"  # refused once, not requeued: no loop
    assert stack.queue_depth("notifications") == 0
    log = stack.log("notifications")
    assert task_id in log or "ContentDisallowed" in log or "unregistered" in log.lower()
