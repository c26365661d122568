"""The relay of the domain events' outbox: publish what the transitions stored, in order.

Every transition stores its ``DomainEvent`` in its own transaction (``pickups.events``); after
commit the service queues ``relay_events_task``, and a periodic run of the same task picks up
whatever is left (events stored while RabbitMQ was down, or whose task was lost). The relay:

* publishes the unpublished events in ``id`` order, and stamps each ``published_at`` only once
  the broker confirmed it (publisher confirms): an event is never marked sent that the broker
  does not hold;
* stops at the first event that fails, recording the error on it (``attempts``,
  ``last_error``), so no event overtakes an earlier one; the next run starts from it again;
* runs alone: a relay first takes a lease in the database (one conditional UPDATE, the same on
  SQLite and PostgreSQL) and a second relay that finds it taken leaves the work to the first.
  The lease lapses on its own should its holder die.

Delivery is at least once: a relay that dies between the broker's confirm and its UPDATE
publishes those events again, under the same message id.
"""

import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from pickups.models import DomainEvent, EventRelayLease
from procurement_system.cleanup import delete_in_batches
from procurement_system.event_bus import ConfirmedPublisher, PublishError

logger = logging.getLogger(__name__)
_kept = threading.local()

RELAY_LEASE = "domain-events"
#: How long a lease lasts unless renewed: after each batch the relay renews it. Longer than the
#: relay task's hard time limit, so a live relay never loses it.
LEASE_SECONDS = 60
#: A run stops taking new batches after this many seconds; the next run goes on.
TIME_BUDGET_SECONDS = 20.0
#: In the shared cache while a relay is queued and has not started: the transitions committed
#: meanwhile leave their events to it instead of queuing one each. It lapses after
#: ``WAKE_UP_SECONDS`` should that relay be lost (the periodic run sends the events meanwhile).
WAKE_UP_KEY = "domain-events:relay-queued"
WAKE_UP_SECONDS = 30


@dataclass
class RelayRun:
    published: int = 0
    #: Why the run stopped before everything was published, if it did: the error of the event
    #: it could not publish.
    error: str | None = None
    #: Another relay held the lease, so this one left the work to it.
    busy: bool = False


def events_unpublished() -> QuerySet[DomainEvent]:
    return DomainEvent.objects.filter(published_at__isnull=True)


def wake_up_due() -> bool:
    """Whether a committed transition must queue a relay: none is queued that has not started
    (which would send this transition's events too). Notes that one is queued now."""
    try:
        return cache.add(WAKE_UP_KEY, 1, timeout=WAKE_UP_SECONDS)
    except Exception as error:
        # The shared cache (Redis) is away: one relay per transition, as without the note.
        logger.warning("Domain events: cannot note a queued relay (%s); queuing one anyway", error)
        return True


def wake_up_received() -> None:
    """A relay starts (or could not be queued): the next transition queues another."""
    try:
        cache.delete(WAKE_UP_KEY)
    except Exception as error:
        logger.warning("Domain events: cannot clear the queued relay's note (%s)", error)


def events_relay(*, time_budget: float = TIME_BUDGET_SECONDS) -> RelayRun:
    """Publish every unpublished domain event in order, unless another relay is at it."""
    # Before reading: an event committed from now on queues a relay of its own.
    wake_up_received()
    run = RelayRun()
    deadline = time.monotonic() + time_budget
    holder = uuid.uuid4().hex
    # Checked again after the lease is given back: an event committed meanwhile, whose own
    # relay found the lease taken, is this relay's to send.
    while time.monotonic() < deadline and events_unpublished().exists():
        if not _lease_take(holder):
            run.busy = True
            break
        released = False
        try:
            finished, released = _relay_batches(run, holder=holder, deadline=deadline)
        finally:
            if not released:
                _lease_release(holder)
        if finished:
            break
    return run


def _relay_batches(run: RelayRun, *, holder: str, deadline: float) -> tuple[bool, bool]:
    """Publish batch after batch while holding the lease. Returns whether the run should end
    here (an event failed, the time is up, the lease was lost; else nothing is left) and whether
    the lease was given back already (with the last batch's marks, in one write)."""
    publisher = _publisher()
    try:
        while True:
            batch = list(events_unpublished().order_by("id")[: settings.EVENTS_RELAY_BATCH_SIZE])
            if not batch:
                return False, False
            confirmed, error = _publish_batch(publisher, batch)
            last = error is not None or len(batch) < settings.EVENTS_RELAY_BATCH_SIZE
            with transaction.atomic():
                _mark_published(confirmed)
                if error is not None:
                    _mark_failed(batch[len(confirmed)], error)
                if last:
                    _lease_release(holder)
            run.published += len(confirmed)
            if error is not None:
                publisher.close()  # the next run starts on a new connection
                failed = batch[len(confirmed)]
                run.error = str(error)
                logger.warning(
                    "Domain event %s (%s of pickup %s) not published: %s",
                    failed.event_id,
                    failed.routing_key,
                    failed.pickup_id,
                    error,
                )
                return True, True
            if last:
                return False, True  # that was all; ``events_relay`` looks again
            if time.monotonic() > deadline or not _lease_renew(holder):
                return True, False
    except BaseException:
        publisher.close()
        raise


