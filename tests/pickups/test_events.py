"""Every pickup transition stores its domain event in the same transaction (the outbox), with a
payload that the published JSON schema describes."""

import json
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import time_machine
from django.db import transaction
from django.utils import timezone
from jsonschema import Draft202012Validator

from pickups import events, outbox, receipts, services, tasks
from pickups.models import DomainEvent, PickupRequest, PickupTransition
from pickups.transitions import Event, Status
from procurement_system.errors import ValidationError
from tests.e2e.stack import free_port
from tests.factories import HOME, UserFactory, VendorFactory, create_pickup, member_of

pytestmark = pytest.mark.django_db

VALIDATOR = Draft202012Validator(events.SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER)


def stored(pickup: PickupRequest) -> list[DomainEvent]:
    return list(DomainEvent.objects.filter(pickup_id=pickup.pk).order_by("id"))


def names(pickup: PickupRequest) -> list[str]:
    return [e.event for e in stored(pickup)]


def valid(payload: dict) -> dict:
    errors = sorted(VALIDATOR.iter_errors(payload), key=str)
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors]
    return payload


def refreshed(pickup: PickupRequest) -> PickupRequest:
    return PickupRequest.objects.get(pk=pickup.pk)


def later(seconds: float):
    return time_machine.travel(timezone.now() + timedelta(seconds=seconds), tick=False)


@pytest.fixture
def near():
    return VendorFactory(name="Near", latitude=HOME[0] + 0.005, materials=["paper", "metal"])


@pytest.fixture
def far():
    return VendorFactory(name="Far", latitude=HOME[0] + 0.05, materials=["paper", "metal"])


@pytest.fixture
def offered(customer, near, far, run_on_commit):
    return refreshed(run_on_commit(create_pickup, customer, materials=("paper", "metal")))


def complete(pickup: PickupRequest, by, run_on_commit) -> PickupRequest:
    run_on_commit(services.pickup_accept, pickup_id=pickup.pk, by=by)
    for status, weights in (
        ("en_route", None),
        ("picked_up", {"paper": Decimal("10.25"), "metal": Decimal("3.3")}),
        ("completed", None),
    ):
        run_on_commit(
            services.pickup_advance,
            pickup_id=pickup.pk,
            by=by,
            status=status,
            actual_weights=weights,
        )
    return refreshed(pickup)


# --- the schema -----------------------------------------------------------------------------


def test_the_schema_is_valid_and_names_every_event_and_status():
    Draft202012Validator.check_schema(events.SCHEMA)
    assert events.SCHEMA["properties"]["schema"]["const"] == events.SCHEMA_NAME
    assert events.SCHEMA["properties"]["event"]["enum"] == list(events.EVENTS)
    assert events.SCHEMA["$defs"]["status"]["enum"] == [s.value for s in Status]
    assert set(events.EVENTS) == {"create"} | {e.value for e in Event}


def test_the_schema_refuses_what_is_not_an_event():
    assert not VALIDATOR.is_valid({"schema": events.SCHEMA_NAME})
    good = {
        "schema": events.SCHEMA_NAME,
        "id": "6f1c7a52-9d2e-4f7e-8d0c-3b2f1a0e9c11",
        "event": "complete",
        "occurred_at": "2026-11-21T10:15:00.123456Z",
        "pickup_id": 1,
        "correlation_id": "0b6c1a7e-54a1-4f0e-9a43-6f3f8f0e2b10",
        "version": 6,
        "from_status": "picked_up",
        "to_status": "completed",
        "customer_id": 1,
        "vendor": {"id": 2, "name": "Vera Metals"},
        "actor": {"id": 3, "role": "vendor"},
        "items": [
            {
                "material": "paper",
                "estimated_kg": "40.00",
                "actual_kg": "37.40",
                "price_per_kg": "0.12",
            }
        ],
        "total": "4.49",
        "currency": "EUR",
    }
    valid(good)
    for broken in (
        {**good, "event": "explode"},
        {**good, "id": "not-a-uuid"},
        {**good, "occurred_at": "yesterday"},
        {**good, "to_status": "lost"},
        {**good, "items": [{**good["items"][0], "actual_kg": 37.4}]},  # a float, not a string
        {k: v for k, v in good.items() if k != "total"},  # complete without its total
        {k: v for k, v in good.items() if k != "correlation_id"},
    ):
        assert not VALIDATOR.is_valid(broken), broken


