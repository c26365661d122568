import json
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.utils import timezone

from pickups.models import PickupRequest
from tests.consumers import ask, connect, token_for
from tests.factories import HOME, UserFactory, VendorFactory, create_pickup, member_of

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.asyncio,
    pytest.mark.usefixtures("worker_thread_connections"),
]


def create_frame(**data):
    now = timezone.now()
    fields = {
        "address": "Alexanderplatz 1, Berlin",
        "latitude": HOME[0],
        "longitude": HOME[1],
        "window_start": (now + timedelta(hours=1)).isoformat(),
        "window_end": (now + timedelta(hours=3)).isoformat(),
        "items": [{"material": "paper", "estimated_kg": 40}],
        **data,
    }
    return {"action": "create", "request_id": "r-1", "data": fields}


@pytest.fixture
def world(db):
    alice = UserFactory(username="alice")
    near = VendorFactory(name="Near")
    far = VendorFactory(name="Far", latitude=HOME[0] + 0.05)
    return {
        "alice": alice,
        "near": near,
        "far": far,
        "alice_key": token_for(alice),
        "near_key": token_for(member_of(near)),
        "far_key": token_for(member_of(far)),
    }


async def test_anonymous_socket_is_closed_with_4401():
    communicator = await connect("/ws/pickups/")
    assert await communicator.receive_output() == {"type": "websocket.close", "code": 4401}


async def test_wrong_token_is_closed_with_4401(world):
    communicator = await connect("/ws/pickups/", key="not-a-token")
    assert (await communicator.receive_output())["code"] == 4401


async def test_foreign_origin_is_refused(world):
    from channels.testing.websocket import WebsocketCommunicator

    from procurement_system.asgi import application

    communicator = WebsocketCommunicator(
        application,
        "/ws/pickups/",
        headers=[
            (b"origin", b"https://evil.example"),
            (b"authorization", f"Token {world['alice_key']}".encode()),
        ],
    )
    connected, _ = await communicator.connect()
    assert connected is False


async def test_own_origin_is_allowed(world):
    communicator = await connect(
        "/ws/pickups/", world["alice_key"], headers=[(b"origin", b"http://localhost:8000")]
    )
    assert (await ask(communicator, {"action": "ping", "request_id": "p"}))["type"] == "pong"


async def test_create_replies_with_the_pickup_and_the_vendor_gets_it(world):
    alice = await connect("/ws/pickups/", world["alice_key"])
    reply = await ask(alice, create_frame())
    assert reply["type"] == "pickup.created"
    assert reply["request_id"] == "r-1"
    assert reply["created"] is True
    pickup = reply["pickup"]
    # The reply is made after commit, when the assignment (eager in tests) has quoted a price.
    assert pickup["items"] == [
        {"material": "paper", "estimated_kg": "40.00", "actual_kg": None, "price_per_kg": "0.10"}
    ]

    vendor = await connect("/ws/pickups/", world["near_key"])
    seen = await ask(vendor, {"action": "get", "pickup_id": pickup["id"]})
    assert seen["type"] == "pickup.detail"
    assert seen["pickup"]["status"] == "offered"
    assert seen["pickup"]["customer"] is None  # contact details only after accepting
    assert "rejections" not in seen["pickup"]

    accepted = await ask(vendor, {"action": "accept", "pickup_id": pickup["id"]})
    assert accepted["type"] == "pickup.accepted"
    assert accepted["pickup"]["customer"]["name"] == "alice"


async def test_create_with_the_same_key_returns_the_same_pickup(world):
    alice = await connect("/ws/pickups/", world["alice_key"])
    first = await ask(alice, {**create_frame(), "idempotency_key": "abc"})
    second = await ask(alice, {**create_frame(), "idempotency_key": "abc"})
    assert second["created"] is False
    assert second["pickup"]["id"] == first["pickup"]["id"]
    assert await database_sync_to_async(PickupRequest.objects.count)() == 1


