"""``/ws/notifications/``: a user's live notifications, with replay of what a socket missed."""

from typing import Any
from urllib.parse import parse_qs

from django.conf import settings
from rest_framework import serializers

from notifications import selectors
from notifications.push import user_group
from notifications.services import notifications_mark_read
from procurement_system.database import database_sync_to_async
from procurement_system.errors import BadRequest
from procurement_system.serializers import MAX_ID, validated, whole_number
from procurement_system.websocket import JsonActionConsumer


class ReplaySerializer(serializers.Serializer):
    after = serializers.IntegerField(min_value=0, max_value=MAX_ID)


class MarkReadSerializer(serializers.Serializer):
    ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=MAX_ID),
        min_length=1,
        max_length=1000,
    )


class NotificationConsumer(JsonActionConsumer):
    """Joins ``Notifications_<user_id>`` and forwards each notification exactly once, in order.

    The socket remembers the last id it delivered. A live message at or below it is a duplicate
    and is dropped; one beyond the next id means the channel layer lost something in between
    (over capacity, expired, Redis restarted), so the gap is filled from the database first. A
    client that was away says where it stopped (``?after=<id>`` on connect, or ``replay``) and
    gets everything after that from the database, then live messages continue seamlessly.
    """

    actions = frozenset({"replay", "mark_read", "ping"})

    async def joined(self) -> None:
        self.group = user_group(self.user.pk)
        # Join before reading the database: whatever commits from now on reaches us live, and
        # whatever committed before is in the database; the id check removes the overlap.
        await self.channel_layer.group_add(self.group, self.channel_name)
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        after = query.get("after", [None])[0]
        latest = await database_sync_to_async(selectors.notification_last_seq)(user_id=self.user.pk)
        position = whole_number(after) if after is not None else None
        if position is None:
            # Without a valid position the socket starts at "now": live notifications only.
            self.last_id = latest
            if after is not None:
                await self.send_error(None, BadRequest("?after must be a non-negative integer."))
            return
        self.last_id = min(position, latest)
        await self._catch_up()
        await self.send_json({"type": "replay.done", "request_id": None, "last_id": self.last_id})

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.leave(self.group)
        await super().disconnect(code)

    async def notification_message(self, event: dict[str, Any]) -> None:
        """A live notification from the channel layer (``type: notification.message``)."""
        notification = event["notification"]
        if notification["id"] <= self.last_id:
            return
        if notification["id"] > self.last_id + 1:
            await self._catch_up()
            return
        await self._send_notification(notification)

    async def action_replay(self, content: dict[str, Any]) -> dict[str, Any]:
        after = validated(ReplaySerializer, content)["after"]
        # A position beyond the newest notification would make the socket drop the next ones.
        latest = await database_sync_to_async(selectors.notification_last_seq)(user_id=self.user.pk)
        self.last_id = min(after, latest)
        await self._catch_up()
        return {"type": "replay.done", "last_id": self.last_id}

    async def action_mark_read(self, content: dict[str, Any]) -> dict[str, Any]:
        ids = validated(MarkReadSerializer, content)["ids"]

        @database_sync_to_async
        def mark() -> tuple[list[int], int]:
            marked = notifications_mark_read(user_id=self.user.pk, ids=ids)
            return marked, selectors.notification_unread_count(user_id=self.user.pk)

        marked, unread = await mark()
        return {"type": "notifications.read", "ids": marked, "unread_count": unread}

    async def action_ping(self, content: dict[str, Any]) -> dict[str, Any]:
        return {"type": "pong"}

    async def _catch_up(self) -> None:
        """Send every stored notification after ``last_id``, in order, in bounded batches."""
        batch = settings.NOTIFICATION_REPLAY_BATCH
        while True:
            rows = await database_sync_to_async(selectors.notifications_after)(
                user_id=self.user.pk, after=self.last_id, limit=batch
            )
            for notification in rows:
                await self._send_notification(notification)
            if len(rows) < batch:
                break

    async def _send_notification(self, notification: dict[str, Any]) -> None:
        await self.send_json({"type": "notification", "notification": notification})
        self.last_id = notification["id"]
