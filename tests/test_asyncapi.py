"""docs/asyncapi.yaml: valid AsyncAPI 3.0.0, internally consistent, in step with the code, and
true to the frames the consumers really send.

The document is validated against the official AsyncAPI 3.0.0 JSON Schema kept in
``tests/asyncapi`` (no network). Its enums, close codes and field lists are compared with the
code both ways, every example with its own message, and a whole lifecycle is driven through the
real consumers: every frame the test sends is checked against the request message of its action
(and frames the server refuses as malformed must fail that check too), every frame the server
sends against the one message of its channel that has its ``type``, and every reply and push
message of the document must have been seen.
"""

import inspect
import json
import re
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings as django_settings
from django.core.cache import cache as django_cache
from django.utils import timezone
from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from notifications.consumers import MarkReadSerializer, NotificationConsumer, ReplaySerializer
from notifications.kinds import KINDS
from notifications.push import user_group
from notifications.selectors import notifications_after
from notifications.serializers import NotificationSerializer
from pickups import events, selectors
from pickups.consumers import CreateFrameSerializer, ListFrameSerializer, PickupConsumer
from pickups.digest import vendor_digests_send
from pickups.models import PickupRejection
from pickups.serializers import (
    ActualWeightSerializer,
    ItemInputSerializer,
    LocationInputSerializer,
    PickupChangeSerializer,
    PickupCreateSerializer,
    PickupIdSerializer,
    PickupItemSerializer,
    PickupSerializer,
    PositionSerializer,
    ReasonSerializer,
    ReceiptLineSerializer,
    ReceiptSerializer,
    RejectionSerializer,
    TransitionSerializer,
    VendorStepSerializer,
)
from pickups.transitions import VENDOR_STEPS, Status
from procurement_system import websocket
from procurement_system.errors import ERROR_CODES, WEBSOCKET_ERROR_CODES
from procurement_system.serializers import ASCII_DIGITS, MAX_ID
from tests.consumers import connect, token_for
from tests.factories import HOME, MaterialFactory, UserFactory, VendorFactory
from vendors.serializers import NearbySerializer, VendorMaterialSerializer, VendorNearbySerializer

ROOT = Path(__file__).resolve().parent.parent
DOCUMENT = ROOT / "docs" / "asyncapi.yaml"
SPEC_SCHEMA = ROOT / "tests" / "asyncapi" / "asyncapi-3.0.0.schema.json"
DOC_URI = "urn:procurement-pickups:asyncapi"
CHANNELS = {"pickups": PickupConsumer, "notifications": NotificationConsumer}
# Frames the server sends on its own, each an operation with ``action: send``.
SEND_OPERATIONS = {"pickups.vendor_location", "notifications.connect", "notifications.notification"}
# Keys a reply or push may leave out; every other key is always sent.
OPTIONAL_REPLY_KEYS = {"Error": {"errors"}}
# The pickup keys only the customer (and an operator) gets.
CUSTOMER_ONLY = {"rejections", "idempotency_key", "assignment_task_id"}


# --- the document -------------------------------------------------------------------------------


@cache
def _document_text() -> str:
    return DOCUMENT.read_text(encoding="utf-8")


def document() -> dict[str, Any]:
    """A fresh copy of the document, as loaded from YAML."""
    return yaml.safe_load(_document_text())


DOC = document()


