"""The operators' view of the task queues in RabbitMQ, and dead letters put back to work.

``queue_states`` reads each task queue's and the dead-letter queue's depth and consumers (a
passive ``queue.declare`` answers both without creating anything); ``requeue_dead_letters`` moves
dead-lettered task messages back to the queue they died in; ``management_api_problem`` says why
Flower cannot show queue lengths, if it cannot. The names come from the settings, so
``CELERY_QUEUE_PREFIX`` is honoured throughout. The ``queues``, ``requeue_dead_letters`` and
``check_services`` management commands print what these return.
"""

import base64
import copy
import logging
import os
import ssl
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit, urlunsplit

import pika
import pika.exceptions
from django.conf import settings
from kombu import Connection
from kombu.utils.url import maybe_sanitize_url

DEAD_LETTER = "dead_letter"
# The Procfile's default for Flower's --broker-api, used when FLOWER_BROKER_API is not set.
FLOWER_BROKER_API_DEFAULT = "http://guest:guest@127.0.0.1:15672/api/"
ENABLE_MANAGEMENT_PLUGIN = "rabbitmq-plugins enable rabbitmq_management"
# Headers a quorum queue adds when it delivers a message; the copy put back starts afresh, with
# the whole delivery limit before it (the x-death history stays).
DELIVERY_HEADERS = ("x-delivery-count",)


class BrokerUnavailable(Exception):
    """RabbitMQ did not accept a connection."""


class QueueMissing(Exception):
    """A queue this operation needs has not been declared (no worker has started yet)."""


class RequeueFailed(Exception):
    """Putting a message back failed part way; ``report`` says what had been moved by then."""

    def __init__(self, report: "RequeueReport", error: Exception) -> None:
        self.report = report
        self.error = error
        super().__init__(f"{type(error).__name__}: {error}")


@dataclass(frozen=True)
class QueueState:
    role: str  # assignments, notifications, maintenance or dead_letter
    name: str  # the name in RabbitMQ, prefix included
    exists: bool
    messages: int | None = None  # ready to be delivered (not those a worker holds)
    consumers: int | None = None


@dataclass
class RequeueReport:
    dry_run: bool
    moved: Counter = field(default_factory=Counter)  # by queue name
    left: Counter = field(default_factory=Counter)  # by reason

    @property
    def total_moved(self) -> int:
        return sum(self.moved.values())


def broker_url() -> str:
    """The broker URL with its password masked, for messages."""
    return maybe_sanitize_url(settings.CELERY_BROKER_URL)


def task_queue_names() -> list[str]:
    return [queue.name for queue in settings.CELERY_TASK_QUEUES]


def dead_letter_queue_name() -> str:
    return settings.DEAD_LETTER_QUEUE.name


def role_of(name: str) -> str:
    """A queue's name without the prefix: ``assignments`` for ``e2e-1234-assignments``."""
    return name.removeprefix(settings.CELERY_QUEUE_PREFIX)


def task_queue_named(name: str) -> str:
    """The task queue ``name`` stands for, given with or without the prefix."""
    queues = task_queue_names()
    for candidate in (name, f"{settings.CELERY_QUEUE_PREFIX}{name}"):
        if candidate in queues:
            return candidate
    known = ", ".join(role_of(queue) for queue in queues)
    raise ValueError(f"{name!r} is not a task queue (the task queues: {known}).")


def queue_states() -> list[QueueState]:
    """Each task queue, then the dead-letter queue, with its depth and consumer count."""
    states = []
    with _connection() as connection:
        for name in [*task_queue_names(), dead_letter_queue_name()]:
            declared = _declared(connection, name)
            if declared is None:
                states.append(QueueState(role_of(name), name, exists=False))
            else:
                states.append(
                    QueueState(
                        role_of(name),
                        name,
                        exists=True,
                        messages=declared.message_count,
                        consumers=declared.consumer_count,
                    )
                )
    return states


def requeue_dead_letters(
    *, queue: str | None = None, limit: int | None = None, dry_run: bool = False
) -> RequeueReport:
    """Move dead-lettered task messages back to the queue each one died in, oldest first.

    Each message is published again to the tasks exchange under its queue's routing key, body,
    headers and properties as they were but for the quorum queue's delivery count, with a
    publisher confirm and ``mandatory`` (a message no queue would take is refused, not dropped);
    only then is the dead-letter copy acknowledged. A failure stops the run: the message in hand
    and every later one stay in the dead-letter queue, in their order, and ``RequeueFailed``
    carries what was moved before. Should the connection drop between the confirm and the
    acknowledgement, the message is in both queues; the tasks are idempotent.

    ``queue`` (a task queue's name, with or without the prefix) moves only the messages that
    died there; ``limit`` moves at most that many; ``dry_run`` counts what would move and
    changes nothing. Messages not moved (another queue's, their queue missing, no origin) are
    returned to the dead-letter queue untouched when the run ends, in their order. A run reads
    only the messages there when it began, so one that dies again meanwhile is moved once.
    """
    task_queues = task_queue_names()
    wanted = task_queue_named(queue) if queue is not None else None
    report = RequeueReport(dry_run=dry_run)
    with _connection() as connection:
        dead_letter = dead_letter_queue_name()
        declared = _declared(connection, dead_letter)
        if declared is None:
            raise QueueMissing(f"RabbitMQ has no queue {dead_letter!r}.")
        existing = {name for name in task_queues if _declared(connection, name) is not None}
        channel = connection.channel()
        channel.confirm_delivery()
        # One pass over what the queue held when the run began: a message moved back that dies
        # again at once joins the queue's tail, and must wait for the next run, not loop in this.
        # Messages read but not moved stay unacknowledged on this channel, so the next get
        # reads the one after them; closing the channel gives them all back, in order.
        for _ in range(declared.message_count):
            if limit is not None and report.total_moved >= limit:
                break
            method, properties, body = channel.basic_get(dead_letter, auto_ack=False)
            if method is None:
                break
            origin = origin_queue(properties)
            if origin is None or origin not in task_queues:
                report.left[f"not from a task queue ({origin or 'no x-death header'})"] += 1
            elif wanted is not None and origin != wanted:
                report.left[f"from {role_of(origin)}"] += 1
            elif origin not in existing:
                report.left[f"from {role_of(origin)}, which does not exist"] += 1
            elif dry_run:
                report.moved[origin] += 1
            else:
                try:
                    channel.basic_publish(
                        settings.TASKS_EXCHANGE,
                        origin,
                        body,
                        properties=republished(properties),
                        mandatory=True,
                    )
                except pika.exceptions.AMQPError as error:
                    raise RequeueFailed(report, error) from error
                channel.basic_ack(method.delivery_tag)
                report.moved[origin] += 1
    return report


