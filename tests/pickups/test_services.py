from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from notifications.models import Notification
from pickups import services
from pickups.models import PickupRequest
from pickups.services import ItemInput
from procurement_system.errors import Forbidden, InvalidTransition, NotFound, ValidationError
from tests.factories import HOME, UserFactory, VendorFactory, create_pickup, member_of
from vendors.models import Vendor

pytestmark = pytest.mark.django_db


def refreshed(pickup: PickupRequest) -> PickupRequest:
    return PickupRequest.objects.get(pk=pickup.pk)


def open_jobs(vendor: Vendor) -> int:
    return Vendor.objects.get(pk=vendor.pk).open_jobs


def kinds_for(user) -> list[str]:
    return list(Notification.objects.filter(recipient=user).values_list("kind", flat=True))


@pytest.fixture
def near():
    return VendorFactory(name="Near", latitude=HOME[0] + 0.005)


@pytest.fixture
def far():
    return VendorFactory(name="Far", latitude=HOME[0] + 0.05)


@pytest.fixture
def offered(customer, near, far, run_on_commit):
    """A pickup offered to the nearer vendor."""
    return refreshed(run_on_commit(create_pickup, customer))


# --- create and assign ----------------------------------------------------------------------


def test_create_stores_request_and_offers_it_to_the_nearest_vendor(
    customer, near, far, run_on_commit
):
    pickup = run_on_commit(create_pickup, customer)

    pickup = refreshed(pickup)
    assert pickup.status == "offered"
    assert pickup.vendor == near
    assert [(i.material_id, i.estimated_kg) for i in pickup.items.all()] == [
        ("paper", Decimal("12.50"))
    ]
    assert [t.to_status for t in pickup.transitions.all()] == ["pending", "offered"]
    assert open_jobs(near) == 1 and open_jobs(far) == 0
    assert kinds_for(customer) == ["pickup.created", "pickup.offered"]
    assert kinds_for(member_of(near)) == ["pickup.offered"]
    assert kinds_for(member_of(far)) == []


def publishes(callbacks: list) -> list:
    """The after-commit callbacks that publish a task (not, say, the transition's log line)."""
    return [c for c in callbacks if c.__qualname__.startswith("publish of ")]


def test_create_stores_the_notification_with_it_and_enqueues_work_after_commit(
    customer, near, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        pickup = create_pickup(customer)
    assert refreshed(pickup).status == "pending"
    assert kinds_for(customer) == ["pickup.created"]  # committed with the pickup
    assert len(publishes(callbacks)) == 2  # its push, and the assignment task


def test_notification_numbers_follow_the_order_of_events_whatever_order_tasks_run_in(
    customer, near, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as created_callbacks:
        pickup = create_pickup(customer)
    with django_capture_on_commit_callbacks(execute=False) as assigned_callbacks:
        services.pickup_assign_vendor(pickup_id=pickup.pk)
    # The pushes run in the opposite order, as two busy workers may run them.
    for callback in [*assigned_callbacks, *publishes(created_callbacks)[:1]]:
        callback()
    told = Notification.objects.filter(recipient=customer).order_by("seq")
    assert [(n.seq, n.kind) for n in told] == [(1, "pickup.created"), (2, "pickup.offered")]


def test_a_failed_change_stores_no_notification(offered, near):
    before = Notification.objects.count()
    services.pickup_accept(pickup_id=offered.pk, by=member_of(near))
    with pytest.raises(ValidationError):
        services.pickup_advance(
            pickup_id=offered.pk,
            by=member_of(near),
            status="en_route",
            actual_weights={"paper": Decimal("1")},
        )
    kinds = list(Notification.objects.order_by("id").values_list("kind", flat=True)[before:])
    assert "pickup.en_route" not in kinds
    assert kinds.count("pickup.accepted") == 2  # customer and vendor member, from the accept


def test_same_idempotency_key_returns_the_same_pickup(customer, near):
    first = create_pickup(customer, key="k-1")
    again, created = services.pickup_create(
        customer=customer,
        address="elsewhere",
        latitude=1,
        longitude=1,
        window_start=first.window_start,
        window_end=first.window_end,
        items=[ItemInput("paper", Decimal("1"))],
        idempotency_key="k-1",
    )
    assert (again.pk, created) == (first.pk, False)
    assert PickupRequest.objects.count() == 1


def test_idempotency_keys_are_per_customer(customer, near):
    first = create_pickup(customer, key="k-1")
    second = create_pickup(UserFactory(), key="k-1")
    assert first.pk != second.pk


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"window_start": timezone.now() + timedelta(hours=5)}, "window_end"),
        (
            {
                "window_start": timezone.now() - timedelta(hours=5),
                "window_end": timezone.now() - timedelta(hours=1),
            },
            "window_end",
        ),
        ({"window_end": timezone.now() + timedelta(days=90)}, "window_end"),
        ({"items": []}, "items"),
        ({"items": [ItemInput("unobtainium", Decimal("1"))]}, "items"),
        ({"items": [ItemInput("paper", Decimal("1")), ItemInput("paper", Decimal("2"))]}, "items"),
    ],
)
def test_create_refuses_invalid_requests_and_stores_nothing(customer, overrides, field):
    with pytest.raises(ValidationError) as raised:
        create_pickup(customer, **overrides)
    assert field in raised.value.errors
    assert PickupRequest.objects.count() == 0


