"""An operator's "re-run assignment": a pending pickup's task is published again, an unassigned
one is retried at once whatever its backoff, anything else is refused and left as it was."""

import pytest
import time_machine
from django.utils import timezone

from notifications.models import Notification
from pickups import services
from pickups.models import PickupRequest
from pickups.services import pickup_rerun_assignment, retry_delay
from procurement_system.celery import app
from procurement_system.errors import InvalidTransition, NotFound
from tests.factories import HOME, VendorFactory, create_pickup, member_of
from vendors.models import Vendor

pytestmark = pytest.mark.django_db


def refreshed(pickup: PickupRequest) -> PickupRequest:
    return PickupRequest.objects.get(pk=pickup.pk)


@pytest.fixture
def lost_pending(customer, django_capture_on_commit_callbacks):
    """A pending pickup whose assignment message never reached the broker."""
    VendorFactory(name="Near", latitude=HOME[0] + 0.005)
    with django_capture_on_commit_callbacks(execute=False):
        pickup = create_pickup(customer)
    return refreshed(pickup)


@pytest.fixture
def unassigned(customer, run_on_commit):
    """No vendor collects metal: the assignment found nobody."""
    pickup = refreshed(run_on_commit(create_pickup, customer, materials=["metal"]))
    assert pickup.status == "unassigned" and pickup.next_retry_at > timezone.now()
    return pickup


def test_a_pending_pickup_has_its_assignment_published_again_under_a_new_task_id(
    lost_pending, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as published:
        pickup = pickup_rerun_assignment(pickup_id=lost_pending.pk)
    assert pickup.status == "pending"
    new_task_id = refreshed(lost_pending).assignment_task_id
    assert new_task_id and new_task_id != lost_pending.assignment_task_id
    assert [c.__qualname__ for c in published] == ["publish of pickups.tasks.assign_vendor_task"]
    published[0]()  # the broker takes it; the (eager) worker runs it
    after = refreshed(lost_pending)
    assert (after.status, after.vendor.name) == ("offered", "Near")
    result = app.AsyncResult(new_task_id)
    assert (result.state, result.result) == ("SUCCESS", "offered")


def test_an_unassigned_pickup_is_offered_at_once_to_a_vendor_eligible_now(
    unassigned, run_on_commit
):
    vendor = VendorFactory(name="Metalworks", materials=["metal"])
    pickup = run_on_commit(pickup_rerun_assignment, pickup_id=unassigned.pk)
    assert (pickup.status, pickup.vendor) == ("offered", vendor)
    after = refreshed(unassigned)
    assert (after.status, after.vendor_id, after.retry_count) == ("offered", vendor.pk, 0)
    assert after.next_retry_at is None and after.offer_expires_at is not None
    assert [t.event for t in after.transitions.all()] == ["create", "no_vendor", "retry", "assign"]
    assert Vendor.objects.get(pk=vendor.pk).open_jobs == 1
    assert Notification.objects.filter(recipient=member_of(vendor), kind="pickup.offered").exists()


def test_an_unassigned_pickup_is_retried_before_its_backoff_is_due(unassigned, run_on_commit):
    # Not due yet: the periodic sweep would leave it alone. Still no vendor: one more retry is
    # counted and the next one scheduled further out.
    assert unassigned.next_retry_at > timezone.now()
    with time_machine.travel(timezone.now(), tick=False):
        pickup = run_on_commit(pickup_rerun_assignment, pickup_id=unassigned.pk)
        now = timezone.now()
    assert pickup.status == "unassigned"
    after = refreshed(unassigned)
    assert after.retry_count == 1
    assert after.next_retry_at == now + retry_delay(1)
    assert after.version == unassigned.version  # nothing logged or told while nobody is found


@pytest.mark.parametrize("step", ["offered", "accepted", "cancelled"])
def test_any_other_status_is_refused_and_left_as_it_was(customer, run_on_commit, step):
    vendor = VendorFactory(name="Near")
    pickup = run_on_commit(create_pickup, customer)
    if step == "accepted":
        run_on_commit(services.pickup_accept, pickup_id=pickup.pk, by=member_of(vendor))
    if step == "cancelled":
        run_on_commit(services.pickup_cancel, pickup_id=pickup.pk, by=customer)
    before = refreshed(pickup)
    assert before.status == step
    with pytest.raises(InvalidTransition, match=f"is {step}; only pending or unassigned"):
        run_on_commit(pickup_rerun_assignment, pickup_id=pickup.pk)
    after = refreshed(pickup)
    assert (after.status, after.vendor_id, after.version, after.assignment_task_id) == (
        before.status,
        before.vendor_id,
        before.version,
        before.assignment_task_id,
    )
    assert after.transitions.count() == before.transitions.count()


def test_a_missing_pickup_is_not_found(db):
    with pytest.raises(NotFound):
        pickup_rerun_assignment(pickup_id=987654)
