from celery import shared_task
from django.db import OperationalError

from notifications.push import push_to_user
from notifications.selectors import notification_payload
from notifications.services import notification_store


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
