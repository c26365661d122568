"""Other systems receive every transition of a pickup from RabbitMQ: a queue bound to the stack's
events exchange gets create through complete, in order, from the real processes."""

import json
import time

import pika
import pytest
from jsonschema import Draft202012Validator

from pickups.events import SCHEMA
from tests.e2e.client import http, pickup_data
from tests.e2e.stack import wait_until

pytestmark = pytest.mark.e2e

MEMBERS = {"Victor Recycling": "victor", "Vera Metals": "vera", "Vince Scrap & E-waste": "vince"}
VALIDATOR = Draft202012Validator(SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER)


class EventQueue:
    """An exclusive queue bound to the stack's exchange with ``pickup.#``, as an ERP would."""

    def __init__(self, exchange: str) -> None:
        self.connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1"))
        self.channel = self.connection.channel()
        # Declared as the platform declares it (durable topic), so binding works before the
        # platform's first publish.
        self.channel.exchange_declare(exchange, exchange_type="topic", durable=True)
        self.queue = self.channel.queue_declare("", exclusive=True).method.queue
        self.channel.queue_bind(self.queue, exchange, routing_key="pickup.#")
        self.seen: list[tuple[str, pika.BasicProperties, dict, float]] = []

    def until(self, pickup_id: int, event: str, timeout: float = 20) -> list[tuple]:
        """Every message about ``pickup_id`` up to its ``event``, as (routing key, properties,
        body, when it arrived); fails after ``timeout`` seconds without it."""
        deadline = time.monotonic() + timeout
        consuming = False
        while not any(
            b["pickup_id"] == pickup_id and b["event"] == event for _, _, b, _ in self.seen
        ):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                got = [(b["pickup_id"], b["event"]) for _, _, b, _ in self.seen]
                raise AssertionError(f"no {event} of pickup {pickup_id} within {timeout} s: {got}")
            consuming = True
            method, properties, body = next(
                self.channel.consume(self.queue, auto_ack=True, inactivity_timeout=remaining)
            )
            if method is not None:
                self.seen.append(
                    (method.routing_key, properties, json.loads(body), time.monotonic())
                )
        if consuming:
            self.channel.cancel()
        return [m for m in self.seen if m[2]["pickup_id"] == pickup_id]

    def close(self) -> None:
        self.connection.close()


@pytest.fixture
def events(stack):
    queue = EventQueue(f"{stack.prefix}procurement.events")
    yield queue
    queue.close()


def test_a_bound_queue_receives_a_whole_lifecycle_in_order(stack, tokens, events):
    status, created, _ = http(stack, "POST", "/api/pickups/", tokens["alice"], pickup_data())
    assert status == 201, created
    pickup_id = created["id"]

    # The assignment runs in the worker; the event says which vendor was offered the pickup.
    [*_, (_, _, assigned, _)] = events.until(pickup_id, "assign")
    member = tokens[MEMBERS[assigned["vendor"]["name"]]]
    steps = (
        ("accept", "accept", None),
        ("status", "start", {"status": "en_route"}),
        (
            "status",
            "pick_up",
            {"status": "picked_up", "items": [{"material": "paper", "actual_kg": "37.40"}]},
        ),
        ("status", "complete", {"status": "completed"}),
    )
    latencies = []
    for action, event, body in steps:
        sent = time.monotonic()
        status, reply, _ = http(stack, "POST", f"/api/pickups/{pickup_id}/{action}/", member, body)
        assert status == 200, reply
        answered = time.monotonic()
        arrived = events.until(pickup_id, event)[-1][3]
        latencies.append((answered - sent, arrived - sent))

    messages = events.until(pickup_id, "complete")
    bodies = [body for _, _, body, _ in messages]
    assert [body["event"] for body in bodies] == [
        "create",
        "assign",
        "accept",
        "start",
        "pick_up",
        "complete",
    ]
    assert [key for key, _, _, _ in messages] == [f"pickup.{b['event']}" for b in bodies]
    correlation = {body["correlation_id"] for body in bodies}
    assert len(correlation) == 1
    for _, properties, body, _ in messages:
        assert not list(VALIDATOR.iter_errors(body)), body
        assert properties.correlation_id == body["correlation_id"]
        assert properties.message_id == body["id"]
        assert properties.delivery_mode == 2 and properties.content_type == "application/json"
    assert len({body["id"] for body in bodies}) == 6
    versions = [body["version"] for body in bodies]
    assert versions == sorted(versions) and len(set(versions)) == 6
    assert bodies[0]["actor"]["role"] == "customer"
    assert bodies[1]["actor"]["role"] == "system"
    assert {b["actor"]["role"] for b in bodies[2:]} == {"vendor"}
    assert bodies[4]["items"][0]["actual_kg"] == "37.40"
    finish = bodies[-1]
    assert finish["to_status"] == "completed" and finish["currency"] == "EUR"

    # The receipt, issued by the worker right after, shows the total the event announced.
    path = f"/api/pickups/{pickup_id}/receipt/"
    wait_until(
        lambda: http(stack, "GET", path, tokens["alice"])[0] == 200,
        timeout=10,
        what="the receipt",
    )
    assert http(stack, "GET", path, tokens["alice"])[1]["total"] == finish["total"]
    print(
        "\nrequest sent to reply / to its event received (accept, start, pick_up, complete): "
        + ", ".join(f"{a * 1000:.0f}/{b * 1000:.0f} ms" for a, b in latencies)
    )
