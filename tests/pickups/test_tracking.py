"""Live tracking: vendor positions while en route, who may follow them, and vendors nearby.

The service is tested directly; the socket tests drive ``/ws/pickups/`` through the real ASGI
application, prove each event with a receive and each absence with ``receive_nothing``, and move
the clock with time-machine instead of waiting for the rate limit to run out.
"""

import json
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.core.cache import cache
from django.utils import timezone

from pickups import services, tracking
from pickups.models import LocationPoint, PickupRequest
from procurement_system.errors import Forbidden, InvalidTransition, NotFound, RateLimited
from tests.consumers import ask, connect, token_for
from tests.factories import HOME, UserFactory, VendorFactory, create_pickup, member_of

pytestmark = [
    # Consumers run the ORM in worker threads: the data must really be committed. Work queued
    # on commit (the eager assignment task) runs as each service's transaction commits.
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("worker_thread_connections"),
]

WS = "/ws/pickups/"
# Long enough that no test can outlast it by accident; time-machine moves past it when needed.
INTERVAL = 60


@pytest.fixture(autouse=True)
def fresh_cache():
    """The rate limit lives in the (process-wide) cache, keyed by pickup id; ids are reused."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def long_interval(settings):
    settings.LOCATION_MIN_INTERVAL_SECONDS = INTERVAL


@pytest.fixture
def world(db):
    alice = UserFactory(username="alice")
    near = VendorFactory(name="Near")
    far = VendorFactory(name="Far", latitude=HOME[0] + 0.05)
    stranger = UserFactory(username="stranger")
    return {
        "alice": alice,
        "near": near,
        "far": far,
        "stranger": stranger,
        "near_member": member_of(near),
        "far_member": member_of(far),
        "alice_key": token_for(alice),
        "near_key": token_for(member_of(near)),
        "far_key": token_for(member_of(far)),
        "stranger_key": token_for(stranger),
    }


# --- helpers ----------------------------------------------------------------------------------


def refreshed(pickup_id: int) -> PickupRequest:
    return PickupRequest.objects.get(pk=pickup_id)


def new_pickup(customer, **overrides) -> PickupRequest:
    """A pickup created as a client would; the assignment runs on commit and offers it."""
    return refreshed(create_pickup(customer, **overrides).pk)


def advance(pickup_id: int, member, *steps: str) -> PickupRequest:
    """Walk the vendor's side: accepted, en_route, picked_up (weighing every item), completed."""
    for step in steps:
        if step == "accepted":
            services.pickup_accept(pickup_id=pickup_id, by=member)
        elif step == "picked_up":
            codes = refreshed(pickup_id).items.values_list("material_id", flat=True)
            services.pickup_advance(
                pickup_id=pickup_id,
                by=member,
                status=step,
                actual_weights={code: Decimal("10") for code in codes},
            )
        else:
            services.pickup_advance(pickup_id=pickup_id, by=member, status=step)
    return refreshed(pickup_id)


def en_route(customer, vendor, **overrides) -> PickupRequest:
    """A new pickup of ``customer``'s that ``vendor`` (the nearest eligible) is on its way to."""
    pickup = new_pickup(customer, **overrides)
    assert pickup.vendor_id == vendor.pk, "the pickup went to another vendor"
    return advance(pickup.pk, member_of(vendor), "accepted", "en_route")


def record(pickup: PickupRequest, by, lat=52.52, lon=13.40, **extra):
    return tracking.pickup_record_location(
        pickup_id=pickup.pk, by=by, latitude=lat, longitude=lon, **extra
    )


def later(seconds: float):
    return time_machine.travel(timezone.now() + timedelta(seconds=seconds), tick=True)


async def orm(call, *args, **kwargs):
    return await database_sync_to_async(call)(*args, **kwargs)


def location(pickup_id: int, lat=52.52, lon=13.40, **extra) -> dict:
    return {"action": "location", "pickup_id": pickup_id, "lat": lat, "lon": lon, **extra}


async def next_frame(communicator, timeout: float = 5) -> dict:
    return json.loads(await communicator.receive_from(timeout=timeout))