@pytest.mark.parametrize(
    "vendor_fields",
    [
        {"materials": ["glass"]},  # does not collect paper
        {"latitude": HOME[0] + 0.5},  # about 55 km away, radius 10 km
        {"is_online": False},
        {"is_active": False},
        {"capacity": 0},
    ],
)
def test_no_eligible_vendor_leaves_the_pickup_unassigned(customer, vendor_fields, run_on_commit):
    VendorFactory(**vendor_fields)
    pickup = refreshed(run_on_commit(create_pickup, customer))
    assert pickup.status == "unassigned"
    assert pickup.vendor is None
    assert kinds_for(customer) == ["pickup.created", "pickup.unassigned"]


def test_a_vendor_must_collect_every_requested_material(customer, run_on_commit):
    VendorFactory(name="Paper only", materials=["paper"])
    both = VendorFactory(name="Both", materials=["paper", "glass"], latitude=HOME[0] + 0.03)
    pickup = refreshed(run_on_commit(create_pickup, customer, materials=("paper", "glass")))
    assert pickup.vendor == both


def test_assignment_is_idempotent(customer, near, far, run_on_commit):
    pickup = run_on_commit(create_pickup, customer)
    run_on_commit(services.pickup_assign_vendor, pickup_id=pickup.pk)
    assert refreshed(pickup).vendor == near
    assert open_jobs(near) == 1 and open_jobs(far) == 0
    assert kinds_for(member_of(near)) == ["pickup.offered"]


def test_a_full_vendor_is_passed_over(customer, far, run_on_commit):
    solo = VendorFactory(name="Solo", capacity=1)
    first = refreshed(run_on_commit(create_pickup, customer))
    second = refreshed(run_on_commit(create_pickup, customer))
    assert (first.vendor, second.vendor) == (solo, far)
    assert open_jobs(solo) == 1


# --- the vendor's side ----------------------------------------------------------------------


def test_vendor_reject_reoffers_to_the_next_vendor_and_never_back(
    offered, near, far, run_on_commit
):
    run_on_commit(services.pickup_reject, pickup_id=offered.pk, by=member_of(near), reason="busy")
    pickup = refreshed(offered)
    assert pickup.vendor == far and pickup.status == "offered"
    assert open_jobs(near) == 0 and open_jobs(far) == 1
    assert [(r.vendor, r.role, r.reason) for r in pickup.rejections.all()] == [
        (near, "vendor", "busy")
    ]

    run_on_commit(services.pickup_reject, pickup_id=offered.pk, by=member_of(far))
    pickup = refreshed(offered)
    assert pickup.status == "unassigned" and pickup.vendor is None
    assert open_jobs(far) == 0
    assert kinds_for(member_of(near)) == ["pickup.offered", "pickup.rejected"]


