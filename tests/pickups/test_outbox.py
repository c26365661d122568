"""The relay publishes the stored domain events to the real RabbitMQ: in order, each once the
broker confirmed it, one relay at a time, and nothing lost while the broker is away.

Each test binds an exclusive queue to an exchange of its own (``EVENTS_EXCHANGE``), so tests
and stacks sharing the broker never see each other's events.
"""

import json
import socket
import threading
import time
import uuid
from datetime import timedelta
from decimal import Decimal

import pika
import pytest
from django.db import connection, connections
from django.utils import timezone

from pickups import outbox, services, tasks
from pickups.models import DomainEvent, EventRelayLease
from procurement_system.event_bus import ConfirmedPublisher, PublishError
from tests.conftest import require_service
from tests.e2e.stack import free_port
from tests.factories import HOME, VendorFactory, create_pickup, member_of

pytestmark = pytest.mark.django_db

LIFECYCLE = ["create", "assign", "accept", "start", "pick_up", "complete"]


class Bound:
    """An exclusive queue bound to the test's exchange with ``pickup.#``."""

    def __init__(self, exchange: str) -> None:
        self.exchange = exchange
        self.connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1"))
        self.channel = self.connection.channel()
        self.channel.exchange_declare(exchange, exchange_type="topic", durable=True)
        self.queue = self.channel.queue_declare("", exclusive=True).method.queue
        self.channel.queue_bind(self.queue, exchange, routing_key="pickup.#")

    def receive(self, count: int, timeout: float = 10) -> list[tuple]:
        """The next ``count`` messages as (routing key, properties, parsed body); fails after
        ``timeout`` seconds without them."""
        got: list[tuple] = []
        deadline = time.monotonic() + timeout
        while len(got) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{len(got)} of {count} messages within {timeout} s")
            method, properties, body = next(
                self.channel.consume(self.queue, auto_ack=True, inactivity_timeout=remaining)
            )
            if method is not None:
                got.append((method.routing_key, properties, json.loads(body)))
        self.channel.cancel()
        return got

    def close(self) -> None:
        try:
            self.channel.exchange_delete(self.exchange)
        finally:
            self.connection.close()


@pytest.fixture
def bound(settings):
    require_service("RabbitMQ", 5672)
    settings.EVENTS_EXCHANGE = f"test-events-{uuid.uuid4().hex[:12]}"
    outbox.wake_up_received()  # no relay noted as queued by an earlier test
    queue = Bound(settings.EVENTS_EXCHANGE)
    yield queue
    queue.close()


@pytest.fixture
def broker_down(settings):
    """The broker URL points at a port nobody listens on: every connect is refused."""
    real = settings.EVENTS_BROKER_URL
    settings.EVENTS_BROKER_URL = f"amqp://guest:guest@127.0.0.1:{free_port()}//"
    yield lambda: setattr(settings, "EVENTS_BROKER_URL", real)


@pytest.fixture
def vendor():
    return VendorFactory(name="Near", latitude=HOME[0] + 0.005, capacity=50)


def lifecycle(customer, vendor, run_on_commit) -> int:
    """A pickup created, offered, accepted and completed through the services."""
    pickup = run_on_commit(create_pickup, customer)
    by = member_of(vendor)
    run_on_commit(services.pickup_accept, pickup_id=pickup.pk, by=by)
    for status in ("en_route", "picked_up", "completed"):
        weights = {"paper": Decimal("11")} if status == "picked_up" else None
        run_on_commit(
            services.pickup_advance,
            pickup_id=pickup.pk,
            by=by,
            status=status,
            actual_weights=weights,
        )
    return pickup.pk


def stored_events(count: int) -> list[DomainEvent]:
    """``count`` events as a transition stores them, without the pickups around them."""
    rows = []
    for n in range(count):
        event_id = uuid.uuid4()
        payload = {"schema": "procurement.pickup.event/1", "id": str(event_id), "n": n}
        rows.append(
            DomainEvent(
                event_id=event_id,
                event="create",
                routing_key="pickup.create",
                pickup_id=n + 1,
                payload={**payload, "correlation_id": str(uuid.uuid4())},
            )
        )
    DomainEvent.objects.bulk_create(rows)
    return list(DomainEvent.objects.order_by("id"))