async def nothing_more(communicator) -> bool:
    return await communicator.receive_nothing(timeout=0.3)


# --- the service: who is a party, who may report, how often -----------------------------------


def test_the_parties_are_the_customer_and_the_members_of_the_vendor_holding_it(world):
    pickup = en_route(world["alice"], world["near"])
    for user in (world["alice"], world["near_member"]):
        found, party = tracking.pickup_party(user=user, pickup_id=pickup.pk)
        assert found.pk == pickup.pk
        assert party == tracking.Party(customer_id=world["alice"].pk, vendor_id=world["near"].pk)
    for outsider in (world["stranger"], world["far_member"]):
        with pytest.raises(NotFound):
            tracking.pickup_party(user=outsider, pickup_id=pickup.pk)
    with pytest.raises(NotFound):
        tracking.pickup_party(user=world["alice"], pickup_id=pickup.pk + 1000)


def test_a_pickup_nobody_holds_has_only_its_customer_as_party(world):
    pickup = new_pickup(world["alice"], location=(HOME[0] + 5, HOME[1]))  # out of every area
    assert pickup.status == "unassigned"
    _, party = tracking.pickup_party(user=world["alice"], pickup_id=pickup.pk)
    assert party.vendor_id is None
    with pytest.raises(NotFound):
        tracking.pickup_party(user=world["near_member"], pickup_id=pickup.pk)


def test_a_position_is_stored_and_kept_on_the_pickup(world):
    pickup = en_route(world["alice"], world["near"])
    member = world["near_member"]
    position, party = record(pickup, member, lat=52.5, lon=13.41, heading=90.0, speed=8.5)

    assert party == tracking.Party(world["alice"].pk, world["near"].pk)
    assert {k: position[k] for k in ("lat", "lon", "heading", "speed")} == {
        "lat": 52.5,
        "lon": 13.41,
        "heading": 90.0,
        "speed": 8.5,
    }
    assert position["at"].endswith("Z")
    point = LocationPoint.objects.get()
    assert (point.pickup_id, point.vendor_id) == (pickup.pk, world["near"].pk)
    assert (point.latitude, point.longitude, point.heading, point.speed) == (52.5, 13.41, 90.0, 8.5)
    assert point.recorded_at.isoformat().replace("+00:00", "Z") == position["at"]
    assert refreshed(pickup.pk).vendor_position == position


def test_heading_and_speed_are_optional(world):
    pickup = en_route(world["alice"], world["near"])
    position, _ = record(pickup, world["near_member"])
    assert position["heading"] is None and position["speed"] is None
    assert refreshed(pickup.pk).vendor_position["heading"] is None


def test_the_customer_may_not_report_a_position(world):
    pickup = en_route(world["alice"], world["near"])
    with pytest.raises(Forbidden) as raised:
        record(pickup, world["alice"])
    assert raised.value.code == "forbidden"
    assert not LocationPoint.objects.exists()
    assert refreshed(pickup.pk).vendor_position is None


@pytest.mark.parametrize("who", ["stranger", "other_vendor"])
def test_someone_not_party_to_the_pickup_gets_not_found(world, who):
    pickup = en_route(world["alice"], world["near"])
    user = world["stranger"] if who == "stranger" else world["far_member"]
    with pytest.raises(NotFound):
        record(pickup, user)
    assert not LocationPoint.objects.exists()


@pytest.mark.parametrize("steps", [("accepted",), ("accepted", "en_route", "picked_up")])
def test_positions_are_taken_only_while_en_route(world, steps):
    pickup = new_pickup(world["alice"])
    member = world["near_member"]
    advance(pickup.pk, member, *steps)
    with pytest.raises(InvalidTransition) as raised:
        record(pickup, member)
    assert raised.value.code == "invalid_transition"
    assert not LocationPoint.objects.exists()
    assert refreshed(pickup.pk).vendor_position is None


def test_an_offered_pickup_takes_no_position_either(world):
    pickup = new_pickup(world["alice"])
    assert pickup.status == "offered"
    with pytest.raises(InvalidTransition):
        record(pickup, world["near_member"])


