"""Publishing messages for other systems to a RabbitMQ topic exchange, with publisher confirms.

Celery owns the task queues; this is the other way out of the platform, for messages that
systems outside it consume (the domain events of ``pickups.outbox``). It speaks pika directly:
a blocking connection with every wait bounded, the exchange declared durable on every connect
(idempotent), and each publish returning only once the broker confirmed it holds the message.
"""

import contextlib
from types import TracebackType
from typing import Self
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import pika
from pika.adapters.blocking_connection import BlockingChannel


class PublishError(Exception):
    """The broker was unreachable, or did not confirm a message; nothing after it was sent."""


def connection_parameters(url: str, *, timeout: float) -> pika.URLParameters:
    """pika's parameters for a Celery-style broker URL (``amqp://user:pass@host:port/vhost``),
    with every wait bounded by ``timeout`` seconds and a single connection attempt."""
    parts = urlsplit(url)
    if parts.scheme in {"pyamqp", "librabbitmq"}:
        parts = parts._replace(scheme="amqp")
    # Celery (kombu) reads everything after the first slash as the virtual host, so "//" is the
    # default vhost "/"; pika wants it quoted ("/%2F").
    vhost = unquote(parts.path[1:]) or "/"
    parts = parts._replace(path="/" + quote(vhost, safe=""))
    parameters = pika.URLParameters(urlunsplit(parts))
    parameters.connection_attempts = 1
    parameters.socket_timeout = timeout
    parameters.stack_timeout = timeout
    parameters.blocked_connection_timeout = timeout
    # No heartbeats, as Celery's own publishing connections: a kept connection lies idle between
    # uses, when nothing would answer the broker's heartbeats, and it would be dropped for that.
    # A broker that went away is noticed before the next use (``connected``), and a publish can
    # wait no longer than its task's time limit.
    parameters.heartbeat = 0
    return parameters


class ConfirmedPublisher:
    """``with ConfirmedPublisher(url, exchange, timeout=2) as publisher: publisher.publish(...)``.

    Entering (or ``connect``) connects, declares ``exchange`` (a durable topic exchange) and
    turns publisher confirms on; any failure, then or in ``publish``, is a ``PublishError``.
    """

    def __init__(self, url: str, exchange: str, *, timeout: float) -> None:
        self.exchange = exchange
        self.parameters = connection_parameters(url, timeout=timeout)
        self._connection: pika.BlockingConnection | None = None
        self._channel: BlockingChannel | None = None

    def __enter__(self) -> Self:
        self.connect()
        return self

    @property
    def connected(self) -> bool:
        """Whether the connection is open and usable. What the broker sent meanwhile (its
        heartbeats, or the close of a broker that restarted) is handled first, without
        waiting, so a connection kept between uses is checked before it is trusted."""
        if self._connection is None or self._channel is None:
            return False
        try:
            self._connection.process_data_events(time_limit=0)
        except Exception:
            self.close()
            return False
        return self._connection.is_open and self._channel.is_open

    def connect(self) -> None:
        try:
            self._connection = pika.BlockingConnection(self.parameters)
            self._channel = self._connection.channel()
            self._channel.exchange_declare(self.exchange, exchange_type="topic", durable=True)
            self._channel.confirm_delivery()
        except Exception as error:
            self.close()
            raise PublishError(f"cannot connect to the broker: {_describe(error)}") from error

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def publish(
        self,
        routing_key: str,
        body: bytes,
        *,
        message_id: str,
        correlation_id: str | None = None,
        timestamp: int | None = None,
        message_type: str | None = None,
        headers: dict | None = None,
    ) -> None:
        """Publish a persistent JSON message and wait until the broker confirms it."""
        if self._channel is None:
            raise PublishError("the publisher is not connected")
        properties = pika.BasicProperties(
            content_type="application/json",
            content_encoding="utf-8",
            delivery_mode=pika.DeliveryMode.Persistent,
            message_id=message_id,
            correlation_id=correlation_id,
            timestamp=timestamp,
            type=message_type,
            headers=headers,
        )
        try:
            self._channel.basic_publish(self.exchange, routing_key, body, properties)
        except Exception as error:
            raise PublishError(f"not confirmed: {_describe(error)}") from error

    def close(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and connection.is_open:
            # Closing a broken connection: there is nothing left to save.
            with contextlib.suppress(Exception):
                connection.close()


def _describe(error: Exception) -> str:
    return f"{type(error).__name__}: {error}".rstrip(": ") or type(error).__name__
