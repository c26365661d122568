"""Insecure direct object references: every WebSocket action and REST endpoint that takes an id,
sent with another user's pickup, notification, task or vendor, answers ``not_found`` (never
``forbidden``, which would confirm the id exists) and neither shows nor changes anything.

The victim, alice, has pickups offered to, on the way with, and completed by vendor A. The
attacker, mallory, is a customer with pickups of her own and a member of vendor B, so she holds
ids of every kind herself and is a vendor member who could plausibly act on pickups. Each answer
must be the very answer for an id that does not exist at all (the id in the message aside).
"""

from decimal import Decimal

import pytest
from channels.db import database_sync_to_async
from django.core.cache import caches
from django.test import Client

from notifications.models import Notification
from pickups import services
from pickups.models import LocationPoint, PickupRequest, Receipt
from procurement_system.connection_limits import local_sockets
from tests.consumers import ask, connect, token_for
from tests.factories import HOME, UserFactory, VendorFactory, client_for, create_pickup, member_of
from vendors.models import Vendor

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("worker_thread_connections"),
]

NOT_FOUND = {"code": "not_found", "message": "No such object."}
MISSING = 987654321  # no such pickup or vendor


def as_if_missing(answer: dict, real_id: int) -> dict:
    """The answer with the id it names swapped for MISSING, to compare with a missing id's."""
    return {**answer, "message": answer["message"].replace(str(real_id), str(MISSING))}


@pytest.fixture(autouse=True)
def fresh_counts(settings):
    """Throttle counts and open sockets of other tests stay out of these."""
    settings.WEBSOCKET_RATE = 0  # a sweep sends far more frames than a person would
    caches["default"].clear()
    local_sockets.users.clear()
    yield
    caches["default"].clear()
    local_sockets.users.clear()


def advance(pickup_id: int, member, *steps: str) -> None:
    for step in steps:
        if step == "accepted":
            services.pickup_accept(pickup_id=pickup_id, by=member)
        else:
            weights = {"paper": Decimal("10")} if step == "picked_up" else None
            services.pickup_advance(
                pickup_id=pickup_id, by=member, status=step, actual_weights=weights
            )


@pytest.fixture
def world(customer, run_on_commit):
    alice = customer
    vendor_a = VendorFactory(name="A")
    vendor_b = VendorFactory(name="B", latitude=HOME[0] + 0.05)
    hidden = VendorFactory(name="Hidden", is_active=False)
    mallory = member_of(vendor_b)
    mallory.username = "mallory"
    mallory.save()
    member_a = member_of(vendor_a)

    offered = run_on_commit(create_pickup, alice)
    en_route = run_on_commit(create_pickup, alice)
    completed = run_on_commit(create_pickup, alice)
    run_on_commit(advance, en_route.pk, member_a, "accepted", "en_route")
    run_on_commit(advance, completed.pk, member_a, "accepted", "en_route", "picked_up", "completed")
    mine = run_on_commit(create_pickup, mallory)  # she has ids of her own too
    pickups = {p.pk: PickupRequest.objects.get(pk=p.pk) for p in (offered, en_route, completed)}
    assert [p.status for p in pickups.values()] == ["offered", "en_route", "completed"]
    assert Receipt.objects.filter(pickup_id=completed.pk).exists()
    assert all(p.assignment_task_id for p in pickups.values())
    alice_notes = Notification.objects.filter(recipient=alice).count()
    mallory_notes = Notification.objects.filter(recipient=mallory).count()
    assert alice_notes > mallory_notes > 0
    return {
        "alice": alice,
        "mallory": mallory,
        "vendor_a": vendor_a,
        "hidden": hidden,
        "pickups": pickups,
        "mine": mine,
        "offered": offered.pk,
        "en_route": en_route.pk,
        "completed": completed.pk,
        "alice_unread": alice_notes,
        "mallory_notifications": mallory_notes,
    }


def snapshot(world) -> list[tuple]:
    rows = PickupRequest.objects.filter(pk__in=world["pickups"]).order_by("pk")
    return [
        (p.pk, p.status, p.version, p.vendor_id, p.notes, p.address, p.vendor_position)
        for p in rows
    ]


