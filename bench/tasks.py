"""The naive notification path, for comparison: one task per notification, each pushing it with
a fresh event loop (``async_to_sync``), as the first versions of such platforms do."""

from asgiref.sync import async_to_sync
from celery import shared_task
from channels.layers import get_channel_layer

from notifications.models import Notification
from notifications.push import user_group
from notifications.selectors import notification_payload


@shared_task
def naive_push_task(user_id: int, seq: int) -> None:
    notification = Notification.objects.get(recipient_id=user_id, seq=seq)
    async_to_sync(get_channel_layer().group_send)(
        user_group(user_id),
        {"type": "notification.message", "notification": notification_payload(notification)},
    )
