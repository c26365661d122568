"""Random and malformed frames against both WebSocket endpoints.

Whatever a client sends (any JSON value, objects with random keys, the known actions with fields
of the wrong type or size, huge numbers, ``NaN`` and ``Infinity`` as text, deep nesting, binary
frames, text that is not JSON), the server answers every frame with one JSON object of a
documented ``type``, an error carries a documented, stable ``code`` and never
``internal_error``, the socket stays open unless it is closed with a documented code (1009 for
an oversized frame, 4429 for a client that keeps exceeding the frame rate), and nothing is
logged at ERROR level.
"""

import json
import logging
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from channels.testing.websocket import WebsocketCommunicator
from django.conf import settings as django_settings
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from notifications.consumers import NotificationConsumer
from pickups.consumers import PickupConsumer
from procurement_system.asgi import application
from procurement_system.errors import ERROR_CODES
from procurement_system.websocket import CLOSE_MESSAGE_TOO_BIG, CLOSE_RATE_LIMITED
from tests.consumers import token_for
from tests.factories import HOME, UserFactory, VendorFactory, create_pickup, member_of

pytestmark = pytest.mark.django_db(transaction=True)

MAX_FRAME = django_settings.WEBSOCKET_MAX_FRAME_BYTES
ENDPOINTS = {
    "pickups": ("/ws/pickups/", PickupConsumer.actions),
    "notifications": ("/ws/notifications/", NotificationConsumer.actions),
}
# The frames each endpoint may send (docs/websocket-api.rst): replies, then its own pushes.
REPLY_TYPES = {
    "pickups": {
        "error",
        "pong",
        "pickup.created",
        "pickup.updated",
        "pickup.en_route",
        "pickup.picked_up",
        "pickup.completed",
        "pickup.accepted",
        "pickup.rejected",
        "pickup.cancelled",
        "pickup.detail",
        "pickup.list",
        "location.recorded",
        "pickup.subscribed",
        "pickup.unsubscribed",
        "vendors.nearby",
    },
    "notifications": {"error", "pong", "replay.done", "notifications.read"},
}
PUSH_TYPES = {"pickups": {"vendor.location"}, "notifications": {"notification"}}
# Closes a client can bring on itself with frames.
FRAME_CLOSES = {CLOSE_MESSAGE_TOO_BIG, CLOSE_RATE_LIMITED}
ALL_ACTIONS = sorted(PickupConsumer.actions | NotificationConsumer.actions)
# Every field name any action reads, top level or inside ``data`` / ``items``.
FIELD_NAMES = [
    "action",
    "request_id",
    "pickup_id",
    "data",
    "status",
    "items",
    "reason",
    "lat",
    "lon",
    "heading",
    "speed",
    "radius_km",
    "material",
    "limit",
    "idempotency_key",
    "after",
    "ids",
    "address",
    "latitude",
    "longitude",
    "window_start",
    "window_end",
    "notes",
    "contact_phone",
    "estimated_kg",
    "actual_kg",
]
TRICKY_TEXT = [
    "",
    "0",
    "-1",
    "1e999",
    "-1e999",
    "NaN",
    "nan",
    "Infinity",
    "-Infinity",
    "null",
    "true",
    "9" * 40,
    "0x10",
    "١٢",  # Arabic-Indic digits
    "²",
    "paper",
    "en_route",
    "completed",
    "2031-02-30T25:61:00Z",
    "2031-03-03T08:00:00",
    "x" * 300,
    "\x00",
    "\ud7ff\ue000",
    "🚚",
]
# Raw frames that are not JSON or that only a lenient parser would take.
RAW_FRAMES = [
    "",
    " ",
    "NaN",
    "Infinity",
    "-Infinity",
    "[NaN]",
    '{"action": "ping", "request_id": NaN}',
    '{"action": "ping", "request_id": "n", "x": Infinity}',
    '{"action": "nearby", "lat": 1e999, "lon": 0, "radius_km": 1}',
    '{"action": "replay", "after": 1e999}',
    '{"action": "mark_read", "ids": [1e400]}',
    '{"action": "ping"',
    '{"action": "ping"}{"action": "ping"}',
    "{'action': 'ping'}",
    '{"action": "ping", "action": "get"}',
    '"ping"',
    "null",
    "\ufeff{}",
]

