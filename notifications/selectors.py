from django.db.models import QuerySet

from notifications.models import Notification
from procurement_system.errors import NotFound


def notification_payload(notification: Notification) -> dict:
    """What a client sees of a notification (its ``id`` is the per-user number)."""
    return {
        "id": notification.seq,
        "kind": notification.kind,
        "message": notification.message,
        "data": notification.data,
        "created_at": notification.created_at.isoformat(),
        "read_at": notification.read_at.isoformat() if notification.read_at else None,
    }


def notifications_after(*, user_id: int, after: int, limit: int) -> list[dict]:
    """The user's notifications numbered above ``after``, oldest first, at most ``limit``."""
    rows = Notification.objects.filter(recipient_id=user_id, seq__gt=after).order_by("seq")
    return [notification_payload(n) for n in rows[:limit]]


def notification_last_seq(*, user_id: int) -> int:
    last = (
        Notification.objects.filter(recipient_id=user_id)
        .order_by("-seq")
        .values_list("seq", flat=True)
        .first()
    )
    return last or 0


def notification_unread_count(*, user_id: int) -> int:
    return Notification.objects.filter(recipient_id=user_id, read_at__isnull=True).count()


def notification_list(
    *, user_id: int, after: int | None = None, unread_only: bool = False
) -> QuerySet[Notification]:
    """The user's notifications, newest first; given ``after``, only those numbered above it,
    oldest first (the WebSocket's replay order). Only ever ordered by ``seq``."""
    rows = Notification.objects.filter(recipient_id=user_id)
    if unread_only:
        rows = rows.filter(read_at__isnull=True)
    if after is not None:
        return rows.filter(seq__gt=after).order_by("seq")
    return rows.order_by("-seq")


def notification_get(*, user_id: int, notification_id: int) -> Notification:
    """The user's notification with this per-user number. Numbers are per user, so the same
    number of another user's is simply not found."""
    notification = Notification.objects.filter(recipient_id=user_id, seq=notification_id).first()
    if notification is None:
        raise NotFound()
    return notification