def alice_untouched(world, before) -> None:
    assert snapshot(world) == before
    assert not LocationPoint.objects.filter(pickup_id__in=world["pickups"]).exists()
    unread = Notification.objects.filter(recipient=world["alice"], read_at__isnull=True)
    assert unread.count() == world["alice_unread"]


# --- WebSocket ----------------------------------------------------------------------------------


def actions_on(pickup_id: int) -> list[dict]:
    """Every pickups action that names a pickup, each with fields that would be valid on it."""
    return [
        {"action": "get", "pickup_id": pickup_id},
        {"action": "update", "pickup_id": pickup_id, "data": {"notes": "mallory was here"}},
        {"action": "update", "pickup_id": pickup_id, "status": "en_route"},
        {"action": "update", "pickup_id": pickup_id, "status": "completed"},
        {
            "action": "update",
            "pickup_id": pickup_id,
            "status": "picked_up",
            "items": [{"material": "paper", "actual_kg": "1"}],
        },
        {"action": "accept", "pickup_id": pickup_id},
        {"action": "reject", "pickup_id": pickup_id, "reason": "mine now"},
        {"action": "cancel", "pickup_id": pickup_id, "reason": "mine now"},
        {"action": "location", "pickup_id": pickup_id, "lat": 52.5, "lon": 13.4},
        {"action": "subscribe", "pickup_id": pickup_id},
    ]


async def test_every_pickup_action_on_anothers_pickup_is_not_found_over_the_socket(world):
    before = await database_sync_to_async(snapshot)(world)
    key = await database_sync_to_async(token_for)(world["mallory"])
    socket = await connect("/ws/pickups/", key)
    missing = [await ask(socket, {**frame, "request_id": "m"}) for frame in actions_on(MISSING)]
    for pickup_id in world["pickups"]:
        for frame, unknown in zip(actions_on(pickup_id), missing, strict=True):
            reply = await ask(socket, {**frame, "request_id": "m"})
            assert reply["code"] == "not_found", (frame, reply)
            assert as_if_missing(reply, pickup_id) == unknown, frame
        # unsubscribe answers the same for any id, followed or not: it tells nothing.
        reply = await ask(socket, {"action": "unsubscribe", "pickup_id": pickup_id})
        assert reply == {"type": "pickup.unsubscribed", "request_id": None, "pickup_id": pickup_id}
    listed = await ask(socket, {"action": "list"})
    assert {p["id"] for p in listed["pickups"]} == {world["mine"].pk}
    await socket.disconnect()
    await database_sync_to_async(alice_untouched)(world, before)


async def test_anothers_notifications_cannot_be_replayed_or_marked_over_the_socket(world):
    key = await database_sync_to_async(token_for)(world["mallory"])
    socket = await connect("/ws/notifications/", key)
    await socket.send_json_to({"action": "replay", "after": 0, "request_id": "r"})
    seen = []
    while (frame := await socket.receive_json_from())["type"] == "notification":
        seen.append(frame["notification"])
    assert frame["type"] == "replay.done"
    assert len(seen) == world["mallory_notifications"]
    assert {n["data"]["pickup_id"] for n in seen} == {world["mine"].pk}
    # Alice's ids are numbered per user: any id mallory names is one of her own, or nothing.
    every_id = list(range(1, world["alice_unread"] + 1))
    marked = await ask(socket, {"action": "mark_read", "ids": every_id})
    assert marked["ids"] == list(range(1, world["mallory_notifications"] + 1))
    await socket.disconnect()
    unread = Notification.objects.filter(recipient=world["alice"], read_at__isnull=True)
    assert await database_sync_to_async(unread.count)() == world["alice_unread"]


# --- REST ---------------------------------------------------------------------------------------


def rest_calls_on(pickup_id: int) -> list[tuple[str, str, dict | None]]:
    base = f"/api/pickups/{pickup_id}/"
    return [
        ("get", base, None),
        ("patch", base, {"notes": "mallory was here"}),
        ("post", f"{base}accept/", None),
        ("post", f"{base}reject/", {"reason": "mine now"}),
        ("post", f"{base}cancel/", {"reason": "mine now"}),
        ("post", f"{base}status/", {"status": "en_route"}),
        ("post", f"{base}status/", {"status": "completed"}),
        ("get", f"{base}receipt/", None),
    ]