huge_integers = st.one_of(
    st.integers(min_value=2**31 - 2, max_value=2**31 + 2),
    st.integers(min_value=2**63 - 2, max_value=2**63 + 2),
    st.integers(min_value=2**64, max_value=10**40),
    st.integers(max_value=-(2**63) + 2, min_value=-(10**40)),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-3, max_value=3),
    st.integers(),
    huge_integers,
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([1e308, -1e308, 5e-324, -0.0, 0.5, 52.52, 13.41]),
    st.text(max_size=30),
    st.sampled_from(TRICKY_TEXT),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.one_of(st.sampled_from(FIELD_NAMES), st.text(max_size=8)), children, max_size=4
        ),
    ),
    max_leaves=12,
)
objects_with_random_keys = st.dictionaries(
    st.one_of(st.sampled_from(FIELD_NAMES), st.text(max_size=12)), json_values, max_size=6
)


@st.composite
def action_frames(draw, pickup_ids):
    """A known action with some of the fields actions read, each valid-looking or not."""
    frame = {"action": draw(st.sampled_from(ALL_ACTIONS))}
    if draw(st.booleans()):
        frame["request_id"] = draw(st.one_of(st.text(max_size=10), st.just("r" * 201), json_values))
    if draw(st.booleans()):
        frame["pickup_id"] = draw(st.one_of(st.sampled_from(pickup_ids), json_values))
    fields = draw(
        st.dictionaries(
            st.sampled_from(FIELD_NAMES[3:]),
            st.one_of(
                json_values,
                objects_with_random_keys,
                st.lists(objects_with_random_keys, max_size=3),
            ),
            max_size=5,
        )
    )
    return {**frame, **fields}


def templates(pickup_id: int) -> list[dict]:
    """One well-formed frame per action (and per kind of ``update``)."""
    item = {"material": "paper", "estimated_kg": 5}
    data = {
        "address": "Alexanderplatz 1, Berlin",
        "latitude": HOME[0],
        "longitude": HOME[1],
        "window_start": "2031-03-03T09:00:00Z",
        "window_end": "2031-03-03T12:00:00Z",
        "items": [item],
        "notes": "",
        "contact_phone": "+49 30 1234567",
    }
    weights = [{"material": "paper", "actual_kg": "5.50"}]
    place = {"lat": HOME[0], "lon": HOME[1]}
    return [
        {"action": "create", "request_id": "c", "idempotency_key": "fuzz", "data": data},
        {"action": "update", "request_id": "u", "pickup_id": pickup_id, "data": {"notes": "x"}},
        {"action": "update", "pickup_id": pickup_id, "status": "picked_up", "items": weights},
        {"action": "reject", "request_id": "r", "pickup_id": pickup_id, "reason": "no"},
        {"action": "cancel", "pickup_id": pickup_id, "reason": ""},
        {"action": "accept", "request_id": "a", "pickup_id": pickup_id},
        {"action": "get", "pickup_id": pickup_id},
        {"action": "subscribe", "pickup_id": pickup_id},
        {"action": "unsubscribe", "pickup_id": pickup_id},
        {"action": "list", "request_id": "l", "status": "offered", "limit": 10},
        {"action": "location", "pickup_id": pickup_id, **place, "heading": 90, "speed": 3.5},
        {"action": "nearby", **place, "radius_km": 5, "material": "paper"},
        {"action": "replay", "request_id": "p", "after": 0},
        {"action": "mark_read", "ids": [1, 2]},
        {"action": "ping", "request_id": "g"},
    ]


def paths(value, prefix=()):
    """Every place in a JSON value that holds something (dict keys and list positions)."""
    children = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for key, child in children:
        yield (*prefix, key)
        yield from paths(child, (*prefix, key))


