from base64 import b64encode
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from notifications.models import Notification
from notifications.selectors import notification_payload
from notifications.services import notification_store, notifications_mark_all_read
from tests.factories import UserFactory, client_for

pytestmark = pytest.mark.django_db

MAX_ID = 2**63 - 1


@pytest.fixture(autouse=True)
def fresh_throttle_counts():
    """Throttle counts live in the cache; user ids repeat between tests."""
    cache.clear()


def store(user, count: int) -> None:
    """Give the user ``count`` more notifications, numbered on from their last one."""
    start = Notification.objects.filter(recipient=user).count()
    for i in range(start + 1, start + count + 1):
        notification_store(
            user_id=user.pk,
            kind="pickup.created",
            message=f"{user.username} #{i}",
            data={"pickup_id": i},
            event_key=f"e{i}",
        )


def ids(response) -> list[int]:
    assert response.status_code == 200, response.json()
    return [n["id"] for n in response.json()["results"]]


def follow(client: APIClient, path: str, **params) -> list[list[int]]:
    """Every page from ``path`` on, following ``next`` links until there is none."""
    pages = []
    response = client.get(path, params)
    while True:
        pages.append(ids(response))
        link = response.json()["next"]
        if link is None:
            return pages
        response = client.get(link)


def read(user, seq: int) -> bool:
    return Notification.objects.get(recipient=user, seq=seq).read_at is not None


def assert_invalid(response, field: str) -> None:
    assert response.status_code == 400, response.json()
    assert response.json()["code"] == "validation_error"
    assert field in response.json()["errors"], response.json()


@pytest.fixture
def alice():
    return UserFactory(username="alice")


@pytest.fixture
def bob():
    return UserFactory(username="bob")


# --- list -----------------------------------------------------------------------------------


def test_list_is_newest_first_in_the_websocket_payload_shape(alice, bob):
    store(alice, 3), store(bob, 5)
    body = client_for(alice).get("/api/notifications/").json()
    assert body["previous"] is None and body["next"] is None
    expected = Notification.objects.filter(recipient=alice).order_by("-seq")
    assert body["results"] == [notification_payload(n) for n in expected]
    assert set(body["results"][0]) == {"id", "kind", "message", "data", "created_at", "read_at"}


def test_default_page_is_50_and_cursor_links_give_everything_once(alice):
    store(alice, 120)
    pages = follow(client_for(alice), "/api/notifications/")
    assert [len(page) for page in pages] == [50, 50, 20]
    assert sum(pages, []) == list(range(120, 0, -1))


@pytest.mark.parametrize("page_size", [1, 3, 7, 200])
def test_page_size_pages_without_gaps_or_duplicates(alice, page_size):
    store(alice, 10)
    pages = follow(client_for(alice), "/api/notifications/", page_size=page_size)
    assert all(len(page) <= page_size for page in pages)
    assert sum(pages, []) == list(range(10, 0, -1))


def test_previous_link_goes_back_a_page(alice):
    store(alice, 5)
    client = client_for(alice)
    first = client.get("/api/notifications/", {"page_size": 2})
    second = client.get(first.json()["next"])
    assert ids(second) == [3, 2]
    assert ids(client.get(second.json()["previous"])) == [5, 4]


def test_notifications_arriving_while_paging_are_neither_repeated_nor_skipped(alice):
    store(alice, 6)
    client = client_for(alice)
    first = client.get("/api/notifications/", {"page_size": 4})
    store(alice, 3)  # newer ones: they belong before the first page, not inside the next one
    assert ids(first) == [6, 5, 4, 3]
    assert ids(client.get(first.json()["next"])) == [2, 1]


def test_after_replays_oldest_first_and_its_links_keep_that_order(alice):
    store(alice, 12)
    client = client_for(alice)
    pages = follow(client, "/api/notifications/", after=4, page_size=3)
    assert pages == [[5, 6, 7], [8, 9, 10], [11, 12]]
    first = client.get("/api/notifications/", {"after": 4, "page_size": 3})
    query = parse_qs(urlsplit(first.json()["next"]).query)
    assert query["after"] == ["4"] and query["page_size"] == ["3"]