def _publisher() -> ConfirmedPublisher:
    """This process's publisher (one per thread), whose connection is kept from one run to the
    next: connecting costs more than publishing a few events, and every transition has a run."""
    key = (
        settings.EVENTS_BROKER_URL,
        settings.EVENTS_EXCHANGE,
        settings.EVENTS_CONNECTION_TIMEOUT,
    )
    kept = getattr(_kept, "publisher", None)
    if kept is not None and kept[0] == key:
        return kept[1]
    publisher_close()
    publisher = ConfirmedPublisher(key[0], key[1], timeout=key[2])
    _kept.publisher = (key, publisher)
    return publisher


def publisher_close() -> None:
    """Close this thread's kept connection, if any."""
    kept = getattr(_kept, "publisher", None)
    _kept.publisher = None
    if kept is not None:
        kept[1].close()


def _publish_batch(
    publisher: ConfirmedPublisher, batch: list[DomainEvent]
) -> tuple[list[int], PublishError | None]:
    """Publish the events in order, connecting first if need be, until one fails; the ids the
    broker confirmed, and the error that stopped it if any."""
    confirmed: list[int] = []
    try:
        if not publisher.connected:
            publisher.connect()
        for event in batch:
            _publish(publisher, event)
            confirmed.append(event.pk)
    except PublishError as error:
        return confirmed, error
    except BaseException:
        # Cut short (a time limit): what the broker confirmed is marked, and not sent again.
        _mark_published(confirmed)
        raise
    return confirmed, None


def _publish(publisher: ConfirmedPublisher, event: DomainEvent) -> None:
    payload = event.payload
    publisher.publish(
        event.routing_key,
        json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode(),
        message_id=str(event.event_id),
        correlation_id=payload.get("correlation_id"),
        timestamp=int(event.created_at.timestamp()),
        message_type=event.routing_key,
        headers={"schema": payload.get("schema")},
    )


def _mark_published(ids: list[int]) -> None:
    if ids:
        DomainEvent.objects.filter(pk__in=ids).update(
            published_at=timezone.now(), attempts=F("attempts") + 1, last_error=""
        )


def _mark_failed(event: DomainEvent, error: PublishError) -> None:
    DomainEvent.objects.filter(pk=event.pk).update(
        attempts=F("attempts") + 1, last_error=str(error)[:2000]
    )


# --- the lease ------------------------------------------------------------------------------


def _lease_take(holder: str) -> bool:
    """Take the relay's lease if it is free or has lapsed (or renew it if ``holder`` has it)."""
    now = timezone.now()
    lease, _ = EventRelayLease.objects.get_or_create(name=RELAY_LEASE, defaults={"expires_at": now})
    if lease.holder not in ("", holder) and lease.expires_at > now:
        # Visibly taken: leave without a write (on SQLite every write waits for the one lock).
        return False
    return _lease_update(holder, Q(expires_at__lte=now) | Q(holder=holder), now=now)


def _lease_renew(holder: str) -> bool:
    return _lease_update(holder, Q(holder=holder), now=timezone.now())


def _lease_update(holder: str, condition: Q, *, now: datetime) -> bool:
    # One conditional UPDATE: of two relays that try at once, the database lets one match.
    updated = EventRelayLease.objects.filter(condition, name=RELAY_LEASE).update(
        holder=holder, expires_at=now + timedelta(seconds=LEASE_SECONDS)
    )
    return updated == 1


def _lease_release(holder: str) -> None:
    EventRelayLease.objects.filter(name=RELAY_LEASE, holder=holder).update(
        holder="", expires_at=timezone.now()
    )


# --- cleanup --------------------------------------------------------------------------------


def events_purge() -> int:
    """Delete the events published more than ``EVENTS_RETENTION_DAYS`` ago, in batches;
    unpublished ones stay whatever their age. Returns how many were deleted."""
    cutoff = timezone.now() - timedelta(days=settings.EVENTS_RETENTION_DAYS)
    return delete_in_batches(DomainEvent.objects.filter(published_at__lt=cutoff))
