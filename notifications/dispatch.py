"""Fan-out: the caller decides who is told; each notification is stored with the change, and
one task per event pushes them all once the change has committed."""

from typing import Any

from notifications.kinds import KINDS
from notifications.services import notification_store
from notifications.tasks import push_notifications_task


def notify(
    *, messages: dict[int, str], kind: str, data: dict[str, Any], event_key: str
) -> list[int]:
    """Store a notification for each recipient (user id → text) in the caller's transaction, and
    enqueue one ``push_notifications_task`` for the new ones, to run after commit. Returns the recipients for whom
    it is new (an event stored before, under the same key, is neither stored nor sent again).

    Storing inside the transaction that made the change means the notification commits with it
    or not at all, and a user's notification numbers follow the order in which the changes
    committed: a ``pickup.created`` can never be numbered after the ``pickup.offered`` that
    followed it. Recipients are numbered in user-id order, so concurrent transactions take the
    per-user sequence locks in one order and cannot deadlock.
    """
    if kind not in KINDS:  # every kind a user can receive is listed (and documented) there
        raise ValueError(f"Unknown notification kind {kind!r}; add it to notifications.kinds.")
    new = []
    for user_id in sorted(messages):
        payload = {"kind": kind, "message": messages[user_id], "data": data, "event_key": event_key}
        _, created = notification_store(user_id=user_id, **payload)
        if created:
            new.append(user_id)
    if new:
        push_notifications_task.delay_on_commit(new, event_key)
    return new