def test_a_refused_report_does_not_use_up_the_interval(world):
    pickup = new_pickup(world["alice"])
    member = world["near_member"]
    advance(pickup.pk, member, "accepted")
    with pytest.raises(InvalidTransition):
        record(pickup, member)
    advance(pickup.pk, member, "en_route")
    record(pickup, member)  # at once: the refused one did not count
    assert LocationPoint.objects.count() == 1


def test_one_position_per_interval_until_the_clock_moves_on(world):
    pickup = en_route(world["alice"], world["near"])
    member = world["near_member"]
    first, _ = record(pickup, member, lat=52.50)

    with pytest.raises(RateLimited) as raised:
        record(pickup, member, lat=52.51)
    assert raised.value.code == "rate_limited"
    with later(INTERVAL / 2), pytest.raises(RateLimited):
        record(pickup, member, lat=52.52)
    assert LocationPoint.objects.count() == 1
    assert refreshed(pickup.pk).vendor_position == first

    with later(INTERVAL + 1):
        second, _ = record(pickup, member, lat=52.53)
    assert LocationPoint.objects.count() == 2
    assert refreshed(pickup.pk).vendor_position == second
    assert second["lat"] == 52.53


def test_the_limit_is_per_pickup_not_per_vendor(world):
    member = world["near_member"]
    one = en_route(world["alice"], world["near"])
    two = en_route(world["alice"], world["near"])
    record(one, member)
    record(two, member)  # another pickup: its own interval
    assert LocationPoint.objects.filter(pickup_id=two.pk).count() == 1
    with pytest.raises(RateLimited):
        record(one, member)


def test_the_limit_is_shared_by_every_member_of_the_vendor(world):
    colleague = UserFactory(username="colleague")
    world["near"].members.add(colleague)
    pickup = en_route(world["alice"], world["near"])
    record(pickup, world["near_member"])
    with pytest.raises(RateLimited):
        record(pickup, colleague)


def test_a_tiny_interval_lets_the_next_position_through(world, settings):
    settings.LOCATION_MIN_INTERVAL_SECONDS = 0
    pickup = en_route(world["alice"], world["near"])
    member = world["near_member"]
    record(pickup, member, lat=52.50)
    record(pickup, member, lat=52.51)
    assert LocationPoint.objects.count() == 2
    assert refreshed(pickup.pk).vendor_position["lat"] == 52.51


# --- the socket: location and who sees it -----------------------------------------------------


async def test_followers_see_the_vendors_positions(world):
    pickup = await orm(en_route, world["alice"], world["near"])
    alice = await connect(WS, world["alice_key"])
    watching = await connect(WS, world["near_key"])  # a member following on another device
    driver = await connect(WS, world["near_key"])

    subscribed = await ask(
        alice, {"action": "subscribe", "pickup_id": pickup.pk, "request_id": "s"}
    )
    assert subscribed == {
        "type": "pickup.subscribed",
        "request_id": "s",
        "pickup_id": pickup.pk,
        "status": "en_route",
        "vendor_position": None,
    }
    assert (await ask(watching, {"action": "subscribe", "pickup_id": pickup.pk}))[
        "type"
    ] == "pickup.subscribed"

    reply = await ask(
        driver, location(pickup.pk, 52.5, 13.41, heading=180, speed=7, request_id="l")
    )
    assert reply["type"] == "location.recorded", reply
    assert reply["request_id"] == "l"
    assert reply["pickup_id"] == pickup.pk
    assert (reply["lat"], reply["lon"], reply["heading"], reply["speed"]) == (52.5, 13.41, 180, 7)

    expected = {
        "type": "vendor.location",
        "pickup_id": pickup.pk,
        "lat": 52.5,
        "lon": 13.41,
        "heading": 180,
        "speed": 7,
        "at": reply["at"],
    }
    assert await next_frame(alice) == expected
    assert await next_frame(watching) == expected
    assert await nothing_more(alice)
    assert await nothing_more(driver)  # it did not subscribe: the reply is all it gets

    stored = await orm(refreshed, pickup.pk)
    assert stored.vendor_position == {
        k: v for k, v in expected.items() if k not in ("type", "pickup_id")
    }
    later_subscriber = await connect(WS, world["alice_key"])
    again = await ask(later_subscriber, {"action": "subscribe", "pickup_id": pickup.pk})
    assert again["vendor_position"] == stored.vendor_position