# --- one event per transition, in the same transaction --------------------------------------


def test_a_full_lifecycle_stores_one_event_per_transition_in_order(
    offered, customer, near, run_on_commit
):
    done = complete(offered, member_of(near), run_on_commit)
    history = list(PickupTransition.objects.filter(pickup=done).order_by("id"))
    rows = stored(done)
    assert [r.event for r in rows] == [
        "create",
        "assign",
        "accept",
        "start",
        "pick_up",
        "complete",
    ]
    assert [(r.event, r.payload["from_status"], r.payload["to_status"]) for r in rows] == [
        (t.event, t.from_status or None, t.to_status) for t in history
    ]
    versions = [r.payload["version"] for r in rows]
    assert versions == sorted(set(versions)) and versions[-1] == done.version
    for row in rows:
        payload = valid(row.payload)
        assert row.routing_key == f"pickup.{row.event}"
        assert payload["id"] == str(row.event_id)
        assert payload["event"] == row.event
        assert payload["pickup_id"] == row.pickup_id == done.pk
        assert payload["correlation_id"] == str(done.correlation_id)
        assert payload["customer_id"] == customer.pk
        assert row.published_at is None and row.attempts == 0
    assert len({r.event_id for r in rows}) == len(rows)


def test_each_payload_tells_who_did_it_and_the_pickup_as_the_transition_left_it(
    offered, customer, near, run_on_commit
):
    done = complete(offered, member_of(near), run_on_commit)
    create, assign, accept, start, pick_up, finish = (valid(r.payload) for r in stored(done))

    assert create["from_status"] is None and create["to_status"] == "pending"
    assert create["actor"] == {"id": customer.pk, "role": "customer"}
    assert create["vendor"] is None
    assert create["occurred_at"] == done.created_at.isoformat().replace("+00:00", "Z")
    assert [i["price_per_kg"] for i in create["items"]] == [None, None]

    # The offer carries the vendor's quoted prices; the platform made it.
    assert assign["actor"] == {"id": None, "role": "system"}
    assert assign["vendor"] == {"id": near.pk, "name": "Near"}
    assert [(i["material"], i["estimated_kg"], i["price_per_kg"]) for i in assign["items"]] == [
        ("paper", "12.50", "0.10"),
        ("metal", "12.50", "0.10"),
    ]
    for payload in (accept, start, pick_up, finish):
        assert payload["actor"] == {"id": member_of(near).pk, "role": "vendor"}
        assert payload["vendor"] == {"id": near.pk, "name": "Near"}

    # The weights are in from pick_up on, at two decimals as stored.
    assert [i["actual_kg"] for i in start["items"]] == [None, None]
    assert [i["actual_kg"] for i in pick_up["items"]] == ["10.25", "3.30"]
    assert "total" not in pick_up

    # Completion tells the total the receipt shows.
    receipt, _ = receipts.receipt_issue(pickup_id=done.pk)
    assert (finish["total"], finish["currency"]) == (str(receipt.total), receipt.currency)
    assert finish["total"] == "1.36"  # 10.25 * 0.10 = 1.025 -> 1.03, + 3.30 * 0.10 = 0.33


