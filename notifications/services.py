from collections.abc import Iterable
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from notifications.models import Notification, NotificationSequence
from procurement_system.errors import ValidationError


def notification_store(
    *, user_id: int, kind: str, message: str, data: dict[str, Any], event_key: str
) -> tuple[Notification, bool]:
    """Persist one notification with the user's next number; return it and whether it is new.

    Delivery may be retried, so the same ``event_key`` for the same user returns the stored row
    instead of numbering the event twice.
    """
    existing = Notification.objects.filter(recipient_id=user_id, event_key=event_key).first()
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            sequence, _ = NotificationSequence.objects.select_for_update().get_or_create(
                user_id=user_id
            )
            sequence.last_seq += 1
            sequence.save(update_fields=["last_seq"])
            notification = Notification.objects.create(
                recipient_id=user_id,
                seq=sequence.last_seq,
                kind=kind,
                message=message,
                data=data,
                event_key=event_key,
            )
    except IntegrityError:
        # A concurrent delivery of the same event won the race; theirs is the one.
        return Notification.objects.get(recipient_id=user_id, event_key=event_key), False
    return notification, True


def notifications_mark_read(*, user_id: int, ids: Iterable[int]) -> list[int]:
    """Mark the user's notifications with these numbers read; return the numbers now read."""
    ids = list(ids)
    if not all(isinstance(i, int) and not isinstance(i, bool) and i > 0 for i in ids):
        raise ValidationError(errors={"ids": ["Each id must be a positive integer."]})
    mine = Notification.objects.filter(recipient_id=user_id, seq__in=ids)
    mine.filter(read_at__isnull=True).update(read_at=timezone.now())
    return sorted(mine.values_list("seq", flat=True))


def notifications_mark_all_read(*, user_id: int) -> int:
    """Mark every unread notification of the user read; return how many that was."""
    unread = Notification.objects.filter(recipient_id=user_id, read_at__isnull=True)
    return unread.update(read_at=timezone.now())
