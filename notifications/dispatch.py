"""Fan-out: the caller decides who is told, then one task per recipient is enqueued on commit."""

from collections.abc import Iterable
from typing import Any

from notifications.kinds import KINDS
from notifications.tasks import send_notification_task


def notify_on_commit(
    *, user_ids: Iterable[int], kind: str, message: str, data: dict[str, Any], event_key: str
) -> None:
    """Enqueue one ``send_notification_task`` per distinct recipient once the transaction commits.

    If the transaction rolls back, nobody is told about a change that did not happen.
    """
    if kind not in KINDS:  # every kind a user can receive is listed (and documented) there
        raise ValueError(f"Unknown notification kind {kind!r}; add it to notifications.kinds.")
    payload = {"kind": kind, "message": message, "data": data, "event_key": event_key}
    for user_id in sorted(set(user_ids)):
        send_notification_task.delay_on_commit(user_id, payload)
