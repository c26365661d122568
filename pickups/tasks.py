"""The pickups' Celery tasks: thin wrappers that take ids, call one service, and own retries.

Every task is idempotent, because acks are late and a message may be delivered twice. The
periodic sweeps are scheduled by django-celery-beat (see ``setup_periodic_tasks``); each handles
at most ``LIFECYCLE_BATCH_SIZE`` pickups a run, one transaction per pickup.
"""

from datetime import date, timedelta

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from pickups import digest, outbox, receipts, selectors, services
from pickups.models import LocationPoint
from procurement_system.celery import RETRYING
from procurement_system.cleanup import delete_in_batches
from vendors.models import Vendor

SWEEP = {"soft_time_limit": 120, "time_limit": 180}


@shared_task(**RETRYING)
def assign_vendor_task(pickup_id: int) -> str | None:
    """Offer pending pickup ``pickup_id`` to the nearest eligible vendor, or mark it unassigned.

    Runs on the ``assignments`` queue, which has workers of its own, so an assignment never
    waits behind notification or maintenance traffic. Idempotent: a redelivered message finds
    the pickup no longer pending and changes nothing. Retries with backoff when the database is
    briefly unavailable. Returns the pickup's status afterwards.
    """
    pickup = services.pickup_assign_vendor(pickup_id=pickup_id)
    return pickup.status if pickup is not None else None


@shared_task(**SWEEP)
def expire_offers_task() -> int:
    """Periodic (by default every 5 s): withdraw offers not accepted within
    ``OFFER_TIMEOUT_SECONDS``.

    Each is recorded as a ``timeout`` rejection, its vendor's members and the customer are told
    (``offer.expired``) and the pickup is re-assigned to the next eligible vendor. An offer answered
    meanwhile is left alone. Returns how many offers were withdrawn.
    """
    withdrawn = 0
    due = selectors.offers_due(now=timezone.now(), limit=settings.LIFECYCLE_BATCH_SIZE)
    for pickup_id, version in due:
        withdrawn += services.pickup_expire_offer(pickup_id=pickup_id, version=version)
    return withdrawn


@shared_task(**SWEEP)
def retry_unassigned_task() -> int:
    """Periodic (by default every 10 s): retry the unassigned pickups whose backoff has run out.

    A pickup is offered if a vendor is eligible now; otherwise its next retry is scheduled twice as
    far out (``UNASSIGNED_RETRY_BASE_SECONDS`` up to ``UNASSIGNED_RETRY_MAX_SECONDS``). Returns how
    many were offered.
    """
    offered = 0
    for pickup_id in selectors.retries_due(now=timezone.now(), limit=settings.LIFECYCLE_BATCH_SIZE):
        pickup = services.pickup_retry_assignment(pickup_id=pickup_id)
        offered += pickup is not None and pickup.status == "offered"
    return offered


@shared_task(**RETRYING)
def retry_unassigned_for_vendor_task(vendor_id: int) -> int:
    """Offer unassigned pickups at once when vendor ``vendor_id`` can take more: it came online,
    raised its capacity or service area, or a job of its ended. Each pickup still goes to the
    nearest eligible vendor. Returns how many were offered."""
    vendor = Vendor.objects.filter(pk=vendor_id, is_active=True, is_online=True).first()
    if vendor is None or vendor.open_jobs >= vendor.capacity:
        return 0
    offered = 0
    free = vendor.capacity - vendor.open_jobs
    for pickup_id in selectors.unassigned_for_vendor(vendor=vendor, limit=free):
        pickup = services.pickup_retry_assignment(pickup_id=pickup_id, due_only=False)
        offered += pickup is not None and pickup.status == "offered"
    return offered


@shared_task(**SWEEP)
def expire_pickups_task() -> int:
    """Periodic (by default every minute): expire pickups whose window ended before a vendor set off
    (pending, offered, unassigned or accepted); the customer, and the vendor that held one, are told
    (``pickup.expired``). Returns how many expired.
    """
    expired = 0
    for pickup_id in selectors.windows_ended(
        now=timezone.now(), limit=settings.LIFECYCLE_BATCH_SIZE
    ):
        pickup = services.pickup_expire(pickup_id=pickup_id)
        expired += pickup is not None and pickup.status == "expired"
    return expired