@st.composite
def mutants(draw, pickup_ids):
    """A well-formed frame with one thing wrong: a value replaced by an odd one, a key missing,
    or an unknown key added, anywhere inside it."""
    frame = json.loads(
        json.dumps(draw(st.sampled_from(templates(draw(st.sampled_from(pickup_ids))))))
    )
    path = draw(st.sampled_from([p for p in paths(frame) if p != ("action",)]))
    *parents, last = path
    holder = frame
    for key in parents:
        holder = holder[key]
    change = draw(st.sampled_from(["replace", "replace", "drop", "add"]))
    if change == "replace":
        holder[last] = draw(st.one_of(scalars, json_values))
    elif change == "drop":
        del holder[last]
    elif isinstance(holder, dict):
        holder[draw(st.text(max_size=8))] = draw(json_values)
    else:
        holder.append(draw(json_values))
    return frame


def nested(depth: int, kind: str) -> str:
    """A frame nested ``depth`` levels deep (within the size limit)."""
    if kind == "list":
        return "[" * depth + "]" * depth
    if kind == "object":
        return '{"a":' * depth + "1" + "}" * depth
    return '{"action": "update", "pickup_id": 1, "data": ' + "[" * depth + "]" * depth + "}"


@st.composite
def text_frames(draw, pickup_ids):
    kind = draw(
        st.sampled_from(
            ["json", "object", "action", "action", "mutant", "mutant", "mutant", "raw", "text"]
            + ["nested"]
        )
    )
    if kind == "raw":
        return draw(st.sampled_from(RAW_FRAMES))
    if kind == "text":
        return draw(st.text(max_size=200))
    if kind == "nested":
        # Deep enough to matter, shallow enough for a JSON parser: see the test of deep nesting.
        return nested(draw(st.integers(1, 200)), draw(st.sampled_from(["list", "object", "data"])))
    value = draw(
        {
            "json": json_values,
            "object": objects_with_random_keys,
            "action": action_frames(pickup_ids),
            "mutant": mutants(pickup_ids),
        }[kind]
    )
    return json.dumps(value, ensure_ascii=draw(st.booleans()))


@st.composite
def frames(draw, pickup_ids):
    """(endpoint, text, bytes): mostly text frames, some binary, now and then an oversized one."""
    endpoint = draw(st.sampled_from(sorted(ENDPOINTS)))
    kind = draw(st.sampled_from(["text"] * 8 + ["binary", "oversized"]))
    if kind == "binary":
        return endpoint, None, draw(st.binary(max_size=64))
    if kind == "oversized":
        return endpoint, "x" * draw(st.integers(MAX_FRAME + 1, MAX_FRAME + 64)), None
    return endpoint, draw(text_frames(pickup_ids)), None


@pytest.fixture
def parties(transactional_db):
    """A customer with a pickup offered to a vendor, whose member is the other party."""
    customer = UserFactory(username="fuzzy")
    vendor = VendorFactory(name="Fuzz Vendor", latitude=HOME[0] + 0.005)
    now = timezone.now()
    pickup = create_pickup(
        customer, window_start=now + timedelta(days=1), window_end=now + timedelta(days=2)
    )
    return {
        "customer": token_for(customer),
        "vendor": token_for(member_of(vendor)),
        "pickup_ids": [pickup.pk, pickup.pk + 1000],
    }


def request_id_of(text: str | None):
    """The ``request_id`` a reply must carry back: the frame's, when it is a valid one."""
    try:
        content = json.loads(text) if text is not None else None
    except (ValueError, RecursionError):
        return None
    request_id = content.get("request_id") if isinstance(content, dict) else None
    return request_id if isinstance(request_id, str) and len(request_id) <= 200 else None