def test_rejections_timeouts_and_their_vendors(offered, customer, near, far, run_on_commit):
    # near declines; far times out; nobody is left, so the pickup is unassigned.
    run_on_commit(services.pickup_reject, pickup_id=offered.pk, by=member_of(near), reason="full")
    pickup = refreshed(offered)
    assert pickup.vendor == far
    with later((pickup.offer_expires_at - timezone.now()).total_seconds() + 1):
        run_on_commit(tasks.expire_offers_task)
    rows = {}
    for row in stored(offered):
        rows.setdefault(row.event, []).append(valid(row.payload))
    assert names(offered) == [
        "create",
        "assign",
        "vendor_reject",
        "assign",
        "offer_timeout",
        "no_vendor",
    ]
    [declined] = rows["vendor_reject"]
    assert declined["vendor"]["id"] == near.pk  # the vendor let go
    assert declined["actor"] == {"id": member_of(near).pk, "role": "vendor"}
    assert (declined["from_status"], declined["to_status"]) == ("offered", "pending")
    [timed_out] = rows["offer_timeout"]
    assert timed_out["vendor"]["id"] == far.pk
    assert timed_out["actor"]["role"] == "system"
    [nobody] = rows["no_vendor"]
    assert nobody["vendor"] is None and nobody["to_status"] == "unassigned"


def test_customer_reject_retry_cancel_and_expire(customer, near, run_on_commit, settings):
    first = refreshed(run_on_commit(create_pickup, customer))
    run_on_commit(services.pickup_accept, pickup_id=first.pk, by=member_of(near))
    run_on_commit(services.pickup_reject, pickup_id=first.pk, by=customer, reason="too late")
    # near refused by the customer, nobody else around: unassigned; cancelled by the customer.
    run_on_commit(services.pickup_cancel, pickup_id=first.pk, by=customer)
    assert names(first) == ["create", "assign", "accept", "customer_reject", "no_vendor", "cancel"]
    refused, _, cancelled = (valid(r.payload) for r in stored(first)[3:])
    assert refused["actor"] == {"id": customer.pk, "role": "customer"}
    assert refused["vendor"]["id"] == near.pk
    assert cancelled["from_status"] == "unassigned" and cancelled["vendor"] is None

    # Moved while unassigned: retried at once, and offered to the vendor now in reach.
    second = refreshed(run_on_commit(create_pickup, customer, location=(HOME[0] + 1, HOME[1])))
    assert second.status == "unassigned"
    run_on_commit(
        services.pickup_update_details,
        pickup_id=second.pk,
        by=customer,
        changes={"latitude": HOME[0], "longitude": HOME[1]},
    )
    assert names(second) == ["create", "no_vendor", "retry", "assign"]
    retry = valid(stored(second)[2].payload)
    assert retry["actor"] == {"id": customer.pk, "role": "customer"}

    # Its window ends while offered: the sweep expires it, letting the vendor go.
    with later((second.window_end - timezone.now()).total_seconds() + 1):
        run_on_commit(tasks.expire_pickups_task)
    expired = valid(stored(second)[-1].payload)
    assert expired["event"] == "expire" and expired["actor"]["role"] == "system"
    assert expired["vendor"]["id"] == near.pk and expired["to_status"] == "expired"


def test_an_operator_is_told_apart(customer, near, run_on_commit):
    """Operators act through the admin; should one ever make a transition, the event says so."""
    operator = UserFactory(username="olga", is_staff=True)
    pickup = refreshed(run_on_commit(create_pickup, customer))
    with transaction.atomic():
        locked = services._locked(pickup.pk)
        services._change(locked, Event.EXPIRE, actor=operator, vendor=None)
    assert valid(stored(pickup)[-1].payload)["actor"] == {"id": operator.pk, "role": "operator"}


def test_a_change_that_fails_stores_no_event(offered, near, run_on_commit):
    before = names(offered)
    run_on_commit(services.pickup_accept, pickup_id=offered.pk, by=member_of(near))
    run_on_commit(
        services.pickup_advance, pickup_id=offered.pk, by=member_of(near), status="en_route"
    )
    with pytest.raises(ValidationError):  # every item must be weighed
        services.pickup_advance(
            pickup_id=offered.pk,
            by=member_of(near),
            status="picked_up",
            actual_weights={"paper": Decimal("1")},
        )
    assert names(offered) == [*before, "accept", "start"]
    assert refreshed(offered).status == "en_route"