@shared_task(**SWEEP)
def requeue_stalled_task() -> dict:
    """Periodic (by default every 15 s): publish again the work whose message never ran.

    The database is the outbox: a pickup still ``pending`` ``STALLED_AFTER_SECONDS`` after it
    became so has its assignment published again (under the same task id), and a pickup
    completed that long ago without a receipt has ``issue_receipt_task`` published again. Both
    tasks are idempotent, so a message that was only slow, not lost, does no harm. Returns how
    many of each were requeued.
    """
    before = timezone.now() - timedelta(seconds=settings.STALLED_AFTER_SECONDS)
    limit = settings.LIFECYCLE_BATCH_SIZE
    pending = selectors.stalled_pending(before=before, limit=limit)
    for pickup_id, task_id in pending:
        assign_vendor_task.apply_async((pickup_id,), task_id=task_id or None)
    receipts_due = selectors.completed_without_receipt(before=before, limit=limit)
    for pickup_id in receipts_due:
        issue_receipt_task.delay(pickup_id)
    return {"assignments": len(pending), "receipts": len(receipts_due)}


@shared_task(**RETRYING)
def issue_receipt_task(pickup_id: int) -> str | None:
    """Issue the receipt of completed pickup ``pickup_id`` and notify both parties
    (``receipt.issued``). Queued when the pickup completes; idempotent. Returns its number."""
    receipt, _ = receipts.receipt_issue(pickup_id=pickup_id)
    return receipt.number if receipt is not None else None


@shared_task(**SWEEP)
def send_vendor_digests_task(day: str | None = None) -> dict:
    """Periodic (by default daily, 06:00 UTC): each vendor member's digest of the previous day
    (``day``, ``YYYY-MM-DD``, to send another), as a ``vendor.digest`` notification and by email
    when email is configured. Idempotent per vendor and day.
    """
    run = digest.vendor_digests_send(day=date.fromisoformat(day) if day else None)
    return {"day": run.day.isoformat(), "notified": run.notified, "emailed": run.emailed}


@shared_task(**SWEEP)
def purge_location_points_task() -> int:
    """Periodic (by default hourly): delete position reports older than
    ``LOCATION_RETENTION_HOURS``, in batches of ``CLEANUP_BATCH_SIZE``. The last position stays on
    each pickup. Returns how many were deleted.
    """
    cutoff = timezone.now() - timedelta(hours=settings.LOCATION_RETENTION_HOURS)
    return delete_in_batches(LocationPoint.objects.filter(recorded_at__lt=cutoff))


# One or more per transition: its outcome is in the log and in Flower, not in the result backend
# (a row written, and read first, per run).
@shared_task(soft_time_limit=30, time_limit=45, ignore_result=True)
def relay_events_task() -> dict:
    """Publish the stored domain events to ``EVENTS_EXCHANGE``, in order, each marked published
    once RabbitMQ confirmed it.

    Queued after a transition commits (unless a relay is queued already that has not started),
    and periodic (by default every 5 s) for the events whose publish failed or whose task was
    lost. Runs on ``notifications``. One relay at a time:
    a run that finds another at work leaves it the events. A run stops at the first event the
    broker does not take (recording the error on it) and after about 20 s; the next goes on.
    Returns how many it published, whether it found another relay at work (``busy``) and the
    error that stopped it, if any.
    """
    run = outbox.events_relay()
    return {"published": run.published, "busy": run.busy, "error": run.error}


@shared_task(**SWEEP)
def purge_published_events_task() -> int:
    """Periodic (by default hourly): delete domain events published more than
    ``EVENTS_RETENTION_DAYS`` ago, in batches; unpublished ones stay. Returns how many were
    deleted.
    """
    return outbox.events_purge()