def unpublished() -> list[DomainEvent]:
    return list(outbox.events_unpublished().order_by("id"))


# --- publishing -----------------------------------------------------------------------------


def test_a_lifecycle_arrives_in_order_as_confirmed_persistent_json_messages(
    bound, customer, vendor, run_on_commit
):
    pickup_id = lifecycle(customer, vendor, run_on_commit)
    rows = list(DomainEvent.objects.order_by("id"))
    run = outbox.events_relay()
    assert (run.published, run.error, run.busy) == (6, None, False)

    messages = bound.receive(6)
    assert [key for key, _, _ in messages] == [f"pickup.{e}" for e in LIFECYCLE]
    for (key, properties, body), row in zip(messages, rows, strict=True):
        assert body == row.payload
        assert body["pickup_id"] == pickup_id
        assert key == row.routing_key == properties.type
        assert properties.content_type == "application/json"
        assert properties.content_encoding == "utf-8"
        assert properties.delivery_mode == 2  # persistent
        assert properties.message_id == str(row.event_id) == body["id"]
        assert properties.correlation_id == body["correlation_id"]
        assert properties.headers == {"schema": "procurement.pickup.event/1"}
        assert properties.timestamp == int(row.created_at.timestamp())
    published = DomainEvent.objects.order_by("id")
    assert all(e.published_at is not None and e.attempts == 1 for e in published)
    assert outbox.events_relay().published == 0  # nothing left


def test_the_periodic_task_relays_and_reports(bound, customer, vendor, run_on_commit):
    lifecycle(customer, vendor, run_on_commit)
    assert tasks.relay_events_task.delay().get() == {"published": 6, "busy": False, "error": None}
    assert len(bound.receive(6)) == 6


def test_after_commit_each_transition_is_relayed_at_once(
    bound, customer, vendor, run_on_commit, settings
):
    settings.EVENTS_RELAY_ON_COMMIT = True
    pickup = run_on_commit(create_pickup, customer)  # the eager assignment offers it
    assert [key for key, _, _ in bound.receive(2)] == ["pickup.create", "pickup.assign"]
    run_on_commit(services.pickup_accept, pickup_id=pickup.pk, by=member_of(vendor))
    assert [key for key, _, _ in bound.receive(1)] == ["pickup.accept"]
    assert not unpublished()


def test_many_events_go_batch_by_batch_in_order(bound, settings):
    settings.EVENTS_RELAY_BATCH_SIZE = 7
    rows = stored_events(30)
    assert outbox.events_relay().published == 30
    assert [body["id"] for _, _, body in bound.receive(30)] == [str(r.event_id) for r in rows]


def test_the_connection_is_kept_from_one_run_to_the_next_and_replaced_once_broken(
    bound, monkeypatch
):
    connects = []
    real_connect = ConfirmedPublisher.connect

    def counted(self):
        connects.append(1)
        real_connect(self)

    monkeypatch.setattr(ConfirmedPublisher, "connect", counted)
    for _ in range(3):
        stored_events(1)
        assert outbox.events_relay().published == 1
    assert len(connects) == 1
    # The connection dies while idle (the broker restarted, say): the next run notices before
    # it publishes, connects again, and no event is counted as failed.
    outbox._publisher()._connection._impl._transport._sock.shutdown(socket.SHUT_RDWR)
    [*_, last] = stored_events(1)
    assert outbox.events_relay().published == 1
    assert len(connects) == 2
    assert DomainEvent.objects.get(pk=last.pk).attempts == 1
    assert len(bound.receive(4)) == 4


# --- failures lose nothing ------------------------------------------------------------------