def resolve(pointer: str, doc: dict | None = None) -> Any:
    """The value a local ``#/...`` reference points to (KeyError if it points nowhere)."""
    assert pointer.startswith("#/"), f"only local references are used: {pointer}"
    node: Any = DOC if doc is None else doc
    for part in pointer[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def deref(node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        node = resolve(node["$ref"])
    return node


def refs_in(node: Any) -> list[str]:
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                found.append(value)
            else:
                found.extend(refs_in(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(refs_in(value))
    return found


def message_name(message_ref: dict) -> str:
    return message_ref["$ref"].rsplit("/", 1)[1]


def messages() -> dict[str, dict]:
    return DOC["components"]["messages"]


def schemas() -> dict[str, dict]:
    return DOC["components"]["schemas"]


def payload(name: str) -> dict:
    return deref(messages()[name]["payload"])


def is_request(name: str) -> bool:
    return "action" in payload(name).get("properties", {})


def channel_message_names(channel: str) -> set[str]:
    return set(DOC["channels"][channel]["messages"])


def request_messages(channel: str) -> dict[str, str]:
    """The channel's request messages by the ``action`` they carry."""
    found = {}
    for name in channel_message_names(channel):
        if is_request(name):
            action = payload(name)["properties"]["action"]["const"]
            assert action not in found, f"two request messages for {action}"
            found[action] = name
    return found


def frame_messages(channel: str) -> set[str]:
    """The channel's replies and pushes: the messages with a ``type``."""
    return {n for n in channel_message_names(channel) if not is_request(n)}


def types_of(name: str) -> set[str]:
    schema = payload(name)["properties"]["type"]
    return {schema["const"]} if "const" in schema else set(schema["enum"])


def push_messages() -> set[str]:
    """Messages the server sends on its own and never as a reply: no ``request_id``."""
    replies = {
        message_name(ref)
        for operation in DOC["operations"].values()
        for ref in operation.get("reply", {}).get("messages", [])
    }
    pushed = {
        message_name(ref)
        for key, operation in DOC["operations"].items()
        if operation["action"] == "send"
        for ref in operation["messages"]
    }
    return pushed - replies - {"ReplayDone", "Error"}


@cache
def registry() -> Registry:
    return Registry().with_resource(
        DOC_URI, Resource.from_contents(document(), default_specification=DRAFT7)
    )


@cache
def validator(pointer: str) -> Draft7Validator:
    """Validates against the schema at ``pointer`` in the document, its $refs resolved."""
    return Draft7Validator(
        {"$ref": f"{DOC_URI}{pointer}"},
        registry=registry(),
        format_checker=Draft7Validator.FORMAT_CHECKER,
    )


def payload_validator(name: str) -> Draft7Validator:
    return validator(f"#/components/messages/{name}/payload")


def problems(name: str, frame: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '(frame)'}: {e.message}"
        for e in payload_validator(name).iter_errors(frame)
    ]


def assert_conforms(name: str, frame: Any) -> None:
    found = problems(name, frame)
    assert not found, f"{name} does not describe {json.dumps(frame)[:400]}: {found}"


# --- valid AsyncAPI 3.0.0 ---------------------------------------------------------------------


@cache
def spec_validator() -> Draft7Validator:
    spec = json.loads(SPEC_SCHEMA.read_text(encoding="utf-8"))
    Draft7Validator.check_schema(spec)
    return Draft7Validator(spec)


def spec_errors(doc: dict) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message[:300]}"
        for e in spec_validator().iter_errors(doc)
    ]


def test_the_spec_schema_is_the_official_asyncapi_3_0_0_one():
    spec = json.loads(SPEC_SCHEMA.read_text(encoding="utf-8"))
    assert spec["title"] == "AsyncAPI 3.0.0 schema."
    assert spec["properties"]["asyncapi"]["const"] == "3.0.0"
    # Self-contained: no $id, every definition under #/definitions; the validation below
    # resolves nothing remote (referencing retrieves nothing unless told to).
    assert "$id" not in spec and "specificationExtension" in spec["definitions"]
    readme = (SPEC_SCHEMA.parent / "README").read_text()
    assert "@asyncapi/specs" in readme and "Apache-2.0" in readme


def test_the_document_is_valid_asyncapi_3_0_0():
    assert DOC["asyncapi"] == "3.0.0"
    assert spec_errors(DOC) == []


@pytest.mark.parametrize(
    "break_it",
    [
        lambda doc: doc["operations"]["pickups.ping"].update(action="reply"),
        lambda doc: doc["info"].pop("title"),
        lambda doc: doc["channels"]["pickups"].update(colour="red"),
        lambda doc: doc["components"]["messages"]["Pong"]["examples"][0].update(value=1),
    ],
    ids=["operation-action", "info-title", "unknown-channel-key", "example-key"],
)
def test_the_spec_validation_catches_a_broken_document(break_it):
    doc = document()
    break_it(doc)
    assert spec_errors(doc)


def test_the_document_is_plain_json_data():
    """YAML would turn an unquoted date into a datetime, or ``no`` into False."""

    def walk(node, path="$"):
        if isinstance(node, dict):
            for key, value in node.items():
                assert isinstance(key, str), f"{path}: key {key!r} is not a string"
                walk(value, f"{path}.{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{path}[{i}]")
        else:
            assert node is None or isinstance(node, str | int | float | bool), f"{path}: {node!r}"

    walk(DOC)
    assert json.loads(json.dumps(DOC)) == DOC


def test_the_date_time_format_is_really_checked():
    """Without rfc3339-validator jsonschema would accept any string as a date-time."""
    checker = Draft7Validator(
        {"format": "date-time"}, format_checker=Draft7Validator.FORMAT_CHECKER
    )
    assert not checker.is_valid("yesterday")
    assert checker.is_valid("2026-11-21T05:48:07.214530Z")


def test_the_info_servers_and_content_type():
    info = DOC["info"]
    assert info["title"] == "Procurement pickup platform WebSocket API"
    assert info["version"] == "1.0.0"
    for topic in ("Authorization: Token", "session", "Origin", "frame rate", "exactly", "replay"):
        assert topic.lower() in info["description"].lower(), topic
    assert DOC["defaultContentType"] == "application/json"
    servers = DOC["servers"]
    assert set(servers) == {"local", "production"}
    assert (servers["local"]["host"], servers["local"]["protocol"]) == ("127.0.0.1:8000", "ws")
    assert (servers["production"]["host"], servers["production"]["protocol"]) == ("{host}", "wss")
    assert servers["production"]["variables"]["host"]["default"] == "pickups.example.com"


# --- internally consistent ------------------------------------------------------------------------


def test_every_ref_resolves():
    found = refs_in(DOC)
    assert found
    for ref in found:
        try:
            resolve(ref)
        except (KeyError, IndexError, ValueError) as error:
            pytest.fail(f"{ref} does not resolve ({error!r})")


def test_the_channels():
    assert set(DOC["channels"]) == set(CHANNELS)
    for name, channel in DOC["channels"].items():
        assert channel["address"] == f"/ws/{name}/"
        assert channel["title"] and channel["description"]
        assert {ref["$ref"] for ref in channel["servers"]} == {
            "#/servers/local",
            "#/servers/production",
        }
        for key, value in channel["messages"].items():
            assert value == {"$ref": f"#/components/messages/{key}"}, (name, key)
        headers = channel["bindings"]["ws"]["headers"]
        assert headers["type"] == "object"
        assert headers["properties"]["Authorization"]["type"] == "string"
    query = DOC["channels"]["notifications"]["bindings"]["ws"]["query"]
    after = query["properties"]["after"]
    assert after["type"] == "string" and after["description"]
    # The consumer's own rule for ?after: 1 to 19 ASCII digits.
    assert after["pattern"] == f"^{ASCII_DIGITS.pattern}$"
    assert "query" not in DOC["channels"]["pickups"]["bindings"]["ws"]


def test_every_component_message_is_in_a_channel():
    used = set().union(*(channel_message_names(c) for c in CHANNELS))
    assert used == set(messages())


def test_operations_point_into_their_own_channel():
    for key, operation in DOC["operations"].items():
        channel = key.split(".", 1)[0]
        assert channel in CHANNELS, key
        prefix = f"#/channels/{channel}/messages/"
        assert operation["channel"] == {"$ref": f"#/channels/{channel}"}, key
        assert operation["title"] and operation["summary"] and operation["description"], key
        assert all(ref["$ref"].startswith(prefix) for ref in operation["messages"]), key
        if operation["action"] == "receive":
            assert len(operation["messages"]) == 1, key
            reply = operation["reply"]
            assert reply["channel"] == {"$ref": f"#/channels/{channel}"}, key
            assert all(ref["$ref"].startswith(prefix) for ref in reply["messages"]), key
            assert {"$ref": f"{prefix}Error"} in reply["messages"], key
            assert not any(is_request(message_name(ref)) for ref in reply["messages"]), key
        else:
            assert operation["action"] == "send" and "reply" not in operation, key
            assert not any(is_request(message_name(ref)) for ref in operation["messages"]), key


def test_every_channel_message_is_used_by_an_operation():
    for channel in CHANNELS:
        used = set()
        for key, operation in DOC["operations"].items():
            if key.startswith(f"{channel}."):
                used |= {message_name(r) for r in operation["messages"]}
                used |= {message_name(r) for r in operation.get("reply", {}).get("messages", [])}
        assert used == channel_message_names(channel), channel


def test_message_common_fields_and_examples():
    for name, message in messages().items():
        assert message["name"] == name
        assert re.fullmatch(r"[A-Z][A-Za-z]+", name), name
        assert message["title"] and message["summary"], name
        assert message.get("contentType", "application/json") == "application/json"
        assert deref(message["payload"])["type"] == "object", name
        assert message["examples"], f"{name} has no example"
        for example in message["examples"]:
            assert example["name"] and example["summary"] and "payload" in example, name


def test_request_messages():
    for name in messages():
        if not is_request(name):
            continue
        schema = payload(name)
        action = schema["properties"]["action"]
        assert action["type"] == "string" and isinstance(action["const"], str), name
        assert "action" in schema["required"], name
        assert schema["properties"]["request_id"]["$ref"] == "#/components/schemas/RequestId"
        assert "request_id" not in schema["required"], name
        # Top-level keys an action does not know are ignored by the server.
        assert schema.get("additionalProperties", True) is not False, name
        expected = "".join(p.title() for p in action["const"].split("_")) + "Request"
        assert name == expected, name
        for example in messages()[name]["examples"]:
            assert example["payload"]["action"] == action["const"], (name, example["name"])
    request_id = schemas()["RequestId"]
    assert (request_id["type"], request_id["maxLength"]) == ("string", 200)


def test_reply_and_push_messages():
    pushes = push_messages()
    assert pushes == {"Notification", "VendorLocation"}
    for name in messages():
        if is_request(name):
            continue
        schema = payload(name)
        assert schema["additionalProperties"] is False, name
        type_ = schema["properties"]["type"]
        assert type_["type"] == "string" and ("const" in type_) != ("enum" in type_), name
        optional = OPTIONAL_REPLY_KEYS.get(name, set())
        assert set(schema["required"]) == set(schema["properties"]) - optional, name
        if name in pushes:
            assert "request_id" not in schema["properties"], name
        else:
            assert schema["properties"]["request_id"] == {
                "description": schema["properties"]["request_id"]["description"],
                "$ref": "#/components/schemas/ReplyRequestId",
            }, name
        if "const" in type_:
            expected = "".join(p.title() for p in re.split(r"[._]", type_["const"]))
            assert name == expected, name
        for example in messages()[name]["examples"]:
            assert example["payload"]["type"] in types_of(name), (name, example["name"])
    assert schemas()["ReplyRequestId"]["type"] == ["string", "null"]


def test_a_type_belongs_to_one_message_per_channel():
    for channel in CHANNELS:
        seen: dict[str, str] = {}
        for name in frame_messages(channel):
            for type_ in types_of(name):
                assert type_ not in seen, f"{type_} in {seen.get(type_)} and {name}"
                seen[type_] = name


@pytest.mark.parametrize(
    "name, index",
    [
        (name, i)
        for name, m in DOC["components"]["messages"].items()
        for i in range(len(m["examples"]))
    ],
)
def test_every_example_conforms_to_its_message(name, index):
    assert_conforms(name, messages()[name]["examples"][index]["payload"])


# --- in step with the code ---------------------------------------------------------------------


def test_the_actions_are_the_consumers_actions():
    for channel, consumer in CHANNELS.items():
        assert set(request_messages(channel)) == set(consumer.actions), channel
    receive = {k for k, o in DOC["operations"].items() if o["action"] == "receive"}
    assert receive == {f"{c}.{a}" for c, consumer in CHANNELS.items() for a in consumer.actions}
    send = {k for k, o in DOC["operations"].items() if o["action"] == "send"}
    assert send == SEND_OPERATIONS
    for key in receive:
        channel, action = key.split(".", 1)
        operation = DOC["operations"][key]
        [request] = operation["messages"]
        assert message_name(request) == request_messages(channel)[action], key


def test_error_codes_are_the_codes_a_socket_can_send():
    """``ERROR_CODES`` also lists the REST API's own codes, each described as "REST only"; the
    others are those an error frame can carry: the domain errors' codes and internal_error."""
    documented = set(schemas()["ErrorCode"]["enum"])
    assert documented == set(WEBSOCKET_ERROR_CODES)
    assert documented == {c for c, text in ERROR_CODES.items() if not text.startswith("REST only")}
    assert '"code": "internal_error"' in inspect.getsource(websocket)


def test_notification_kinds_are_the_codes_kinds():
    assert schemas()["NotificationKind"]["enum"] == list(KINDS)


def test_pickup_statuses_events_steps_and_roles_are_the_codes():
    assert schemas()["PickupStatus"]["enum"] == [s.value for s in Status]
    assert schemas()["PickupEvent"]["enum"] == list(events.EVENTS)
    assert schemas()["VendorStep"]["enum"] == [s.value for s in VENDOR_STEPS]
    role = schemas()["Rejection"]["properties"]["role"]
    assert role["enum"] == [r.value for r in PickupRejection.Role]


def test_pickup_changed_covers_every_change_reply():
    changes = {"pickup.updated", "pickup.accepted", "pickup.rejected", "pickup.cancelled"}
    assert types_of("PickupChanged") == changes | {f"pickup.{s}" for s in VENDOR_STEPS}


def test_close_codes_are_the_constants():
    constants = {
        name.removeprefix("CLOSE_").lower(): value
        for name, value in vars(websocket).items()
        if name.startswith("CLOSE_") and isinstance(value, int)
    }
    assert len(constants) == 4
    for name, channel in DOC["channels"].items():
        close_codes = channel["x-close-codes"]
        assert {c["name"]: c["code"] for c in close_codes} == constants, name
        assert len(close_codes) == len(constants) and all(c["description"] for c in close_codes)


def _candidates(schema: dict) -> list[dict]:
    """The schema and its oneOf branches, references followed."""
    schema = deref(schema)
    return [schema, *(deref(branch) for branch in schema.get("oneOf", []))]


def _keyword(schema: dict, keyword: str) -> Any:
    for candidate in _candidates(schema):
        if keyword in candidate:
            return candidate[keyword]
    return None


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def assert_input_matches(serializer, schema: dict, *, names=None, required_exempt=()) -> None:
    """The fields of an input serializer against a schema's properties: the names (all of them
    unless ``names``), which are required, and the lengths and ranges the serializer checks."""
    schema = deref(schema)
    properties, required = schema["properties"], set(schema.get("required", []))
    fields = serializer.fields
    assert set(fields) == set(names if names is not None else properties), type(serializer)
    partial = getattr(serializer, "partial", False)
    for name, field in fields.items():
        where = f"{type(serializer).__name__}.{name}"
        prop = properties[name]
        if name not in required_exempt:
            assert (name in required) == (field.required and not partial), where
        for attr, keyword in [("max_length", "maxLength"), ("min_length", "minLength")]:
            limit = getattr(field, attr, None)
            if limit is None or keyword == "minLength":
                continue
            is_list = _keyword(prop, "type") == "array"
            assert _keyword(prop, "maxItems" if is_list else keyword) == limit, where
        min_length = getattr(field, "min_length", None)
        if min_length is not None and _keyword(prop, "type") == "array":
            assert _keyword(prop, "minItems") == min_length, where
        min_value, max_value = getattr(field, "min_value", None), getattr(field, "max_value", None)
        if max_value is not None:
            assert _number(_keyword(prop, "maximum")) == float(max_value), where
        if min_value is not None:
            low = _keyword(prop, "minimum")
            low = _keyword(prop, "exclusiveMinimum") if low is None else low
            assert _number(low) == float(min_value), where
        choices = getattr(field, "choices", None)
        if choices:
            assert set(_keyword(prop, "enum")) == set(choices), where


def test_request_fields_are_the_serializers_fields():
    def props(name):
        return payload(name)["properties"]

    def top(name, *extra):
        return set(props(name)) - {"action", "request_id", *extra}

    pickup_id = PickupIdSerializer()
    for name in ("AcceptRequest", "GetRequest", "SubscribeRequest", "UnsubscribeRequest"):
        assert top(name) == {"pickup_id"}, name
        assert_input_matches(pickup_id, payload(name), names={"pickup_id"})
    for name in ("RejectRequest", "CancelRequest"):
        assert top(name) == {"pickup_id", "reason"}, name
        assert_input_matches(ReasonSerializer(), payload(name), names={"reason"})
    assert top("CreateRequest") == {"idempotency_key", "data"}
    assert_input_matches(
        CreateFrameSerializer(), payload("CreateRequest"), names={"idempotency_key"}
    )
    assert_input_matches(PickupCreateSerializer(), schemas()["PickupInput"])
    assert_input_matches(PickupChangeSerializer(), schemas()["PickupChanges"])
    assert_input_matches(ItemInputSerializer(), schemas()["ItemInput"])
    assert top("UpdateRequest") == {"pickup_id", "data", "status", "items"}
    assert_input_matches(
        VendorStepSerializer(),
        payload("UpdateRequest"),
        names={"status", "items"},
        required_exempt={"status"},  # required in the vendor's form only (oneOf)
    )
    assert_input_matches(ActualWeightSerializer(), schemas()["ActualWeight"])
    assert_input_matches(ListFrameSerializer(), payload("ListRequest"), names=top("ListRequest"))
    assert top("LocationRequest") == {"pickup_id", *LocationInputSerializer().fields}
    assert_input_matches(
        LocationInputSerializer(),
        payload("LocationRequest"),
        names=top("LocationRequest", "pickup_id"),
    )
    assert_input_matches(NearbySerializer(), payload("NearbyRequest"), names=top("NearbyRequest"))
    assert top("PingRequest") == set()
    assert_input_matches(ReplaySerializer(), payload("ReplayRequest"), names=top("ReplayRequest"))
    assert_input_matches(
        MarkReadSerializer(), payload("MarkReadRequest"), names=top("MarkReadRequest")
    )
    assert schemas()["PickupId"]["maximum"] == MAX_ID
    # The two forms of update: the vendor's weighs with picked_up only, and must then.
    customer_form, vendor_form = payload("UpdateRequest")["oneOf"]
    assert customer_form["required"] == ["data"] and vendor_form["required"] == ["status"]
    assert vendor_form["if"]["properties"]["status"]["const"] == Status.PICKED_UP
    assert Status.PICKED_UP in VENDOR_STEPS


@pytest.mark.parametrize(
    "serializer, schema",
    [
        (PickupItemSerializer, "PickupItem"),
        (ReceiptSerializer, "Receipt"),
        (ReceiptLineSerializer, "ReceiptLine"),
        (PositionSerializer, "Position"),
        (RejectionSerializer, "Rejection"),
        (TransitionSerializer, "Transition"),
        (VendorMaterialSerializer, "VendorMaterial"),
        (VendorNearbySerializer, "NearbyVendor"),
        (NotificationSerializer, "Notification"),
    ],
)
def test_output_objects_have_the_serializers_keys(serializer, schema):
    described = schemas()[schema]
    assert set(described["properties"]) == set(serializer().fields), schema
    assert set(described["required"]) == set(described["properties"]), schema
    assert described["additionalProperties"] is False


def test_the_pickup_has_the_serializers_keys():
    pickup = schemas()["Pickup"]
    fields = PickupSerializer.Meta.fields
    assert list(pickup["properties"]) == fields
    assert set(pickup["required"]) == set(fields) - CUSTOMER_ONLY
    assert pickup["additionalProperties"] is False
    # The customer-only keys come all together or not at all.
    assert {k: set(v) for k, v in pickup["dependencies"].items()} == {
        key: CUSTOMER_ONLY - {key} for key in CUSTOMER_ONLY
    }


def test_positions_are_sent_with_the_positions_keys():
    position = set(schemas()["Position"]["properties"])
    assert set(payload("LocationRecorded")["properties"]) == {
        "type",
        "request_id",
        "pickup_id",
        *position,
    }
    assert set(payload("VendorLocation")["properties"]) == {"type", "pickup_id", *position}


def test_limits_are_the_settings():
    assert (
        schemas()["PickupInput"]["properties"]["items"]["maxItems"]
        == django_settings.PICKUP_MAX_ITEMS
    )
    assert (
        payload("ListRequest")["properties"]["limit"]["maximum"]
        == django_settings.PICKUP_LIST_LIMIT
    )
    assert (
        payload("PickupList")["properties"]["pickups"]["maxItems"]
        == django_settings.PICKUP_LIST_LIMIT
    )


# --- true to the real frames ---------------------------------------------------------------------


class Socket:
    """A socket on one channel that keeps every frame, both ways, for the document checks."""

    def __init__(self, channel: str, communicator) -> None:
        self.channel = channel
        self.communicator = communicator
        #: (frame, whether the document's request message must accept it)
        self.sent: list[tuple[dict, bool]] = []
        #: (frame, what it answers: an action, "push", "connect", or None for a refused frame)
        self.received: list[tuple[dict, str | None]] = []

    async def ask(self, frame: dict | str, *, conforms: bool = True) -> dict:
        """Send a frame and read its reply. ``conforms=False``: a frame the server refuses as
        malformed (bad_request, validation_error), which the document must refuse too."""
        if isinstance(frame, dict):
            self.sent.append((frame, conforms))
            text = json.dumps(frame)
            request_id = frame.get("request_id")
            if not (isinstance(request_id, str) and len(request_id) <= 200):
                request_id = None
            action = frame.get("action")
            answering = action if action in CHANNELS[self.channel].actions else None
        else:
            assert not conforms, "a raw text frame is never a valid request"
            text, request_id, answering = frame, None, None
        await self.communicator.send_to(text_data=text)
        reply = await self.next(answering)
        assert list(reply)[:2] == ["type", "request_id"], reply
        assert reply["request_id"] == request_id, reply
        return reply

    async def next(self, answering: str | None) -> dict:
        frame = json.loads(await self.communicator.receive_from(timeout=5))
        self.received.append((frame, answering))
        return frame

    async def pushed(self) -> dict:
        frame = await self.next("push")
        assert list(frame)[0] == "type" and "request_id" not in frame, frame
        return frame

    async def close(self) -> None:
        assert await self.communicator.receive_nothing(timeout=0.1), "a frame was left unread"
        await self.communicator.disconnect()


def operation_messages(key: str, reply: bool) -> set[str]:
    operation = DOC["operations"][key]
    refs = operation["reply"]["messages"] if reply else operation["messages"]
    return {message_name(ref) for ref in refs}


def check_frames(sockets: list[Socket]) -> set[str]:
    """Every frame against the document; returns the reply and push messages seen."""
    seen = set()
    for socket in sockets:
        channel = socket.channel
        requests = request_messages(channel)
        for frame, conforms in socket.sent:
            name = requests.get(frame.get("action"))
            if conforms:
                assert name, f"no request message for {frame}"
                assert_conforms(name, frame)
            else:
                assert name is None or problems(name, frame), (
                    f"{name} accepts {json.dumps(frame)}, which the server refused as malformed"
                )
        pushes = set().union(
            *(
                operation_messages(key, reply=False)
                for key in SEND_OPERATIONS
                if key.startswith(f"{channel}.") and key != "notifications.connect"
            )
        )
        for frame, answering in socket.received:
            matching = [n for n in frame_messages(channel) if frame["type"] in types_of(n)]
            assert len(matching) == 1, f"{channel}: {frame['type']} matches {matching}"
            [name] = matching
            assert_conforms(name, frame)
            if answering == "push":
                assert name in pushes, (name, frame)
            elif answering == "connect":
                assert name in operation_messages("notifications.connect", reply=False), frame
            elif answering is None:
                assert name == "Error", frame
            else:
                assert name in operation_messages(f"{channel}.{answering}", reply=True), (
                    answering,
                    frame,
                )
            seen.add(name)
    return seen


def window(hours: int) -> str:
    return (timezone.now() + timedelta(hours=hours)).isoformat()


def create_frame(request_id: str, items: list[dict], **extra) -> dict:
    return {
        "action": "create",
        "request_id": request_id,
        "data": {
            "address": "Alexanderplatz 1, 10178 Berlin",
            "latitude": HOME[0],
            "longitude": HOME[1],
            "window_start": window(20),
            "window_end": window(23),
            "items": items,
            "notes": "Ring twice; the goods are in the courtyard.",
            "contact_phone": "+49 30 1234567",
        },
        **extra,
    }


@pytest.fixture
def world(db, settings):
    # Long enough that a slow run cannot outlast it between the two positions below.
    settings.LOCATION_MIN_INTERVAL_SECONDS = 60
    django_cache.clear()
    MaterialFactory(code="glass")  # known, but collected by no vendor
    alice = UserFactory(username="alice", first_name="Alice", last_name="Customer")
    victor = UserFactory(username="victor")
    vera = UserFactory(username="vera")
    VendorFactory(name="Victor Recycling", materials=["paper", "metal"], member=victor)
    VendorFactory(
        name="Vera Metals", latitude=HOME[0] + 0.03, materials=["paper", "metal"], member=vera
    )
    yield {
        "alice": alice,
        "vera": vera,
        "alice_key": token_for(alice),
        "victor_key": token_for(victor),
        "vera_key": token_for(vera),
    }
    django_cache.clear()


async def replayed_until_done(socket: Socket, answering: str) -> tuple[list[dict], dict]:
    """The notification frames a replay sends, and the replay.done that ends it."""
    notifications = []
    while True:
        frame = await socket.next("push")
        if frame["type"] != "notification":
            socket.received[-1] = (frame, answering)
            return notifications, frame
        notifications.append(frame["notification"])


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("worker_thread_connections")
async def test_the_real_frames_are_the_documented_ones(world, monkeypatch):
    alice = Socket("pickups", await connect("/ws/pickups/", world["alice_key"]))
    victor = Socket("pickups", await connect("/ws/pickups/", world["victor_key"]))
    vera = Socket("pickups", await connect("/ws/pickups/", world["vera_key"]))

    assert (await alice.ask({"action": "ping", "request_id": "p-1"}))["type"] == "pong"

    # Alice asks for a pickup; it is offered to Victor, the nearest vendor.
    items = [
        {"material": "paper", "estimated_kg": "40"},
        {"material": "metal", "estimated_kg": 12.5},
    ]
    created = await alice.ask(create_frame("c-1", items, idempotency_key="alice-2026-001"))
    assert (created["type"], created["created"]) == ("pickup.created", True)
    first = created["pickup"]["id"]
    again = await alice.ask(create_frame("c-2", items, idempotency_key="alice-2026-001"))
    assert (again["created"], again["pickup"]["id"]) == (False, first)

    offer = await victor.ask({"action": "get", "request_id": "g-1", "pickup_id": first})
    assert offer["type"] == "pickup.detail" and offer["pickup"]["status"] == "offered"
    assert offer["pickup"]["customer"] is None and not CUSTOMER_ONLY & set(offer["pickup"])

    # Victor declines; the pickup goes to Vera, who accepts.
    rejected = await victor.ask(
        {"action": "reject", "request_id": "r-1", "pickup_id": first, "reason": "Truck full."}
    )
    assert rejected["type"] == "pickup.rejected"
    gone = await victor.ask({"action": "subscribe", "request_id": "sub-2", "pickup_id": first})
    assert gone["code"] == "not_found"
    accepted = await vera.ask({"action": "accept", "request_id": "a-1", "pickup_id": first})
    assert accepted["type"] == "pickup.accepted"
    assert accepted["pickup"]["customer"]["name"] == "Alice Customer"

    # Alice edits it; the inside of data is strict.
    edit = {"action": "update", "request_id": "u-1", "pickup_id": first}
    updated = await alice.ask(
        {**edit, "data": {"notes": "Gate code 4711.", "window_end": window(24)}}
    )
    assert updated["type"] == "pickup.updated"
    unknown = await alice.ask(
        {**edit, "request_id": "u-2", "data": {"colour": "red"}}, conforms=False
    )
    assert unknown["errors"] == {"colour": ["Unknown field."]}
    nested = await alice.ask(
        {
            **edit,
            "request_id": "u-3",
            "data": {"items": [{"material": "paper", "estimated_kg": "1", "colour": "red"}]},
        },
        conforms=False,
    )
    assert nested["errors"] == {"items": {"0": {"colour": ["Unknown field."]}}}
    nothing = await alice.ask({**edit, "request_id": "u-4", "data": {}}, conforms=False)
    assert nothing["code"] == "validation_error"

    # Alice follows it; Vera sets off and reports where she is.
    subscribed = await alice.ask({"action": "subscribe", "request_id": "sub-1", "pickup_id": first})
    assert (subscribed["status"], subscribed["vendor_position"]) == ("accepted", None)
    position = {"action": "location", "pickup_id": first, "lat": 52.5163, "lon": 13.4021}
    early = await vera.ask({**position, "request_id": "loc-0"})
    assert early["code"] == "invalid_transition"
    step = {"action": "update", "pickup_id": first}
    en_route = await vera.ask({**step, "request_id": "s-1", "status": "en_route"})
    assert en_route["type"] == "pickup.en_route"
    recorded = await vera.ask({**position, "request_id": "loc-1", "heading": 48.5, "speed": 8.3})
    assert recorded["type"] == "location.recorded"
    pushed = await alice.pushed()
    assert pushed["type"] == "vendor.location"
    assert {k: v for k, v in recorded.items() if k not in ("type", "request_id")} == {
        k: v for k, v in pushed.items() if k != "type"
    }
    too_soon = await vera.ask({**position, "request_id": "loc-2"})
    assert too_soon["code"] == "rate_limited"
    as_text = await vera.ask({**position, "request_id": "loc-3", "lat": "52.5"}, conforms=False)
    assert as_text["code"] == "validation_error"
    not_hers = await alice.ask({**position, "request_id": "loc-4"})
    assert not_hers["code"] == "forbidden"
    on_the_way = await alice.ask({"action": "cancel", "request_id": "x-0", "pickup_id": first})
    assert on_the_way["code"] == "invalid_transition"
    unsubscribed = await alice.ask(
        {"action": "unsubscribe", "request_id": "uns-1", "pickup_id": first}
    )
    assert unsubscribed == {
        "type": "pickup.unsubscribed",
        "request_id": "uns-1",
        "pickup_id": first,
    }

    # Vera weighs (every item, or it is refused), picks up and completes.
    weights = [{"material": "paper", "actual_kg": "38.5"}, {"material": "metal", "actual_kg": 13.2}]
    partly = await vera.ask(
        {**step, "request_id": "s-2", "status": "picked_up", "items": weights[:1]}
    )
    assert partly["errors"] == {"items": ["Weigh every item when picking up; missing: metal."]}
    no_weights = await vera.ask(
        {**step, "request_id": "s-3", "status": "picked_up"}, conforms=False
    )
    assert no_weights["code"] == "validation_error"
    picked_up = await vera.ask(
        {**step, "request_id": "s-4", "status": "picked_up", "items": weights}
    )
    assert picked_up["type"] == "pickup.picked_up"
    completed = await vera.ask({**step, "request_id": "s-5", "status": "completed"})
    assert completed["type"] == "pickup.completed"

    # Both views of the completed pickup, and the lists.
    customer_view = await alice.ask({"action": "get", "request_id": "g-2", "pickup_id": first})
    assert CUSTOMER_ONLY <= set(customer_view["pickup"])
    assert customer_view["pickup"]["vendor_position"] is not None
    vendor_view = await vera.ask({"action": "get", "request_id": "g-3", "pickup_id": first})
    assert not CUSTOMER_ONLY & set(vendor_view["pickup"]) and vendor_view["pickup"]["customer"]
    listed = await alice.ask(
        {"action": "list", "request_id": "l-1", "status": "completed", "limit": 10}
    )
    assert [p["id"] for p in listed["pickups"]] == [first]
    assert (await vera.ask({"action": "list", "request_id": "l-2"}))["type"] == "pickup.list"
    assert listed["pickups"][0]["receipt"] is not None, "the receipt is issued eagerly in tests"

    nearby = await alice.ask(
        {
            "action": "nearby",
            "request_id": "n-1",
            "lat": HOME[0],
            "lon": HOME[1],
            "radius_km": 5,
            "material": "metal",
        }
    )
    assert [v["name"] for v in nearby["vendors"]] == ["Victor Recycling", "Vera Metals"]
    out_of_range = await alice.ask(
        {"action": "nearby", "request_id": "n-2", "lat": 91, "lon": 13.4, "radius_km": 0},
        conforms=False,
    )
    assert set(out_of_range["errors"]) == {"lat", "radius_km"}

    # A second pickup: Victor accepts, Alice refuses him, it goes to Vera, Alice cancels.
    second_frame = create_frame("c-3", [{"material": "paper", "estimated_kg": 25}])
    second = (await alice.ask(second_frame))["pickup"]["id"]
    own = await alice.ask({"action": "accept", "request_id": "a-2", "pickup_id": second})
    assert own["code"] == "forbidden"
    assert (await victor.ask({"action": "accept", "request_id": "a-3", "pickup_id": second}))[
        "type"
    ] == "pickup.accepted"
    refused = await alice.ask(
        {"action": "reject", "request_id": "r-2", "pickup_id": second, "reason": "Rather Vera."}
    )
    assert refused["type"] == "pickup.rejected" and refused["pickup"]["rejections"]
    let_go = await victor.ask({"action": "cancel", "request_id": "x-1", "pickup_id": second})
    assert let_go["code"] == "not_found"
    by_vendor = await vera.ask({"action": "cancel", "request_id": "x-2", "pickup_id": second})
    assert by_vendor["code"] == "forbidden"
    cancel = {"action": "cancel", "pickup_id": second, "reason": "Sold it privately."}
    cancelled = await alice.ask({**cancel, "request_id": "x-3"})
    assert cancelled["type"] == "pickup.cancelled"
    assert (await alice.ask({**cancel, "request_id": "x-4"}))["code"] == "invalid_transition"

    # A pickup no vendor can take (pickup.unassigned), and malformed frames.
    unassigned = await alice.ask(create_frame("c-4", [{"material": "glass", "estimated_kg": 3}]))
    assert unassigned["type"] == "pickup.created"
    missing = await alice.ask({"action": "get", "request_id": "g-4", "pickup_id": 999999})
    assert missing["code"] == "not_found"
    wrong = await alice.ask(
        {"action": "get", "request_id": "g-5", "pickup_id": "one"}, conforms=False
    )
    assert wrong["errors"] == {"pickup_id": ["A valid integer is required."]}
    empty = await alice.ask({"action": "create", "request_id": "c-5", "data": {}}, conforms=False)
    assert empty["code"] == "validation_error"
    assert (await alice.ask({"action": "fly", "request_id": "e-4"}, conforms=False))[
        "code"
    ] == "bad_request"
    assert (await alice.ask({"request_id": "e-5"}, conforms=False))["code"] == "bad_request"
    assert (await alice.ask("not json", conforms=False))["code"] == "bad_request"
    bad_id = await alice.ask({"action": "ping", "request_id": 5}, conforms=False)
    assert bad_id["code"] == "bad_request"

    def broken(**kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(selectors, "pickup_get", broken)
    internal = await alice.ask({"action": "get", "request_id": "g-6", "pickup_id": first})
    assert set(internal) == {"type", "request_id", "code", "message"}
    assert internal["code"] == "internal_error"
    monkeypatch.undo()

    # --- the notifications endpoint ---
    await database_sync_to_async(vendor_digests_send)(day=timezone.now().date())

    inbox = Socket("notifications", await connect("/ws/notifications/?after=0", world["alice_key"]))
    replayed, done = await replayed_until_done(inbox, "connect")
    ids = [n["id"] for n in replayed]
    assert ids == list(range(1, len(ids) + 1)) and done["last_id"] == ids[-1]
    assert done["request_id"] is None
    kinds = {n["kind"] for n in replayed}
    assert {"pickup.created", "pickup.offered", "pickup.unassigned", "receipt.issued"} <= kinds

    vera_inbox = Socket(
        "notifications", await connect("/ws/notifications/?after=0", world["vera_key"])
    )
    vera_replayed, _ = await replayed_until_done(vera_inbox, "connect")
    assert {"pickup.offered", "pickup.completed", "vendor.digest"} <= {
        n["kind"] for n in vera_replayed
    }

    bad_after = Socket(
        "notifications", await connect("/ws/notifications/?after=-1", world["victor_key"])
    )
    refused_after = await bad_after.next("connect")
    assert (refused_after["code"], refused_after["request_id"]) == ("bad_request", None)
    assert (await bad_after.ask({"action": "ping", "request_id": "p-3"}))["type"] == "pong"

    # Live: a new pickup's notifications, pushed through the channel layer (once each).
    third = await alice.ask(create_frame("c-6", [{"material": "paper", "estimated_kg": 5}]))
    assert third["type"] == "pickup.created"
    new = await database_sync_to_async(notifications_after)(
        user_id=world["alice"].pk, after=ids[-1], limit=100
    )
    assert new
    for notification in [*new, new[0]]:  # the last one a duplicate, dropped
        await get_channel_layer().group_send(
            user_group(world["alice"].pk),
            {"type": "notification.message", "notification": notification},
        )
    live = [(await inbox.pushed())["notification"] for _ in new]
    assert live == new

    latest = new[-1]["id"]
    replay = {"action": "replay", "request_id": "rp-1", "after": latest - 2}
    await inbox.communicator.send_to(text_data=json.dumps(replay))
    inbox.sent.append((replay, True))
    again_replayed, replay_done = await replayed_until_done(inbox, "replay")
    assert [n["id"] for n in again_replayed] == [latest - 1, latest]
    assert (replay_done["request_id"], replay_done["last_id"]) == ("rp-1", latest)
    read = await inbox.ask({"action": "mark_read", "request_id": "m-1", "ids": [1, 2, 3, 999]})
    assert read["type"] == "notifications.read" and read["ids"] == [1, 2, 3]
    assert (await inbox.ask({"action": "ping", "request_id": "p-2"}))["type"] == "pong"
    negative = await inbox.ask(
        {"action": "replay", "request_id": "rp-2", "after": -1}, conforms=False
    )
    assert negative["code"] == "validation_error"
    none = await inbox.ask({"action": "mark_read", "request_id": "m-2", "ids": []}, conforms=False)
    assert none["code"] == "validation_error"

    sockets = [alice, victor, vera, inbox, vera_inbox, bad_after]
    for socket in sockets:
        await socket.close()

    seen = check_frames(sockets)
    documented = set().union(*(frame_messages(c) for c in CHANNELS))
    assert seen == documented, f"never sent: {documented - seen}"
    changed = {f["type"] for s in sockets for f, _ in s.received} & types_of("PickupChanged")
    assert changed == types_of("PickupChanged")
