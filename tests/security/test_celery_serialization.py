"""Celery takes JSON only: a pickle message, which could run code in the worker as it is read, is
refused before it is deserialized. ``tests/e2e/test_security.py`` sends one to a real worker."""

import pickle

import pytest
from kombu import Connection, Exchange, Message, Producer, Queue
from kombu.exceptions import ContentDisallowed
from kombu.serialization import dumps

from procurement_system.celery import app

TASK = "procurement_system.tasks.purge_task_results_task"


class Booby:
    """Unpickling this creates ``path``: proof that the payload was deserialized."""

    def __init__(self, path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_every_serializer_is_json():
    assert app.conf.accept_content == ["json"]
    assert app.conf.result_accept_content in (None, ["json"])  # None: accept_content
    assert app.conf.task_serializer == app.conf.result_serializer == "json"
    assert app.conf.event_serializer == "json"


def test_the_booby_trap_works(tmp_path):
    """The control: with pickle allowed, reading the payload would have run code."""
    trap = tmp_path / "pwned"
    pickle.loads(pickle.dumps(Booby(trap)))
    assert trap.exists()


def test_a_pickle_message_is_refused_by_the_task_consumer(tmp_path):
    trap = tmp_path / "pwned"
    exchange = Exchange("tasks", type="direct")
    queue = Queue("maintenance", exchange, routing_key="maintenance")
    received, refused = [], []

    with Connection("memory://") as connection:
        channel = connection.channel()
        producer = Producer(channel, exchange=exchange)
        queue(channel).declare()
        for serializer in ("pickle", "json"):
            body = Booby(trap) if serializer == "pickle" else [[], {}, {}]
            producer.publish(
                body,
                routing_key="maintenance",
                serializer=serializer,
                headers={"task": TASK, "id": f"{serializer}-1", "lang": "py"},
            )
        # What the worker consumes with: the app's accept_content.
        consumer = app.amqp.TaskConsumer(
            channel,
            queues=[queue],
            callbacks=[lambda body, message: received.append(body)],
            on_decode_error=lambda message, error: refused.append((message, error)),
        )
        with consumer:
            for _ in range(2):
                connection.drain_events(timeout=1)

    assert len(refused) == 1
    message, error = refused[0]
    assert isinstance(error, ContentDisallowed)
    assert "Refusing to deserialize untrusted content of type pickle" in str(error)
    assert message.headers["id"] == "pickle-1"
    assert received == [[[], {}, {}]]  # the JSON one went through
    assert not trap.exists()


def test_a_pickle_body_is_never_decoded_with_the_apps_accept(tmp_path):
    trap = tmp_path / "pwned"
    content_type, encoding, body = dumps(Booby(trap), serializer="pickle")
    message = Message(
        body=body,
        content_type=content_type,
        content_encoding=encoding,
        headers={"task": TASK},
        accept=app.amqp.TaskConsumer(Connection("memory://").channel()).accept,
    )
    with pytest.raises(ContentDisallowed):
        message.decode()
    with pytest.raises(ContentDisallowed):
        message.payload  # noqa: B018 - what the worker's strategy reads
    assert not trap.exists()