def test_accept_then_the_steps_to_completed(offered, near, run_on_commit):
    vendor_user = member_of(near)
    run_on_commit(services.pickup_accept, pickup_id=offered.pk, by=vendor_user)
    run_on_commit(services.pickup_advance, pickup_id=offered.pk, by=vendor_user, status="en_route")
    run_on_commit(
        services.pickup_advance,
        pickup_id=offered.pk,
        by=vendor_user,
        status="picked_up",
        actual_weights={"paper": Decimal("11.20")},
    )
    assert open_jobs(near) == 1
    run_on_commit(services.pickup_advance, pickup_id=offered.pk, by=vendor_user, status="completed")

    pickup = refreshed(offered)
    assert pickup.status == "completed" and pickup.vendor == near
    assert pickup.items.get().actual_kg == Decimal("11.20")
    assert open_jobs(near) == 0
    assert kinds_for(offered.customer)[-5:] == [
        "pickup.accepted",
        "pickup.en_route",
        "pickup.picked_up",
        "pickup.completed",
        "receipt.issued",  # by the task queued on completion
    ]
    assert [t.to_status for t in pickup.transitions.all()] == [
        "pending",
        "offered",
        "accepted",
        "en_route",
        "picked_up",
        "completed",
    ]
    told = Notification.objects.filter(
        recipient=offered.customer, kind__startswith="pickup."
    ).order_by("seq")
    versions = [n.data["version"] for n in told]
    assert versions == sorted(set(versions))  # one notification per version, in event order
    assert told.last().data == {"pickup_id": offered.pk, "status": "completed", "version": 6}


def test_a_step_cannot_be_skipped(offered, near):
    services.pickup_accept(pickup_id=offered.pk, by=member_of(near))
    with pytest.raises(InvalidTransition):
        services.pickup_advance(pickup_id=offered.pk, by=member_of(near), status="completed")
    assert refreshed(offered).status == "accepted"


def test_weights_outside_picking_up_are_refused_and_nothing_changes(offered, near):
    services.pickup_accept(pickup_id=offered.pk, by=member_of(near))
    with pytest.raises(ValidationError):
        services.pickup_advance(
            pickup_id=offered.pk,
            by=member_of(near),
            status="en_route",
            actual_weights={"paper": Decimal("1")},
        )
    pickup = refreshed(offered)
    assert pickup.status == "accepted" and pickup.items.get().actual_kg is None


def test_unknown_step_is_a_validation_error(offered, near):
    with pytest.raises(ValidationError):
        services.pickup_advance(pickup_id=offered.pk, by=member_of(near), status="teleported")


def test_customer_cannot_accept_their_own_pickup(offered):
    with pytest.raises(Forbidden):
        services.pickup_accept(pickup_id=offered.pk, by=offered.customer)


def test_another_vendor_sees_not_found(offered, far):
    for call in (services.pickup_accept, services.pickup_reject, services.pickup_cancel):
        with pytest.raises(NotFound):
            call(pickup_id=offered.pk, by=member_of(far))
    assert refreshed(offered).status == "offered"


def test_a_stranger_sees_not_found(offered):
    with pytest.raises(NotFound):
        services.pickup_cancel(pickup_id=offered.pk, by=UserFactory())


# --- the customer's side --------------------------------------------------------------------


def test_customer_rejects_the_accepted_vendor(offered, near, far, run_on_commit):
    services.pickup_accept(pickup_id=offered.pk, by=member_of(near))
    run_on_commit(services.pickup_reject, pickup_id=offered.pk, by=offered.customer, reason="late")
    pickup = refreshed(offered)
    assert pickup.vendor == far and pickup.status == "offered"
    assert [(r.vendor, r.role) for r in pickup.rejections.all()] == [(near, "customer")]
    assert open_jobs(near) == 0


