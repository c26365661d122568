"""The naive notification path, for comparison: one task per notification, each pushing its id
with a fresh event loop (``async_to_sync``) for the naive socket (``bench.consumers``) to load,
as the first versions of such platforms do."""

from asgiref.sync import async_to_sync
from celery import shared_task
from channels.layers import get_channel_layer

from bench.consumers import naive_group


@shared_task
def naive_push_task(user_id: int, notification_id: int) -> None:
    async_to_sync(get_channel_layer().group_send)(
        naive_group(user_id), {"type": "notification.id", "id": notification_id}
    )