def test_every_pickup_endpoint_with_anothers_pickup_is_not_found(world):
    before = snapshot(world)
    client = client_for(world["mallory"])
    missing = [
        getattr(client, method)(path, body, format="json").json()
        for method, path, body in rest_calls_on(MISSING)
    ]
    for pickup_id in world["pickups"]:
        for (method, path, body), unknown in zip(rest_calls_on(pickup_id), missing, strict=True):
            response = getattr(client, method)(path, body, format="json")
            assert response.status_code == 404, (method, path, response.content)
            assert response.json()["code"] == "not_found", (method, path)
            assert as_if_missing(response.json(), pickup_id) == unknown, (method, path)
    listed = client.get("/api/pickups/").json()
    assert [p["id"] for p in listed["results"]] == [world["mine"].pk]
    alice_untouched(world, before)


def test_anothers_assignment_task_is_not_found(world):
    client = client_for(world["mallory"])
    for pickup in world["pickups"].values():
        response = client.get(f"/api/tasks/{pickup.assignment_task_id}/")
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"
    own = client.get(
        f"/api/tasks/{PickupRequest.objects.get(pk=world['mine'].pk).assignment_task_id}/"
    )
    assert own.status_code == 200


def test_anothers_notifications_are_not_found_over_rest(world):
    client = client_for(world["mallory"])
    beyond_hers = world["mallory_notifications"] + 1  # alice has this id, mallory has not
    response = client.get(f"/api/notifications/{beyond_hers}/")
    assert (response.status_code, response.json()) == (404, NOT_FOUND)
    own = client.get("/api/notifications/1/").json()  # her own number 1, never alice's
    assert own["data"]["pickup_id"] == world["mine"].pk
    every_id = list(range(1, world["alice_unread"] + 1))
    marked = client.post("/api/notifications/mark-read/", {"ids": every_id}, format="json")
    assert marked.json()["ids"] == list(range(1, world["mallory_notifications"] + 1))
    listed = client.get("/api/notifications/").json()["results"]
    assert {n["data"]["pickup_id"] for n in listed} == {world["mine"].pk}
    unread = Notification.objects.filter(recipient=world["alice"], read_at__isnull=True)
    assert unread.count() == world["alice_unread"]


def test_another_vendors_settings_are_not_found(world):
    vendor_a = world["vendor_a"]
    client = client_for(world["mallory"])
    for method, body in (("get", None), ("patch", {"is_online": False})):
        call = getattr(client, method)
        answer = call(f"/api/vendors/me/?vendor={vendor_a.pk}", body, format="json")
        unknown = call(f"/api/vendors/me/?vendor={MISSING}", body, format="json")
        assert answer.status_code == unknown.status_code == 404
        assert as_if_missing(answer.json(), vendor_a.pk) == unknown.json()
    assert Vendor.objects.get(pk=vendor_a.pk).is_online
    # The directory shows any active vendor, but only what is public.
    public = client.get(f"/api/vendors/{vendor_a.pk}/").json()
    assert "members" not in public and "capacity" not in public
    hidden = client.get(f"/api/vendors/{world['hidden'].pk}/")
    assert (hidden.status_code, hidden.json()) == (404, NOT_FOUND)


def test_anothers_printable_receipt_is_not_found(world):
    browser = Client()
    browser.force_login(world["mallory"])
    assert browser.get(f"/pickups/{world['completed']}/receipt/").status_code == 404
    browser.force_login(world["alice"])
    assert browser.get(f"/pickups/{world['completed']}/receipt/").status_code == 200


def test_a_user_who_is_no_party_at_all_gets_the_same_answers(world):
    stranger = client_for(UserFactory(username="stranger"))
    missing = [
        getattr(stranger, method)(path, body, format="json").json()
        for method, path, body in rest_calls_on(MISSING)
    ]
    for pickup_id in world["pickups"]:
        for (method, path, body), unknown in zip(rest_calls_on(pickup_id), missing, strict=True):
            response = getattr(stranger, method)(path, body, format="json")
            assert response.status_code == 404, (method, path)
            assert as_if_missing(response.json(), pickup_id) == unknown, (method, path)