async def test_the_whole_job_over_the_socket(world):
    alice = await connect("/ws/pickups/", world["alice_key"])
    pickup_id = (await ask(alice, create_frame()))["pickup"]["id"]
    near = await connect("/ws/pickups/", world["near_key"])
    far = await connect("/ws/pickups/", world["far_key"])

    assert (await ask(near, {"action": "reject", "pickup_id": pickup_id, "reason": "full"}))[
        "type"
    ] == "pickup.rejected"
    assert (await ask(near, {"action": "get", "pickup_id": pickup_id}))["code"] == "not_found"
    assert (await ask(far, {"action": "accept", "pickup_id": pickup_id}))[
        "type"
    ] == "pickup.accepted"
    for status in ("en_route", "picked_up", "completed"):
        frame = {"action": "update", "pickup_id": pickup_id, "status": status}
        if status == "picked_up":
            frame["items"] = [{"material": "paper", "actual_kg": "38.5"}]
        reply = await ask(far, frame)
        assert reply["type"] == f"pickup.{status}", reply
    final = await ask(alice, {"action": "get", "pickup_id": pickup_id})
    assert final["pickup"]["status"] == "completed"
    assert final["pickup"]["items"][0]["actual_kg"] == "38.50"
    assert [r["vendor"]["name"] for r in final["pickup"]["rejections"]] == ["Near"]


async def test_customer_updates_and_cancels(world):
    alice = await connect("/ws/pickups/", world["alice_key"])
    pickup_id = (await ask(alice, create_frame()))["pickup"]["id"]
    updated = await ask(
        alice, {"action": "update", "pickup_id": pickup_id, "data": {"notes": "Back door"}}
    )
    assert updated["type"] == "pickup.updated"
    assert updated["pickup"]["notes"] == "Back door"
    cancelled = await ask(alice, {"action": "cancel", "pickup_id": pickup_id, "reason": "sold"})
    assert cancelled["pickup"]["status"] == "cancelled"
    again = await ask(alice, {"action": "cancel", "pickup_id": pickup_id})
    assert again["code"] == "invalid_transition"


async def test_list_shows_only_own_pickups(world):
    await database_sync_to_async(create_pickup)(world["alice"])
    await database_sync_to_async(create_pickup)(await database_sync_to_async(UserFactory)())
    alice = await connect("/ws/pickups/", world["alice_key"])
    listed = await ask(alice, {"action": "list", "request_id": "l"})
    assert listed["type"] == "pickup.list"
    assert len(listed["pickups"]) == 1
    stranger = await connect(
        "/ws/pickups/", await database_sync_to_async(lambda: token_for(UserFactory()))()
    )
    assert (await ask(stranger, {"action": "list"}))["pickups"] == []
    other_id = listed["pickups"][0]["id"]
    assert (await ask(stranger, {"action": "get", "pickup_id": other_id}))["code"] == "not_found"
    assert (await ask(stranger, {"action": "cancel", "pickup_id": other_id}))["code"] == "not_found"