def test_a_transaction_rolled_back_takes_its_events_with_it(customer, near):
    with pytest.raises(RuntimeError), transaction.atomic():
        create_pickup(customer)
        assert DomainEvent.objects.count() == 1
        raise RuntimeError("the request failed after the change")
    assert DomainEvent.objects.count() == 0


def test_an_event_for_every_transition_in_every_scenario(customer, near, far, run_on_commit):
    """Every event the state machine has is stored by some scenario above; this one checks the
    rule itself: each transition written anywhere has exactly its one event."""
    offered = refreshed(run_on_commit(create_pickup, customer))
    run_on_commit(services.pickup_reject, pickup_id=offered.pk, by=member_of(near), reason="")
    run_on_commit(services.pickup_cancel, pickup_id=offered.pk, by=customer)
    transitions = list(PickupTransition.objects.order_by("id").values_list("pickup_id", "event"))
    rows = list(DomainEvent.objects.order_by("id").values_list("pickup_id", "event"))
    assert rows == transitions


@pytest.fixture
def queued(monkeypatch):
    """The relays queued after commit (not run), and no earlier note of a queued relay."""
    outbox.wake_up_received()
    relays = []
    monkeypatch.setattr(tasks.relay_events_task, "apply_async", lambda: relays.append(1))
    yield relays
    outbox.wake_up_received()


def test_a_relay_is_queued_after_commit_only_when_switched_on(
    customer, near, settings, queued, run_on_commit
):
    settings.EVENTS_RELAY_ON_COMMIT = False
    run_on_commit(create_pickup, customer)
    assert queued == []
    settings.EVENTS_RELAY_ON_COMMIT = True
    with transaction.atomic():  # its callbacks are not run: nothing is queued
        create_pickup(customer)
    assert queued == []
    run_on_commit(create_pickup, customer)
    assert queued == [1]


def test_transitions_committed_before_the_queued_relay_starts_leave_it_their_events(
    customer, near, settings, queued, run_on_commit
):
    settings.EVENTS_RELAY_ON_COMMIT = True
    first = run_on_commit(create_pickup, customer)
    run_on_commit(services.pickup_cancel, pickup_id=first.pk, by=customer)
    assert queued == [1]  # the relay queued by the create has not started
    settings.EVENTS_BROKER_URL = f"amqp://guest:guest@127.0.0.1:{free_port()}//"
    outbox.events_relay()  # ... now it has (that it cannot reach a broker does not matter here)
    run_on_commit(create_pickup, customer)
    assert queued == [1, 1]


def test_a_relay_that_cannot_be_queued_lets_the_next_transition_try(
    customer, near, settings, monkeypatch, run_on_commit, caplog
):
    settings.EVENTS_RELAY_ON_COMMIT = True
    outbox.wake_up_received()

    def broker_down():
        raise OSError("Connection refused")

    monkeypatch.setattr(tasks.relay_events_task, "apply_async", broker_down)
    run_on_commit(create_pickup, customer)  # the change stands; the failure is logged
    assert "_relay_events_soon" in caplog.text
    assert outbox.wake_up_due()  # no note of a relay left behind
    outbox.wake_up_received()


def test_the_documented_example_follows_the_schema():
    page = (Path(__file__).resolve().parents[2] / "docs" / "events.rst").read_text()
    block = page.split(".. code-block:: json", 1)[1].split("\nWhat the fields mean", 1)[0]
    example = valid(json.loads(block))
    assert example["event"] == "complete"
    amounts = [
        (Decimal(i["actual_kg"]) * Decimal(i["price_per_kg"])).quantize(Decimal("0.01"))
        for i in example["items"]
    ]
    assert str(sum(amounts)) == example["total"]


def test_without_the_shared_cache_every_transition_queues_its_relay(monkeypatch, caplog):
    def redis_down(*args, **kwargs):
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6379")

    monkeypatch.setattr(outbox.cache, "add", redis_down)
    monkeypatch.setattr(outbox.cache, "delete", redis_down)
    assert outbox.wake_up_due() and outbox.wake_up_due()
    outbox.wake_up_received()  # logged, not raised: the relay goes on
    assert "cannot note a queued relay" in caplog.text
