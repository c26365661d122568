from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.db import OperationalError
from django.utils import timezone

from notifications.models import Notification
from notifications.push import push_to_user
from notifications.selectors import notification_payload
from notifications.services import notification_store
from procurement_system.cleanup import delete_in_batches


@shared_task(
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    retry_backoff_max=30,
    max_retries=8,
    soft_time_limit=30,
    time_limit=60,
)
def send_notification_task(user_id: int, message: dict) -> int:
    """Persist a notification for ``user_id`` (unless it is stored already) and push it to the
    user's sockets through the group ``Notifications_<user_id>``.

    ``message`` is ``{"kind", "message", "data", "event_key"}``. Runs on the ``notifications``
    queue. The platform's own changes store the row in their transaction (``notify``), so that it
    commits with the change and numbers follow the order of events; the task then finds the row
    by its event key and only pushes it. Safe to run twice for the same message: a second push
    is dropped by the sockets as a duplicate. Returns the notification's per-user id.
    """
    notification, _ = notification_store(
        user_id=user_id,
        kind=message["kind"],
        message=message["message"],
        data=message.get("data") or {},
        event_key=message["event_key"],
    )
    push_to_user(user_id, notification_payload(notification))
    return notification.seq


@shared_task(soft_time_limit=120, time_limit=180)
def purge_read_notifications_task() -> int:
    """Periodic (by default hourly): delete notifications read more than
    ``NOTIFICATION_RETENTION_DAYS`` ago, in batches. Unread ones stay; numbering goes on from where
    it was, so replay cursors held by clients remain valid. Returns how many were deleted.
    """
    cutoff = timezone.now() - timedelta(days=settings.NOTIFICATION_RETENTION_DAYS)
    return delete_in_batches(Notification.objects.filter(read_at__lt=cutoff))