@pytest.mark.parametrize(
    "frame, code",
    [
        ("not json", "bad_request"),
        ("[1, 2]", "bad_request"),
        ('{"action": "create", "data": {"latitude": NaN}}', "bad_request"),
        ({"action": "fly"}, "bad_request"),
        ({"action": 7}, "bad_request"),
        ({"request_id": 5, "action": "ping"}, "bad_request"),
        ({"action": "get"}, "validation_error"),
        ({"action": "get", "pickup_id": "abc"}, "validation_error"),
        ({"action": "get", "pickup_id": 10**30}, "validation_error"),
        ({"action": "get", "pickup_id": 999999}, "not_found"),
        ({"action": "create"}, "validation_error"),
        ({"action": "create", "data": []}, "validation_error"),
        (create_frame(latitude=91), "validation_error"),
        (create_frame(latitude="north"), "validation_error"),
        (create_frame(items=[]), "validation_error"),
        (create_frame(items=[{"material": "paper", "estimated_kg": -1}]), "validation_error"),
        (create_frame(items=[{"material": "paper", "estimated_kg": 1e300}]), "validation_error"),
        (create_frame(items=[{"material": "paper", "estimated_kg": 1}] * 21), "validation_error"),
        (create_frame(items=[{"material": "gold", "estimated_kg": 1}]), "validation_error"),
        (create_frame(window_end="yesterday"), "validation_error"),
        (create_frame(address="x" * 501), "validation_error"),
        (create_frame(adress="typo"), "validation_error"),
        (
            create_frame(items=[{"material": "paper", "estimated_kg": 1, "kg": 2}]),
            "validation_error",
        ),
        ({**create_frame(), "idempotency_key": {"a": 1}}, "validation_error"),
        ({"action": "update", "pickup_id": 1, "status": "flying"}, "validation_error"),
        ({"action": "list", "limit": 0}, "validation_error"),
        ({"action": "reject", "pickup_id": 1, "reason": 5}, "validation_error"),
        (
            {"action": "update", "pickup_id": 1, "status": "en_route", "items": "x"},
            "validation_error",
        ),
    ],
)
async def test_bad_frames_get_an_error_and_the_socket_stays_open(world, frame, code):
    alice = await connect("/ws/pickups/", world["alice_key"])
    reply = await ask(alice, frame)
    assert reply["type"] == "error"
    assert reply["code"] == code, reply
    assert reply["message"]
    assert await database_sync_to_async(PickupRequest.objects.count)() == 0
    assert (await ask(alice, {"action": "ping", "request_id": "still-there"})) == {
        "type": "pong",
        "request_id": "still-there",
    }


async def test_error_replies_echo_the_request_id(world):
    alice = await connect("/ws/pickups/", world["alice_key"])
    reply = await ask(alice, {"action": "get", "request_id": "q-9", "pickup_id": 424242})
    assert (reply["request_id"], reply["code"]) == ("q-9", "not_found")


async def test_validation_errors_name_the_fields(world):
    alice = await connect("/ws/pickups/", world["alice_key"])
    reply = await ask(alice, create_frame(latitude=123, items=[]))
    assert set(reply["errors"]) == {"latitude", "items"}


async def test_binary_frames_are_refused(world):
    alice = await connect("/ws/pickups/", world["alice_key"])
    await alice.send_to(bytes_data=b"\x00\x01")
    assert json.loads(await alice.receive_from())["code"] == "bad_request"


async def test_oversized_frame_closes_with_1009(world):
    alice = await connect("/ws/pickups/", world["alice_key"])
    await alice.send_to(text_data=json.dumps({"action": "ping", "pad": "x" * 70_000}))
    assert await alice.receive_output() == {"type": "websocket.close", "code": 1009}


async def test_vendor_cannot_create_changes_for_others(world):
    alice = await connect("/ws/pickups/", world["alice_key"])
    pickup_id = (await ask(alice, create_frame()))["pickup"]["id"]
    near = await connect("/ws/pickups/", world["near_key"])
    assert (await ask(near, {"action": "cancel", "pickup_id": pickup_id}))["code"] == "forbidden"
    assert (await ask(alice, {"action": "accept", "pickup_id": pickup_id}))["code"] == "forbidden"
    assert (await ask(near, {"action": "update", "pickup_id": pickup_id, "data": {"notes": "x"}}))[
        "code"
    ] == "forbidden"


async def test_an_operator_sees_every_pickup_but_may_not_change_it(world):
    alice = await connect("/ws/pickups/", world["alice_key"])
    pickup_id = (await ask(alice, create_frame()))["pickup"]["id"]
    operator_key = await database_sync_to_async(
        lambda: token_for(UserFactory(username="op", is_staff=True))
    )()
    operator = await connect("/ws/pickups/", operator_key)
    seen = await ask(operator, {"action": "get", "pickup_id": pickup_id})
    assert seen["pickup"]["customer"]["name"] == "alice"
    assert (await ask(operator, {"action": "cancel", "pickup_id": pickup_id}))[
        "code"
    ] == "forbidden"
    assert (await ask(operator, {"action": "reject", "pickup_id": pickup_id}))[
        "code"
    ] == "forbidden"
