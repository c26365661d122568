"""The notifications' admin: operators find what a user was told; nothing is changed there."""

from datetime import timedelta

import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from notifications.models import Notification
from notifications.services import notification_store, notifications_mark_read
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/notifications/notification/"


@pytest.fixture
def operator_client(db) -> Client:
    client = Client()
    client.force_login(UserFactory(username="operator", is_staff=True, is_superuser=True))
    return client


def store(user, kind: str, message: str) -> Notification:
    return notification_store(
        user_id=user.pk, kind=kind, message=message, data={}, event_key=message
    )[0]


@pytest.fixture
def told():
    """Alice read her offer; Bob has not read his expiry notice, sent two days ago."""
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    offer = store(alice, "pickup.offered", "New offer: pickup #7, 12.50 kg paper.")
    notifications_mark_read(user_id=alice.pk, ids=[offer.seq])
    with time_machine.travel(timezone.now() - timedelta(days=2)):
        expired = store(bob, "pickup.expired", "Pickup #8 expired: its window ended.")
    return {"read": offer, "unread": expired}


def listed(response) -> set[int]:
    assert response.status_code == 200, response.status_code  # a bad filter redirects (?e=1)
    return {notification.pk for notification in response.context["cl"].result_list}


@pytest.mark.parametrize(
    "query, expected",
    [
        ("read=yes", {"read"}),
        ("read=no", {"unread"}),
        ("kind=pickup.offered", {"read"}),
        ("kind=pickup.expired", {"unread"}),
        ("q=bob", {"unread"}),
        ("q=paper", {"read"}),
        ("q=alice+1", {"read"}),  # the user's own number for it (seq)
        ("q=bob+1", {"unread"}),
        ("", {"read", "unread"}),
    ],
)
def test_each_filter_and_search_finds_its_notifications_and_only_them(
    operator_client, told, query, expected
):
    assert listed(operator_client.get(f"{CHANGELIST}?{query}")) == {told[k].pk for k in expected}


def test_search_by_the_rows_id(operator_client, told):
    assert listed(operator_client.get(f"{CHANGELIST}?q={told['unread'].pk}")) >= {told["unread"].pk}
    assert told["read"].pk not in listed(
        operator_client.get(f"{CHANGELIST}?q=bob+{told['unread'].pk}")
    )


def test_the_date_hierarchy_narrows_to_the_day(operator_client, told):
    day = told["unread"].created_at
    query = f"created_at__year={day.year}&created_at__month={day.month}&created_at__day={day.day}"
    assert listed(operator_client.get(f"{CHANGELIST}?{query}")) == {told["unread"].pk}


def test_notifications_are_read_only_but_for_read_at(operator_client, told):
    url = f"{CHANGELIST}{told['unread'].pk}/change/"
    page = operator_client.get(url).content.decode()
    assert 'name="read_at_0"' in page and 'name="message"' not in page
    response = operator_client.post(
        url, {"read_at_0": "2026-01-02", "read_at_1": "03:04:05", "message": "changed"}
    )
    assert response.status_code == 302
    notification = Notification.objects.get(pk=told["unread"].pk)
    assert notification.message == "Pickup #8 expired: its window ended."
    assert notification.read_at.isoformat() == "2026-01-02T03:04:05+00:00"
    assert operator_client.get(f"{CHANGELIST}add/").status_code == 403