async def test_a_subscribed_sender_gets_the_reply_then_its_own_event(world):
    pickup = await orm(en_route, world["alice"], world["near"])
    driver = await connect(WS, world["near_key"])
    await ask(driver, {"action": "subscribe", "pickup_id": pickup.pk})
    reply = await ask(driver, location(pickup.pk))
    assert reply["type"] == "location.recorded"
    event = await next_frame(driver)
    assert event["type"] == "vendor.location" and event["at"] == reply["at"]


async def test_a_socket_that_did_not_subscribe_sees_no_positions(world):
    pickup = await orm(en_route, world["alice"], world["near"])
    alice = await connect(WS, world["alice_key"])
    driver = await connect(WS, world["near_key"])
    assert (await ask(driver, location(pickup.pk)))["type"] == "location.recorded"
    assert await nothing_more(alice)


async def test_positions_of_one_pickup_do_not_reach_followers_of_another(world):
    one = await orm(en_route, world["alice"], world["near"])
    two = await orm(en_route, world["alice"], world["near"])
    alice = await connect(WS, world["alice_key"])
    driver = await connect(WS, world["near_key"])
    await ask(alice, {"action": "subscribe", "pickup_id": two.pk})
    assert (await ask(driver, location(one.pk)))["type"] == "location.recorded"
    assert await nothing_more(alice)
    assert (await ask(driver, location(two.pk)))["type"] == "location.recorded"
    assert (await next_frame(alice))["pickup_id"] == two.pk


async def test_the_customer_sending_a_position_is_forbidden(world):
    pickup = await orm(en_route, world["alice"], world["near"])
    alice = await connect(WS, world["alice_key"])
    await ask(alice, {"action": "subscribe", "pickup_id": pickup.pk})
    reply = await ask(alice, location(pickup.pk, request_id="x"))
    assert (reply["type"], reply["code"], reply["request_id"]) == ("error", "forbidden", "x")
    assert await nothing_more(alice)  # nothing was broadcast
    assert await orm(LocationPoint.objects.count) == 0


@pytest.mark.parametrize("who", ["stranger_key", "far_key"])
async def test_a_non_party_sending_a_position_gets_not_found(world, who):
    pickup = await orm(en_route, world["alice"], world["near"])
    alice = await connect(WS, world["alice_key"])
    await ask(alice, {"action": "subscribe", "pickup_id": pickup.pk})
    intruder = await connect(WS, world[who])
    assert (await ask(intruder, location(pickup.pk)))["code"] == "not_found"
    assert (await ask(intruder, location(pickup.pk + 1000)))["code"] == "not_found"
    assert await nothing_more(alice)
    assert await orm(LocationPoint.objects.count) == 0


async def test_a_position_before_setting_off_is_an_invalid_transition(world):
    pickup = await orm(new_pickup, world["alice"])
    driver = await connect(WS, world["near_key"])
    assert (await ask(driver, location(pickup.pk)))["code"] == "invalid_transition"
    await orm(advance, pickup.pk, world["near_member"], "accepted")
    assert (await ask(driver, location(pickup.pk)))["code"] == "invalid_transition"