def test_customer_cannot_reject_an_offer_they_have_not_been_given(offered):
    with pytest.raises(InvalidTransition):
        services.pickup_reject(pickup_id=offered.pk, by=offered.customer)


@pytest.mark.parametrize("accepted", [False, True])
def test_cancel_releases_the_vendor(offered, near, accepted, run_on_commit):
    if accepted:
        services.pickup_accept(pickup_id=offered.pk, by=member_of(near))
    run_on_commit(services.pickup_cancel, pickup_id=offered.pk, by=offered.customer, reason="sold")
    pickup = refreshed(offered)
    assert pickup.status == "cancelled" and pickup.vendor is None
    assert open_jobs(near) == 0
    assert kinds_for(member_of(near))[-1] == "pickup.cancelled"


def test_cancel_an_unassigned_pickup(customer, run_on_commit):
    pickup = run_on_commit(create_pickup, customer)
    services.pickup_cancel(pickup_id=pickup.pk, by=customer)
    assert refreshed(pickup).status == "cancelled"


def test_vendor_cannot_cancel(offered, near):
    with pytest.raises(Forbidden):
        services.pickup_cancel(pickup_id=offered.pk, by=member_of(near))


def test_cannot_cancel_once_en_route(offered, near):
    services.pickup_accept(pickup_id=offered.pk, by=member_of(near))
    services.pickup_advance(pickup_id=offered.pk, by=member_of(near), status="en_route")
    with pytest.raises(InvalidTransition):
        services.pickup_cancel(pickup_id=offered.pk, by=offered.customer)
    assert refreshed(offered).status == "en_route"


def test_customer_edits_details_and_the_vendor_is_told(offered, near, run_on_commit):
    run_on_commit(
        services.pickup_update_details,
        pickup_id=offered.pk,
        by=offered.customer,
        changes={"notes": "Ring twice", "address": "Alexanderplatz 2"},
    )
    pickup = refreshed(offered)
    assert (pickup.notes, pickup.address) == ("Ring twice", "Alexanderplatz 2")
    assert kinds_for(member_of(near))[-1] == "pickup.updated"


def test_location_is_fixed_once_a_vendor_holds_the_pickup(offered):
    with pytest.raises(InvalidTransition):
        services.pickup_update_details(
            pickup_id=offered.pk, by=offered.customer, changes={"latitude": 10.0}
        )
    assert refreshed(offered).latitude == HOME[0]


def test_items_can_change_while_pending(customer):
    pickup = create_pickup(customer, materials=("paper", "glass"))
    services.pickup_update_details(
        pickup_id=pickup.pk, by=customer, changes={"items": [ItemInput("glass", Decimal("3"))]}
    )
    assert [(i.material_id, i.estimated_kg) for i in pickup.items.all()] == [
        ("glass", Decimal("3.00"))
    ]


def test_vendor_cannot_edit_details(offered, near):
    with pytest.raises(Forbidden):
        services.pickup_update_details(
            pickup_id=offered.pk, by=member_of(near), changes={"notes": "x"}
        )


def test_unknown_fields_are_refused(offered):
    with pytest.raises(ValidationError):
        services.pickup_update_details(
            pickup_id=offered.pk, by=offered.customer, changes={"status": "completed"}
        )
    assert refreshed(offered).status == "offered"


def test_moving_an_unassigned_pickup_retries_the_assignment(customer, run_on_commit):
    elsewhere = VendorFactory(name="Elsewhere", latitude=HOME[0] + 1.0)
    pickup = refreshed(run_on_commit(create_pickup, customer))
    assert pickup.status == "unassigned"
    run_on_commit(
        services.pickup_update_details,
        pickup_id=pickup.pk,
        by=customer,
        changes={"latitude": HOME[0] + 1.0},
    )
    pickup = refreshed(pickup)
    assert (pickup.status, pickup.vendor) == ("offered", elsewhere)
    assert [t.event for t in pickup.transitions.all()][-2:] == ["retry", "assign"]
