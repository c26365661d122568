"""The naive socket, for comparison: what a first version of such a platform serves.

Each live message carries only a notification's primary key, and the consumer loads the row with
its own ORM ``.get()`` (a thread hop and a query per notification) before sending it. No replay,
no gap filling: it exists only in the benchmark's stack, at ``/ws/naive/notifications/``.
"""

from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from notifications.models import Notification
from notifications.selectors import notification_payload


def naive_group(user_id: int) -> str:
    return f"Naive_{user_id}"


class NaiveNotificationConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        user = self.scope.get("user")
        await self.accept()
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        self.group = naive_group(user.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def notification_id(self, event: dict[str, Any]) -> None:
        """``{"type": "notification.id", "id": <primary key>}`` from ``naive_push_task``."""
        notification = await database_sync_to_async(Notification.objects.get)(pk=event["id"])
        await self.send_json(
            {"type": "notification", "notification": notification_payload(notification)}
        )