def origin_queue(properties: pika.BasicProperties) -> str | None:
    """The queue a dead-lettered message died in: its latest ``x-death`` entry."""
    headers = properties.headers or {}
    deaths = headers.get("x-death") or []
    if deaths and deaths[0].get("queue"):
        return deaths[0]["queue"]
    return headers.get("x-last-death-queue") or headers.get("x-first-death-queue")


def republished(properties: pika.BasicProperties) -> pika.BasicProperties:
    """The properties to publish a dead letter again with: the same, but for delivery counts."""
    again = copy.copy(properties)
    if properties.headers is not None:
        again.headers = {k: v for k, v in properties.headers.items() if k not in DELIVERY_HEADERS}
    return again


# --- the management API, for Flower --------------------------------------------------------


def management_api() -> str:
    """The management API that Flower is given (``--broker-api``)."""
    return os.environ.get("FLOWER_BROKER_API") or FLOWER_BROKER_API_DEFAULT


def management_api_problem(url: str | None = None, *, timeout: float = 3.0) -> str | None:
    """Why Flower cannot read queue lengths from RabbitMQ's management API, and the fix; None
    when it can."""
    url = url or management_api()
    shown = maybe_sanitize_url(url)
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    request = urllib.request.Request(
        urlunsplit(parts._replace(netloc=netloc, path=parts.path.rstrip("/") + "/overview"))
    )
    if parts.username is not None:
        user_password = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        token = base64.b64encode(user_password.encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout):
            return None
    except urllib.error.HTTPError as error:
        return (
            f"RabbitMQ's management API at {shown} answered HTTP {error.code} ({error.reason}).\n"
            "  Check the user and password in FLOWER_BROKER_API (RabbitMQ's guest user is "
            "accepted from localhost only)."
        )
    except (OSError, ValueError) as error:
        reason = getattr(error, "reason", None) or error
        return (
            f"RabbitMQ's management API is not reachable at {shown} ({reason}).\n"
            f"  Enable it with: {ENABLE_MANAGEMENT_PLUGIN}"
        )


# --- connections -----------------------------------------------------------------------------


@contextmanager
def _connection() -> Iterator[pika.BlockingConnection]:
    try:
        connection = pika.BlockingConnection(_parameters())
    except pika.exceptions.AMQPConnectionError as error:
        raise BrokerUnavailable(f"RabbitMQ is not reachable at {broker_url()}: {error!r}") from None
    try:
        yield connection
    finally:
        if connection.is_open:
            connection.close()


def _parameters() -> pika.ConnectionParameters:
    """The broker URL as Celery reads it (kombu: ``amqp://host//`` is the vhost ``/``)."""
    broker = Connection(settings.CELERY_BROKER_URL)
    tls = bool(broker.ssl) or broker.transport_cls == "amqps"
    return pika.ConnectionParameters(
        host=broker.hostname or "127.0.0.1",
        port=broker.port or (5671 if tls else 5672),
        virtual_host=broker.virtual_host or "/",
        credentials=pika.PlainCredentials(broker.userid or "guest", broker.password or "guest"),
        ssl_options=pika.SSLOptions(ssl.create_default_context(), broker.hostname) if tls else None,
        connection_attempts=1,
        socket_timeout=settings.CELERY_BROKER_CONNECTION_TIMEOUT + 3,
        blocked_connection_timeout=30,
    )


def _declared(connection: pika.BlockingConnection, name: str):
    """The passive declare's answer (``message_count``, ``consumer_count``), or None when the
    queue does not exist (which closes the channel it was asked on, hence one per question)."""
    channel = connection.channel()
    # pika logs every channel the broker closes as a warning; here a 404 is an answer.
    pika_channel_log = logging.getLogger("pika.channel")
    level = pika_channel_log.level
    pika_channel_log.setLevel(logging.ERROR)
    try:
        return channel.queue_declare(name, passive=True).method
    except pika.exceptions.ChannelClosedByBroker as error:
        if error.reply_code == 404:
            return None
        raise
    finally:
        pika_channel_log.setLevel(level)
        if channel.is_open:
            channel.close()
