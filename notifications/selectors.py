from notifications.models import Notification


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