async def test_two_positions_within_the_interval_the_second_is_rate_limited(world):
    pickup = await orm(en_route, world["alice"], world["near"])
    alice = await connect(WS, world["alice_key"])
    await ask(alice, {"action": "subscribe", "pickup_id": pickup.pk})
    driver = await connect(WS, world["near_key"])
    other_device = await connect(WS, world["near_key"])

    assert (await ask(driver, location(pickup.pk, 52.50)))["type"] == "location.recorded"
    assert (await next_frame(alice))["lat"] == 52.50
    limited = await ask(driver, location(pickup.pk, 52.51, request_id="again"))
    assert (limited["type"], limited["code"], limited["request_id"]) == (
        "error",
        "rate_limited",
        "again",
    )
    # Counted per pickup, whichever socket sends.
    assert (await ask(other_device, location(pickup.pk, 52.52)))["code"] == "rate_limited"
    assert await nothing_more(alice)
    assert (await orm(refreshed, pickup.pk)).vendor_position["lat"] == 52.50

    with later(INTERVAL + 1):
        assert (await ask(driver, location(pickup.pk, 52.53)))["type"] == "location.recorded"
        assert (await next_frame(alice))["lat"] == 52.53
    assert await orm(LocationPoint.objects.count) == 2
    # The socket stays usable after an error.
    assert (await ask(driver, {"action": "ping"}))["type"] == "pong"


async def test_when_the_interval_has_run_out_the_next_position_goes_through(world, settings):
    settings.LOCATION_MIN_INTERVAL_SECONDS = 0
    pickup = await orm(en_route, world["alice"], world["near"])
    driver = await connect(WS, world["near_key"])
    for lat in (52.50, 52.51, 52.52):
        assert (await ask(driver, location(pickup.pk, lat)))["type"] == "location.recorded"
    assert await orm(LocationPoint.objects.count) == 3


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"lat": 91}, "lat"),
        ({"lat": -90.5}, "lat"),
        ({"lon": 181}, "lon"),
        ({"lat": "52.5"}, "lat"),
        ({"lon": None}, "lon"),
        ({"lat": True}, "lat"),
        ({"heading": 361}, "heading"),
        ({"heading": -1}, "heading"),
        ({"speed": -0.1}, "speed"),
        ({"speed": 151}, "speed"),
        ({"speed": "fast"}, "speed"),
    ],
)
async def test_bad_positions_are_validation_errors_and_use_up_nothing(world, fields, field):
    pickup = await orm(en_route, world["alice"], world["near"])
    driver = await connect(WS, world["near_key"])
    reply = await ask(driver, location(pickup.pk, **fields))
    assert (reply["type"], reply["code"]) == ("error", "validation_error"), reply
    assert field in reply["errors"]
    assert await orm(LocationPoint.objects.count) == 0
    assert (await ask(driver, location(pickup.pk)))["type"] == "location.recorded"


@pytest.mark.parametrize(
    "frame",
    [
        {"action": "location", "lat": 52.5, "lon": 13.4},
        {"action": "location", "pickup_id": "one", "lat": 52.5, "lon": 13.4},
        {"action": "location", "pickup_id": 1, "lon": 13.4},
        {"action": "location", "pickup_id": 1, "lat": 52.5},
        {"action": "subscribe"},
        {"action": "subscribe", "pickup_id": 0},
        {"action": "unsubscribe", "pickup_id": "x"},
    ],
)
async def test_frames_without_a_usable_pickup_or_position_are_refused(world, frame):
    alice = await connect(WS, world["alice_key"])
    reply = await ask(alice, frame)
    assert (reply["type"], reply["code"]) == ("error", "validation_error"), reply


# --- subscribe and unsubscribe ------------------------------------------------------------------


@pytest.mark.parametrize("who", ["stranger_key", "far_key"])
async def test_only_the_parties_may_subscribe(world, who):
    pickup = await orm(en_route, world["alice"], world["near"])
    outsider = await connect(WS, world[who])
    reply = await ask(outsider, {"action": "subscribe", "pickup_id": pickup.pk, "request_id": "s"})
    assert (reply["type"], reply["code"], reply["request_id"]) == ("error", "not_found", "s")
    missing = await ask(outsider, {"action": "subscribe", "pickup_id": pickup.pk + 1000})
    assert missing["code"] == "not_found"
    # Not following: positions do not reach it.
    driver = await connect(WS, world["near_key"])
    assert (await ask(driver, location(pickup.pk)))["type"] == "location.recorded"
    assert await nothing_more(outsider)


