"""Waking a user's open sockets through the channel layer.

The push is best effort by design: channels-redis drops messages for a channel over capacity or
older than its expiry, and Redis may be restarting. Nothing is lost by that, because the row was
committed first and every socket fills gaps from the database (see ``NotificationConsumer``).
"""

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)


def user_group(user_id: int) -> str:
    return f"Notifications_{user_id}"


def push_to_user(user_id: int, notification: dict) -> bool:
    """Send one notification payload to every socket of the user; False if it could not."""
    try:
        async_to_sync(get_channel_layer().group_send)(
            user_group(user_id), {"type": "notification.message", "notification": notification}
        )
    except Exception:  # a broken channel layer must not undo or retry a stored notification
        logger.warning(
            "push of notification %s to user %s failed", notification["id"], user_id, exc_info=True
        )
        return False
    return True