def test_after_zero_is_everything_and_beyond_the_last_is_nothing(alice):
    store(alice, 3)
    client = client_for(alice)
    assert ids(client.get("/api/notifications/", {"after": 0})) == [1, 2, 3]
    assert ids(client.get("/api/notifications/", {"after": 3})) == []
    assert ids(client.get("/api/notifications/", {"after": MAX_ID})) == []


def test_replay_continues_with_what_arrived_after_the_last_page(alice):
    store(alice, 3)
    client = client_for(alice)
    last = ids(client.get("/api/notifications/", {"after": 0}))[-1]
    store(alice, 2)
    assert ids(client.get("/api/notifications/", {"after": last})) == [4, 5]


def test_unread_filter_alone_and_with_after(alice):
    store(alice, 6)
    notifications_mark_all_read(user_id=alice.pk)
    store(alice, 3)
    client_for(alice).post("/api/notifications/mark-read/", {"ids": [8]}, format="json")
    client = client_for(alice)
    assert ids(client.get("/api/notifications/", {"unread": "true"})) == [9, 7]
    assert ids(client.get("/api/notifications/", {"unread": "false"})) == list(range(9, 0, -1))
    assert ids(client.get("/api/notifications/", {"unread": "true", "after": 7})) == [9]
    pages = follow(client, "/api/notifications/", unread="true", page_size=1)
    assert pages == [[9], [7]]


def test_only_the_users_own_are_listed(alice, bob):
    store(bob, 4)
    assert ids(client_for(alice).get("/api/notifications/")) == []
    assert ids(client_for(alice).get("/api/notifications/", {"after": 0})) == []


@pytest.mark.parametrize(
    "params, field",
    [
        ({"after": "-1"}, "after"),
        ({"after": "abc"}, "after"),
        ({"after": ""}, "after"),
        ({"after": " 5"}, "after"),
        ({"after": "5.0"}, "after"),
        ({"after": "+5"}, "after"),
        ({"after": "٣"}, "after"),
        ({"after": str(MAX_ID + 1)}, "after"),
        ({"unread": "maybe"}, "unread"),
        ({"page_size": "0"}, "page_size"),
        ({"page_size": "201"}, "page_size"),
        ({"page_size": "ten"}, "page_size"),
        ({"colour": "red"}, "colour"),
        ({"cursor": "not a cursor!"}, "cursor"),
        ({"cursor": b64encode(b"p=abc").decode()}, "cursor"),
        ({"cursor": b64encode(f"p={MAX_ID + 1}".encode()).decode()}, "cursor"),
    ],
)
def test_invalid_list_parameters_are_400(alice, params, field):
    store(alice, 2)
    assert_invalid(client_for(alice).get("/api/notifications/", params), field)


def test_a_repeated_parameter_is_400(alice):
    response = client_for(alice).get("/api/notifications/?after=1&after=2")
    assert_invalid(response, "after")


# --- one ------------------------------------------------------------------------------------


def test_retrieve_by_the_per_user_id(alice, bob):
    store(alice, 2), store(bob, 2)
    response = client_for(alice).get("/api/notifications/2/")
    assert response.status_code == 200
    assert response.json() == notification_payload(Notification.objects.get(recipient=alice, seq=2))
    assert response.json()["message"] == "alice #2"


@pytest.mark.parametrize("path", ["3/", "0/", "999999999999999999/", "9999999999999999999/"])
def test_another_users_or_a_missing_id_is_404(alice, bob, path):
    store(alice, 2), store(bob, 3)
    response = client_for(alice).get(f"/api/notifications/{path}")
    assert response.status_code == 404
    assert response.json() == {"code": "not_found", "message": "No such object."}


# --- unread count and mark read -------------------------------------------------------------


def test_unread_count(alice, bob):
    store(alice, 3), store(bob, 5)
    client = client_for(alice)
    assert client.get("/api/notifications/unread-count/").json() == {"unread_count": 3}
    client.post("/api/notifications/mark-read/", {"ids": [2]}, format="json")
    assert client.get("/api/notifications/unread-count/").json() == {"unread_count": 2}


