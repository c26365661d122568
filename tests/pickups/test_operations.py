"""``manage.py rerun_assignment``: the admin's "Re-run assignment" for operators at a shell, one
outcome per pickup, every pickup tried, a non-zero exit when any failed."""

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from pickups.models import PickupRequest
from pickups.operations import rerun_assignments
from tests.factories import VendorFactory, create_pickup

pytestmark = pytest.mark.django_db


def refreshed(pickup: PickupRequest) -> PickupRequest:
    return PickupRequest.objects.get(pk=pickup.pk)


@pytest.fixture
def lost_pending(customer, django_capture_on_commit_callbacks):
    """A pending pickup whose assignment message never reached the broker."""
    VendorFactory(name="Near")
    with django_capture_on_commit_callbacks(execute=False):
        pickup = create_pickup(customer)
    return refreshed(pickup)


@pytest.fixture
def unassigned(customer, run_on_commit):
    """Nobody collects metal."""
    return refreshed(run_on_commit(create_pickup, customer, materials=["metal"]))


@pytest.fixture
def offered(customer, run_on_commit):
    VendorFactory(name="Paperworks")
    return refreshed(run_on_commit(create_pickup, customer))


def rerun(*ids: int, capture) -> tuple[str, str, CommandError | None]:
    out, err = io.StringIO(), io.StringIO()
    error = None
    with capture(execute=True):
        try:
            call_command("rerun_assignment", *map(str, ids), stdout=out, stderr=err)
        except CommandError as raised:
            error = raised
    return out.getvalue(), err.getvalue(), error


def test_each_pickup_gets_its_outcome_and_one_failure_stops_none(
    lost_pending, unassigned, offered, django_capture_on_commit_callbacks
):
    out, err, error = rerun(
        offered.pk,
        lost_pending.pk,
        987654,
        unassigned.pk,
        capture=django_capture_on_commit_callbacks,
    )
    task_id = refreshed(lost_pending).assignment_task_id
    assert task_id != lost_pending.assignment_task_id  # published again under a new id
    assert out.splitlines() == [
        f"#{lost_pending.pk} queued (assignment task {task_id})",
        f"#{unassigned.pk} still without a vendor",
    ]
    assert err.splitlines() == [
        f"#{offered.pk} invalid_transition: Pickup #{offered.pk} is offered; only pending or "
        "unassigned pickups can be assigned again.",
        "#987654 not_found: Pickup 987654 not found.",
    ]
    assert str(error) == "2 of 4 pickups failed."
    # The task published after commit ran (eagerly here) and offered the pickup.
    assert (refreshed(lost_pending).status, refreshed(lost_pending).vendor.name) == (
        "offered",
        "Near",
    )
    assert refreshed(unassigned).retry_count == 1


def test_an_unassigned_pickup_is_offered_to_a_vendor_eligible_now(
    unassigned, django_capture_on_commit_callbacks
):
    VendorFactory(name="Metalworks", materials=["metal"])
    out, err, error = rerun(unassigned.pk, capture=django_capture_on_commit_callbacks)
    assert (out, err, error) == (f"#{unassigned.pk} offered to Metalworks\n", "", None)


def test_the_results_are_values(lost_pending, offered, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        done, refused = rerun_assignments([lost_pending.pk, offered.pk])
    assert (done.ok, done.outcome, done.error) == (True, "queued", None)
    assert done.task_id == refreshed(lost_pending).assignment_task_id
    assert (refused.ok, refused.error.code, refused.task_id) == (False, "invalid_transition", None)


def test_pickup_ids_are_required_and_numbers():
    with pytest.raises(CommandError, match="required: PICKUP_ID"):
        call_command("rerun_assignment")
    with pytest.raises(CommandError, match="invalid int value"):
        call_command("rerun_assignment", "seven")
