import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from notifications.models import Notification
from notifications.push import push_to_user, push_to_users
from notifications.selectors import notification_payload
from notifications.services import notification_store
from procurement_system.celery import RETRYING
from procurement_system.cleanup import delete_in_batches

logger = logging.getLogger(__name__)


# Both delivery tasks: a database that is briefly unavailable is retried with backoff. They run
# once or more per transition; what they did is in the log and in Flower, not in the result
# backend (a row written, and read first, per task, twice with the STARTED state).
DELIVERY = {**RETRYING, "ignore_result": True}


@shared_task(**DELIVERY)
def push_notifications_task(user_ids: list[int], event_key: str) -> list[int]:
    """Push one event's notifications, stored with the change that caused it, to the sockets of
    each recipient in ``user_ids``, through the groups ``Notifications_<user_id>``.

    ``notify`` enqueues one of these per event after its transaction commits: one task however
    many people are told, one query for their rows, and every push sent at once from the worker
    process's long-lived event loop. Runs on the ``notifications`` queue. Safe to run twice: a
    second push is dropped by the sockets as a duplicate. Returns the notifications' per-user
    ids, in ``user_ids`` order.
    """
    stored = {
        n.recipient_id: n
        for n in Notification.objects.filter(recipient_id__in=user_ids, event_key=event_key)
    }
    missing = [user_id for user_id in user_ids if user_id not in stored]
    if missing:  # only if rows were deleted meanwhile: nothing to push to them
        logger.warning("event %s has no stored notification for users %s", event_key, missing)
    notifications = [stored[user_id] for user_id in user_ids if user_id in stored]
    pushed = push_to_users([(n.recipient_id, notification_payload(n)) for n in notifications])
    for notification, ok in zip(notifications, pushed, strict=True):
        _log_delivery(notification, ok)
    return [n.seq for n in notifications]


@shared_task(**DELIVERY)
def send_notification_task(user_id: int, message: dict) -> int:
    """Persist a notification for ``user_id`` (unless it is stored already) and push it to the
    user's sockets through the group ``Notifications_<user_id>``.

    ``message`` is ``{"kind", "message", "data", "event_key"}``. Runs on the ``notifications``
    queue. For a notification that is not stored yet, from code outside a change's transaction;
    the platform's own changes store theirs with the change (``notify``) and enqueue
    ``push_notifications_task``. Safe to run twice for the same message: the row is found by its
    event key, and a second push is dropped by the sockets. Returns the notification's per-user
    id.
    """
    notification, _ = notification_store(
        user_id=user_id,
        kind=message["kind"],
        message=message["message"],
        data=message.get("data") or {},
        event_key=message["event_key"],
    )
    _log_delivery(notification, push_to_user(user_id, notification_payload(notification)))
    return notification.seq


def _log_delivery(notification: Notification, pushed: bool) -> None:
    logger.info(
        "notification %s (%s) for user %s %s",
        notification.seq,
        notification.kind,
        notification.recipient_id,
        "pushed" if pushed else "stored; the push failed, the user's sockets catch up later",
        extra={
            "notification_id": notification.seq,
            "notification_kind": notification.kind,
            "recipient_id": notification.recipient_id,
            "pushed": pushed,
        },
    )


@shared_task(soft_time_limit=120, time_limit=180)
def purge_read_notifications_task() -> int:
    """Periodic (by default hourly): delete notifications read more than
    ``NOTIFICATION_RETENTION_DAYS`` ago, in batches. Unread ones stay; numbering goes on from where
    it was, so replay cursors held by clients remain valid. Returns how many were deleted.
    """
    cutoff = timezone.now() - timedelta(days=settings.NOTIFICATION_RETENTION_DAYS)
    return delete_in_batches(Notification.objects.filter(read_at__lt=cutoff))