def test_mark_some_read_answers_the_users_ids_and_leaves_others_alone(alice, bob):
    store(alice, 3), store(bob, 3)
    response = client_for(alice).post(
        "/api/notifications/mark-read/", {"ids": [3, 1, 99, 1]}, format="json"
    )
    assert response.status_code == 200
    assert response.json() == {"ids": [1, 3], "unread_count": 1}
    assert [read(alice, seq) for seq in (1, 2, 3)] == [True, False, True]
    assert not any(read(bob, seq) for seq in (1, 2, 3))
    listed = client_for(alice).get("/api/notifications/3/").json()
    assert listed["read_at"] is not None


def test_marking_again_keeps_the_first_read_time(alice):
    store(alice, 1)
    client = client_for(alice)
    client.post("/api/notifications/mark-read/", {"ids": [1]}, format="json")
    first = Notification.objects.get(recipient=alice).read_at
    again = client.post("/api/notifications/mark-read/", {"ids": [1]}, format="json")
    assert again.json() == {"ids": [1], "unread_count": 0}
    assert Notification.objects.get(recipient=alice).read_at == first


def test_mark_all_read_counts_and_leaves_others_alone(alice, bob):
    store(alice, 4), store(bob, 2)
    client = client_for(alice)
    client.post("/api/notifications/mark-read/", {"ids": [1]}, format="json")
    response = client.post("/api/notifications/mark-read/", {"all": True}, format="json")
    assert response.status_code == 200
    assert response.json() == {"marked_count": 3, "unread_count": 0}
    assert Notification.objects.filter(recipient=alice, read_at__isnull=True).count() == 0
    assert Notification.objects.filter(recipient=bob, read_at__isnull=True).count() == 2
    again = client.post("/api/notifications/mark-read/", {"all": True}, format="json")
    assert again.json() == {"marked_count": 0, "unread_count": 0}


@pytest.mark.parametrize(
    "data, field",
    [
        ({}, "non_field_errors"),
        ({"ids": [1], "all": True}, "non_field_errors"),
        ({"all": False}, "non_field_errors"),  # the same as sending nothing
        ({"all": "true"}, "all"),
        ({"all": 1}, "all"),
        ({"ids": []}, "ids"),
        ({"ids": [0]}, "ids"),
        ({"ids": [-1]}, "ids"),
        ({"ids": [True]}, "ids"),
        ({"ids": [1.5]}, "ids"),
        ({"ids": [MAX_ID + 1]}, "ids"),
        ({"ids": list(range(1, 1002))}, "ids"),
        ({"ids": 1}, "ids"),
        ({"ids": [1], "colour": "red"}, "colour"),
    ],
)
def test_invalid_mark_read_is_400_and_marks_nothing(alice, data, field):
    store(alice, 2)
    response = client_for(alice).post("/api/notifications/mark-read/", data, format="json")
    assert_invalid(response, field)
    assert Notification.objects.filter(read_at__isnull=False).count() == 0


def test_mark_read_takes_up_to_1000_ids(alice):
    store(alice, 2)
    data = {"ids": list(range(1, 1001))}
    response = client_for(alice).post("/api/notifications/mark-read/", data, format="json")
    assert response.json() == {"ids": [1, 2], "unread_count": 0}


def test_mark_read_body_must_be_a_json_object(alice):
    client = client_for(alice)
    listed = client.post("/api/notifications/mark-read/", [1, 2], format="json")
    assert_invalid(listed, "data")
    broken = client.post(
        "/api/notifications/mark-read/", "{not json", content_type="application/json"
    )
    assert broken.status_code == 400
    assert broken.json()["code"] == "bad_request"


# --- authentication -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method, path",
    [
        ("get", "/api/notifications/"),
        ("get", "/api/notifications/1/"),
        ("get", "/api/notifications/unread-count/"),
        ("post", "/api/notifications/mark-read/"),
    ],
)
def test_anonymous_is_401(alice, method, path):
    store(alice, 1)
    response = getattr(APIClient(), method)(path, {"all": True} if method == "post" else None)
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
    assert not read(alice, 1)