async def test_subscribing_tells_the_status_before_any_vendor(world):
    pickup = await orm(new_pickup, world["alice"], location=(HOME[0] + 5, HOME[1]))
    alice = await connect(WS, world["alice_key"])
    reply = await ask(alice, {"action": "subscribe", "pickup_id": pickup.pk})
    assert (reply["status"], reply["vendor_position"]) == ("unassigned", None)


async def test_after_unsubscribing_no_more_positions_arrive(world, settings):
    settings.LOCATION_MIN_INTERVAL_SECONDS = 0
    pickup = await orm(en_route, world["alice"], world["near"])
    alice = await connect(WS, world["alice_key"])
    driver = await connect(WS, world["near_key"])
    await ask(alice, {"action": "subscribe", "pickup_id": pickup.pk})
    await ask(driver, location(pickup.pk, 52.50))
    assert (await next_frame(alice))["lat"] == 52.50

    reply = await ask(alice, {"action": "unsubscribe", "pickup_id": pickup.pk, "request_id": "u"})
    assert reply == {"type": "pickup.unsubscribed", "request_id": "u", "pickup_id": pickup.pk}
    assert (await ask(driver, location(pickup.pk, 52.51)))["type"] == "location.recorded"
    assert await nothing_more(alice)
    # Unsubscribing again (or from a pickup never followed) is harmless.
    assert (await ask(alice, {"action": "unsubscribe", "pickup_id": pickup.pk}))[
        "type"
    ] == "pickup.unsubscribed"
    # And subscribing again brings the events back.
    await ask(alice, {"action": "subscribe", "pickup_id": pickup.pk})
    await ask(driver, location(pickup.pk, 52.52))
    assert (await next_frame(alice))["lat"] == 52.52


async def test_subscribing_twice_delivers_each_position_once(world):
    pickup = await orm(en_route, world["alice"], world["near"])
    alice = await connect(WS, world["alice_key"])
    driver = await connect(WS, world["near_key"])
    for _ in range(2):
        assert (await ask(alice, {"action": "subscribe", "pickup_id": pickup.pk}))[
            "type"
        ] == "pickup.subscribed"
    await ask(driver, location(pickup.pk))
    assert (await next_frame(alice))["type"] == "vendor.location"
    assert await nothing_more(alice)


async def test_a_socket_follows_at_most_the_configured_number_of_pickups(world, settings):
    settings.TRACKING_MAX_SUBSCRIPTIONS = 2
    ids = [(await orm(new_pickup, world["alice"])).pk for _ in range(3)]
    alice = await connect(WS, world["alice_key"])
    for pickup_id in ids[:2]:
        assert (await ask(alice, {"action": "subscribe", "pickup_id": pickup_id}))[
            "type"
        ] == "pickup.subscribed"
    # Renewing one already followed takes no new place.
    assert (await ask(alice, {"action": "subscribe", "pickup_id": ids[0]}))[
        "type"
    ] == "pickup.subscribed"
    refused = await ask(alice, {"action": "subscribe", "pickup_id": ids[2], "request_id": "3"})
    assert (refused["type"], refused["code"], refused["request_id"]) == (
        "error",
        "bad_request",
        "3",
    )
    # The limit is per socket.
    other_socket = await connect(WS, world["alice_key"])
    assert (await ask(other_socket, {"action": "subscribe", "pickup_id": ids[2]}))[
        "type"
    ] == "pickup.subscribed"
    # Letting one go frees its place.
    await ask(alice, {"action": "unsubscribe", "pickup_id": ids[0]})
    assert (await ask(alice, {"action": "subscribe", "pickup_id": ids[2]}))[
        "type"
    ] == "pickup.subscribed"


async def test_disconnecting_leaves_the_pickups_room(world):
    pickup = await orm(en_route, world["alice"], world["near"])
    alice = await connect(WS, world["alice_key"])
    await ask(alice, {"action": "subscribe", "pickup_id": pickup.pk})
    layer = get_channel_layer()
    assert len(layer.groups.get(tracking.pickup_room(pickup.pk), {})) == 1
    await alice.disconnect()
    assert not layer.groups.get(tracking.pickup_room(pickup.pk))


