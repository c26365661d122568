from unittest.mock import patch

import pytest

from notifications.models import Notification
from notifications.selectors import notification_last_seq, notifications_after
from notifications.services import notification_store, notifications_mark_read
from notifications.tasks import push_notifications_task, send_notification_task
from procurement_system.errors import ValidationError
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def store(user, key, kind="pickup.created"):
    return notification_store(user_id=user.pk, kind=kind, message=key, data={}, event_key=key)


def test_numbers_increase_per_user_without_gaps():
    alice, bob = UserFactory(), UserFactory()
    seqs = [store(alice, "a1")[0].seq, store(bob, "b1")[0].seq, store(alice, "a2")[0].seq]
    assert seqs == [1, 1, 2]
    assert notification_last_seq(user_id=alice.pk) == 2


def test_the_same_event_is_stored_once():
    user = UserFactory()
    first, new = store(user, "pickup:1:v2")
    again, new_again = store(user, "pickup:1:v2")
    assert (new, new_again) == (True, False)
    assert first.pk == again.pk
    assert Notification.objects.filter(recipient=user).count() == 1


def test_a_redelivered_task_does_not_store_twice():
    user = UserFactory()
    message = {
        "kind": "pickup.created",
        "message": "hi",
        "data": {"pickup_id": 1},
        "event_key": "pickup:1:v1",
    }
    assert send_notification_task(user.pk, message) == 1
    assert send_notification_task(user.pk, message) == 1
    assert Notification.objects.filter(recipient=user).count() == 1


def test_after_returns_the_rest_in_order():
    user = UserFactory()
    for i in range(5):
        store(user, f"e{i}")
    assert [n["id"] for n in notifications_after(user_id=user.pk, after=2, limit=10)] == [3, 4, 5]
    assert [n["id"] for n in notifications_after(user_id=user.pk, after=0, limit=2)] == [1, 2]


def test_mark_read_touches_only_the_users_own():
    alice, bob = UserFactory(), UserFactory()
    store(alice, "a1"), store(alice, "a2"), store(bob, "b1")
    assert notifications_mark_read(user_id=alice.pk, ids=[1, 2, 99]) == [1, 2]
    assert Notification.objects.get(recipient=bob).read_at is None
    assert Notification.objects.filter(recipient=alice, read_at__isnull=True).count() == 0


def test_mark_read_refuses_bad_ids():
    with pytest.raises(ValidationError):
        notifications_mark_read(user_id=UserFactory().pk, ids=["1"])


def test_an_unlisted_kind_cannot_be_sent():
    from notifications.dispatch import notify

    with pytest.raises(ValueError, match="pickup.teleported"):
        notify(messages={1: ""}, kind="pickup.teleported", data={}, event_key="k")


def test_notify_enqueues_one_push_for_the_event_after_commit(django_capture_on_commit_callbacks):
    from notifications.dispatch import notify

    alice, victor, vera = UserFactory(), UserFactory(), UserFactory()
    store(vera, "pickup:7:offered")  # told before: not new, not pushed again
    with patch("notifications.dispatch.push_notifications_task.apply_async") as publish:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            new = notify(
                messages={vera.pk: "v", victor.pk: "b", alice.pk: "a"},
                kind="pickup.offered",
                data={"pickup_id": 7},
                event_key="pickup:7:offered",
            )
        publish.assert_not_called()  # nothing before the commit
        for callback in callbacks:
            callback()
    assert new == sorted([alice.pk, victor.pk])
    publish.assert_called_once_with((new, "pickup:7:offered"), {})


def test_the_push_task_pushes_each_recipients_row_at_once_and_names_the_missing(caplog):
    alice, victor, gone = UserFactory(), UserFactory(), UserFactory()
    rows = {u.pk: store(u, "pickup:8:accepted", kind="pickup.accepted")[0] for u in (alice, victor)}
    with patch("notifications.tasks.push_to_users", return_value=[True, False]) as push:
        seqs = push_notifications_task([victor.pk, gone.pk, alice.pk], "pickup:8:accepted")
    assert seqs == [rows[victor.pk].seq, rows[alice.pk].seq]
    [(items,), _] = push.call_args
    assert [(user_id, n["id"], n["kind"]) for user_id, n in items] == [
        (victor.pk, rows[victor.pk].seq, "pickup.accepted"),
        (alice.pk, rows[alice.pk].seq, "pickup.accepted"),
    ]
    logged = {(r.recipient_id, r.pushed) for r in caplog.records if hasattr(r, "pushed")}
    assert logged == {(victor.pk, True), (alice.pk, False)}
    assert f"no stored notification for users [{gone.pk}]" in caplog.text