def test_a_broker_that_is_down_loses_nothing_and_the_next_relay_sends_all_in_order(
    bound, broker_down, customer, vendor, run_on_commit
):
    lifecycle(customer, vendor, run_on_commit)
    started = time.monotonic()
    run = outbox.events_relay()
    took = time.monotonic() - started
    assert run.published == 0 and "cannot connect to the broker" in run.error
    assert took < 2, "a refused connection fails at once"
    head, *rest = unpublished()
    assert len(rest) == 5
    assert head.attempts == 1 and "cannot connect" in head.last_error
    assert all(e.attempts == 0 and e.last_error == "" for e in rest)
    outbox.events_relay()  # the next periodic run, still down
    assert DomainEvent.objects.get(pk=head.pk).attempts == 2

    broker_down()  # the broker is back
    assert outbox.events_relay().published == 6
    assert [key for key, _, _ in bound.receive(6)] == [f"pickup.{e}" for e in LIFECYCLE]
    head = DomainEvent.objects.get(pk=head.pk)
    assert head.published_at is not None and head.attempts == 3 and head.last_error == ""
    assert not unpublished()


def test_a_publish_refused_midway_stops_there_and_the_rest_keeps_its_order(bound, monkeypatch):
    rows = stored_events(5)
    real_publish = ConfirmedPublisher.publish
    calls = []

    def refuse_the_third(self, routing_key, body, **properties):
        calls.append(properties["message_id"])
        if len(calls) == 3:
            raise PublishError("not confirmed: NackError: the broker refused it")
        real_publish(self, routing_key, body, **properties)

    monkeypatch.setattr(ConfirmedPublisher, "publish", refuse_the_third)
    run = outbox.events_relay()
    assert run.published == 2 and "NackError" in run.error
    assert calls == [str(r.event_id) for r in rows[:3]]  # nothing after the refused one
    left = unpublished()
    assert [e.pk for e in left] == [r.pk for r in rows[2:]]
    assert (left[0].attempts, left[1].attempts) == (1, 0)
    assert "NackError" in left[0].last_error

    monkeypatch.setattr(ConfirmedPublisher, "publish", real_publish)
    assert outbox.events_relay().published == 3
    assert [b["id"] for _, _, b in bound.receive(5)] == [str(r.event_id) for r in rows]


def test_an_exchange_of_another_type_is_a_recorded_failure(settings):
    """Someone declared the exchange otherwise: the relay cannot use it and says why."""
    require_service("RabbitMQ", 5672)
    settings.EVENTS_EXCHANGE = f"test-events-{uuid.uuid4().hex[:12]}"
    connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1"))
    try:
        connection.channel().exchange_declare(settings.EVENTS_EXCHANGE, exchange_type="direct")
        stored_events(1)
        run = outbox.events_relay()
        assert run.published == 0 and "PRECONDITION_FAILED" in run.error
        assert "PRECONDITION_FAILED" in unpublished()[0].last_error
    finally:
        connection.channel().exchange_delete(settings.EVENTS_EXCHANGE)
        connection.close()


def test_confirmed_events_are_never_published_again(bound, customer, vendor, run_on_commit):
    lifecycle(customer, vendor, run_on_commit)
    assert outbox.events_relay().published == 6
    for _ in range(3):
        assert outbox.events_relay().published == 0
    # A later event is the sentinel: the broker keeps one queue's order, so a duplicate of an
    # earlier event would arrive before it.
    sentinel = stored_events(1)[-1]
    assert outbox.events_relay().published == 1
    received = [body["id"] for _, _, body in bound.receive(7)]
    assert received[-1] == str(sentinel.event_id)
    assert len(set(received)) == 7


# --- one relay at a time --------------------------------------------------------------------


def test_a_second_relay_leaves_the_work_to_the_one_at_it(bound, monkeypatch):
    rows = stored_events(4)
    real_publish = ConfirmedPublisher.publish
    seconds = []

    def publish_and_start_another(self, routing_key, body, **properties):
        if not seconds:
            seconds.append(outbox.events_relay())  # e.g. the periodic run, meanwhile
        real_publish(self, routing_key, body, **properties)

    monkeypatch.setattr(ConfirmedPublisher, "publish", publish_and_start_another)
    first = outbox.events_relay()
    assert (first.published, first.busy) == (4, False)
    assert (seconds[0].published, seconds[0].busy) == (0, True)
    assert [b["id"] for _, _, b in bound.receive(4)] == [str(r.event_id) for r in rows]
    assert EventRelayLease.objects.get().holder == ""  # given back