async def test_a_released_vendor_still_subscribed_does_not_see_the_new_vendor(world):
    """The customer releases the accepted vendor; its member's socket stays in the pickup's room
    but must not follow the vendor that takes over."""
    pickup = await orm(new_pickup, world["alice"])
    assert pickup.vendor_id == world["near"].pk
    await orm(advance, pickup.pk, world["near_member"], "accepted")

    alice = await connect(WS, world["alice_key"])
    released = await connect(WS, world["near_key"])
    for socket in (alice, released):
        assert (await ask(socket, {"action": "subscribe", "pickup_id": pickup.pk}))[
            "status"
        ] == "accepted"

    rejected = await ask(alice, {"action": "reject", "pickup_id": pickup.pk, "reason": "late"})
    assert rejected["type"] == "pickup.rejected", rejected
    # Re-assigned on commit to the next vendor, which takes the job and sets off.
    reassigned = await orm(refreshed, pickup.pk)
    assert (reassigned.status, reassigned.vendor_id) == ("offered", world["far"].pk)
    await orm(advance, pickup.pk, world["far_member"], "accepted", "en_route")

    new_vendor = await connect(WS, world["far_key"])
    assert (await ask(new_vendor, {"action": "subscribe", "pickup_id": pickup.pk}))[
        "status"
    ] == "en_route"
    driver = await connect(WS, world["far_key"])
    assert (await ask(driver, location(pickup.pk, 52.55)))["type"] == "location.recorded"

    assert (await next_frame(alice))["lat"] == 52.55
    assert (await next_frame(new_vendor))["lat"] == 52.55
    assert await nothing_more(released)
    # Nor may the released vendor follow it anew, or report positions for it.
    assert (await ask(released, {"action": "subscribe", "pickup_id": pickup.pk}))[
        "code"
    ] == "not_found"
    assert (await ask(released, location(pickup.pk)))["code"] == "not_found"
    assert (await ask(released, {"action": "unsubscribe", "pickup_id": pickup.pk}))[
        "type"
    ] == "pickup.unsubscribed"


async def test_a_member_who_left_the_vendor_stops_seeing_its_positions(world):
    pickup = await orm(en_route, world["alice"], world["near"])
    leaver = await orm(UserFactory, username="leaver")
    await orm(world["near"].members.add, leaver)
    follower = await connect(WS, await orm(token_for, leaver))
    assert (await ask(follower, {"action": "subscribe", "pickup_id": pickup.pk}))[
        "type"
    ] == "pickup.subscribed"
    await orm(world["near"].members.remove, leaver)

    driver = await connect(WS, world["near_key"])
    assert (await ask(driver, location(pickup.pk, 52.56)))["type"] == "location.recorded"
    assert await nothing_more(follower)


async def test_get_shows_the_last_position_and_the_quoted_prices(world):
    pickup = await orm(en_route, world["alice"], world["near"])
    driver = await connect(WS, world["near_key"])
    recorded = await ask(driver, location(pickup.pk, 52.5, 13.41, heading=12.5))
    alice = await connect(WS, world["alice_key"])
    detail = (await ask(alice, {"action": "get", "pickup_id": pickup.pk}))["pickup"]
    assert detail["vendor_position"] == {
        "lat": 52.5,
        "lon": 13.41,
        "heading": 12.5,
        "speed": None,
        "at": recorded["at"],
    }
    assert detail["receipt"] is None
    assert detail["offer_expires_at"] is None  # the offer was accepted: no timer runs
    assert detail["items"][0]["price_per_kg"] == "0.10"


async def test_get_shows_when_an_offer_expires(world, settings):
    before = timezone.now()
    pickup = await orm(new_pickup, world["alice"])
    vendor = await connect(WS, world["near_key"])
    detail = (await ask(vendor, {"action": "get", "pickup_id": pickup.pk}))["pickup"]
    assert detail["status"] == "offered"
    assert detail["vendor_position"] is None
    expires = datetime.fromisoformat(detail["offer_expires_at"].replace("Z", "+00:00"))
    timeout = timedelta(seconds=settings.OFFER_TIMEOUT_SECONDS)
    assert before + timeout <= expires <= timezone.now() + timeout