def check_reply(endpoint: str, reply, sent: str | None) -> None:
    assert isinstance(reply, dict), f"not a JSON object: {reply!r}"
    assert reply.get("type") in REPLY_TYPES[endpoint], f"undocumented reply {reply!r}"
    assert "request_id" in reply, f"a reply without request_id: {reply!r}"
    if reply["type"] == "error":
        assert reply.get("code") in ERROR_CODES, f"undocumented error code: {reply!r}"
        assert reply["code"] != "internal_error", f"{sent!r} made the server fail: {reply!r}"
        assert isinstance(reply.get("message"), str) and reply["message"], reply
        if "errors" in reply:
            assert reply["code"] == "validation_error", f"errors with {reply['code']}: {reply!r}"
    if reply["request_id"] is not None or reply.get("code") != "bad_request":
        # A frame whose request_id could not be read is answered with null; else it is echoed.
        assert reply["request_id"] == request_id_of(sent), f"{sent!r} answered with {reply!r}"


async def exchange(sockets: dict, closed: dict, endpoint: str, text, data) -> None:
    """Send one frame and check what comes back: one reply, or a documented close."""
    communicator = sockets[endpoint]
    # As the web server passes frames on; ``send_to`` would refuse the empty ones.
    frame = {"text": text} if text is not None else {"bytes": data}
    await communicator.send_input({"type": "websocket.receive", **frame})
    while True:
        output = await communicator.receive_output(timeout=5)
        if output["type"] == "websocket.close":
            code = output.get("code")
            assert code in FRAME_CLOSES, f"closed with {code} after {text!r}{data!r}"
            if code == CLOSE_MESSAGE_TOO_BIG:
                size = len(text.encode()) if text is not None else len(data)
                assert size > MAX_FRAME, f"1009 for a frame of {size} bytes"
            closed[endpoint] = code
            return
        assert output["type"] == "websocket.send", output
        assert output.get("text") is not None, f"a binary frame from the server: {output!r}"
        reply = json.loads(output["text"])
        if isinstance(reply, dict) and reply.get("type") in PUSH_TYPES[endpoint]:
            assert "request_id" not in reply, reply
            continue  # something the server pushed on its own; the reply is still to come
        check_reply(endpoint, reply, text)
        return


async def open_socket(path: str, key: str) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(
        application, path, headers=[(b"authorization", f"Token {key}".encode())]
    )
    connected, _ = await communicator.connect(timeout=10)  # generous on a busy machine
    assert connected
    return communicator


async def conversation(key: str, batch: list) -> dict:
    """Open both endpoints as one user, send the frames, and check the sockets still answer."""
    sockets = {name: await open_socket(path, key) for name, (path, _) in ENDPOINTS.items()}
    closed: dict[str, int] = {}
    try:
        for endpoint, text, data in batch:
            if endpoint not in closed:
                await exchange(sockets, closed, endpoint, text, data)
        for endpoint, communicator in sockets.items():
            if endpoint in closed:
                continue
            await communicator.send_to(text_data='{"action": "ping", "request_id": "alive"}')
            reply = json.loads(await communicator.receive_from(timeout=5))
            while reply.get("type") in PUSH_TYPES[endpoint]:
                reply = json.loads(await communicator.receive_from(timeout=5))
            assert reply == {"type": "pong", "request_id": "alive"}, reply
    finally:
        for communicator in sockets.values():
            await communicator.disconnect(timeout=5)
    return closed


@pytest.mark.timeout(600)
@settings(
    max_examples=200,
    deadline=None,
    database=None,
    # The users, tokens and pickup are set up once; the examples only talk to the sockets.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_random_frames_get_documented_answers_and_nothing_breaks(parties, caplog, data):
    role = data.draw(st.sampled_from(["customer", "vendor"]), label="role")
    batch = data.draw(
        st.lists(frames(parties["pickup_ids"]), min_size=1, max_size=6), label="frames"
    )
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        async_to_sync(conversation)(parties[role], batch)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


def test_deeply_nested_frames_are_answered(parties, caplog):
    """Every depth that fits in a frame is answered like any other frame (with bad_request, or
    a validation error for an action's fields), on both endpoints."""
    batch = [
        (endpoint, nested(depth, kind), None)
        for depth in (10, 100, 500, 1000, 5000)
        for kind in ("list", "object", "data")
        for endpoint in sorted(ENDPOINTS)
    ]
    closed = async_to_sync(conversation)(parties["customer"], batch)
    assert not closed
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