def test_an_event_stored_while_the_lease_was_held_is_sent_by_its_holder(bound, monkeypatch):
    """The event's own relay found the lease taken and left; the holder, giving the lease back,
    looks again and sends it, so no event waits for the periodic run."""
    [first] = stored_events(1)
    real_release = outbox._lease_release
    late = []

    def store_then_release(holder):
        if not late:
            late.extend(stored_events(1)[-1:])
            assert outbox.events_relay().busy  # the late event's own relay
        real_release(holder)

    monkeypatch.setattr(outbox, "_lease_release", store_then_release)
    assert outbox.events_relay().published == 2
    assert [b["id"] for _, _, b in bound.receive(2)] == [str(first.event_id), str(late[0].event_id)]


def test_a_lease_whose_holder_died_lapses(bound):
    stored_events(2)
    now = timezone.now()
    EventRelayLease.objects.create(
        name=outbox.RELAY_LEASE, holder="dead", expires_at=now + timedelta(seconds=30)
    )
    assert outbox.events_relay().busy
    assert len(unpublished()) == 2
    EventRelayLease.objects.update(expires_at=now - timedelta(seconds=1))
    assert outbox.events_relay().published == 2
    assert len(bound.receive(2)) == 2


def test_a_broker_that_does_not_answer_holds_the_relay_no_longer_than_the_timeout(settings):
    with socket.socket() as silent:  # accepts connections, never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        settings.EVENTS_BROKER_URL = f"amqp://guest:guest@127.0.0.1:{silent.getsockname()[1]}//"
        settings.EVENTS_CONNECTION_TIMEOUT = 0.5
        stored_events(2)
        started = time.monotonic()
        run = outbox.events_relay()
        took = time.monotonic() - started
    assert run.published == 0 and "cannot connect to the broker" in run.error
    assert 0.4 < took < 1.5
    assert [e.attempts for e in unpublished()] == [1, 0]


def test_the_lease_is_given_back_when_the_relay_fails(broker_down):
    stored_events(1)
    assert outbox.events_relay().error
    lease = EventRelayLease.objects.get()
    assert lease.holder == "" and lease.expires_at <= timezone.now()


@pytest.mark.django_db(transaction=True)
def test_relays_started_at_once_publish_each_event_once_and_in_order(bound):
    if connection.vendor == "sqlite":
        # Threads share the in-memory test database through SQLite's shared cache, which
        # answers "database table is locked" at once instead of waiting; the end-to-end tests
        # run concurrent relays (two worker processes) on an SQLite file.
        pytest.skip("concurrent threads need the PostgreSQL test database")
    rows = stored_events(200)
    start = threading.Barrier(4)
    runs = []

    def relay():
        try:
            start.wait()
            runs.append(outbox.events_relay())
        finally:
            outbox.publisher_close()
            connections.close_all()

    threads = [threading.Thread(target=relay) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sum(run.published for run in runs) == 200
    assert all(run.error is None for run in runs)
    received = [body["id"] for _, _, body in bound.receive(200)]
    assert received == [str(r.event_id) for r in rows]
    assert not unpublished()


# --- cleanup --------------------------------------------------------------------------------


def test_published_events_are_deleted_after_the_retention_unpublished_ones_stay(settings):
    settings.EVENTS_RETENTION_DAYS = 7
    old, recent, waiting = stored_events(3)
    now = timezone.now()
    DomainEvent.objects.filter(pk=old.pk).update(published_at=now - timedelta(days=8))
    DomainEvent.objects.filter(pk=recent.pk).update(published_at=now - timedelta(days=6))
    DomainEvent.objects.filter(pk=waiting.pk).update(created_at=now - timedelta(days=30))
    assert tasks.purge_published_events_task.delay().get() == 1
    assert set(DomainEvent.objects.values_list("pk", flat=True)) == {recent.pk, waiting.pk}