# --- nearby -------------------------------------------------------------------------------------


@pytest.fixture
def vendors_around(world):
    """Near (1.1 km north of HOME) and Far (5.6 km) from ``world``, plus some to leave out or in."""
    metal = VendorFactory(name="Metal", latitude=HOME[0] - 0.03, materials=["metal"])  # 3.3 km
    VendorFactory(name="Offline", latitude=HOME[0] + 0.002, is_online=False)
    VendorFactory(name="Inactive", latitude=HOME[0] + 0.003, is_active=False)
    VendorFactory(name="Distant", latitude=HOME[0] + 1)  # 111 km
    small = VendorFactory(name="Small", latitude=HOME[0] + 0.08, service_radius_km=2)  # 8.9 km
    return {"metal": metal, "small": small}


def nearby(**fields) -> dict:
    return {"action": "nearby", "lat": HOME[0], "lon": HOME[1], "radius_km": 10, **fields}


async def test_nearby_lists_active_online_vendors_nearest_first(world, vendors_around):
    stranger = await connect(WS, world["stranger_key"])  # any signed-in user may look
    reply = await ask(stranger, nearby(request_id="n"))
    assert (reply["type"], reply["request_id"]) == ("vendors.nearby", "n")
    assert [v["name"] for v in reply["vendors"]] == ["Near", "Metal", "Far", "Small"]
    distances = [v["distance_km"] for v in reply["vendors"]]
    assert distances == sorted(distances)
    assert distances[0] == pytest.approx(1.11, abs=0.01)
    near = reply["vendors"][0]
    assert near["id"] == world["near"].pk
    assert near["serves_location"] is True
    assert near["materials"] == [{"material": "paper", "name": "Paper", "price_per_kg": "0.10"}]
    assert "members" not in near and "open_jobs" not in near and "capacity" not in near
    small = next(v for v in reply["vendors"] if v["name"] == "Small")
    assert small["serves_location"] is False  # within the circle, but its own area is 2 km


async def test_nearby_narrows_by_radius_and_material(world, vendors_around):
    alice = await connect(WS, world["alice_key"])
    assert [v["name"] for v in (await ask(alice, nearby(radius_km=2)))["vendors"]] == ["Near"]
    metal = (await ask(alice, nearby(material="metal")))["vendors"]
    assert [v["id"] for v in metal] == [vendors_around["metal"].pk]
    assert (await ask(alice, nearby(material="gold")))["vendors"] == []
    far_away = await ask(alice, nearby(lat=-33.9, lon=18.4, radius_km=100))
    assert far_away["vendors"] == []
    wide = await ask(alice, nearby(radius_km=100))
    assert [v["name"] for v in wide["vendors"]][-1] == "Small"  # Distant is 111 km away


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"lat": "52.5"}, "lat"),
        ({"lon": "13.4"}, "lon"),
        ({"radius_km": "5"}, "radius_km"),
        ({"lat": 90.1}, "lat"),
        ({"lon": -180.5}, "lon"),
        ({"radius_km": 0}, "radius_km"),
        ({"radius_km": -1}, "radius_km"),
        ({"radius_km": 100.5}, "radius_km"),
        ({"lat": None}, "lat"),
        ({"lat": False}, "lat"),
        ({"material": 7}, "material"),
        ({"material": "not a slug"}, "material"),
    ],
)
async def test_nearby_refuses_bad_queries(world, fields, field):
    alice = await connect(WS, world["alice_key"])
    reply = await ask(alice, nearby(**fields))
    assert (reply["type"], reply["code"]) == ("error", "validation_error"), reply
    assert field in reply["errors"]


async def test_nearby_needs_the_point_and_the_radius(world):
    alice = await connect(WS, world["alice_key"])
    reply = await ask(alice, {"action": "nearby"})
    assert reply["code"] == "validation_error"
    assert {"lat", "lon", "radius_km"} <= set(reply["errors"])
