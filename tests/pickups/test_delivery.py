"""What survives a lost message: the database is the outbox, and publishing after commit never
turns a committed change into an error."""

import logging
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone
from kombu.exceptions import OperationalError

from pickups import services, tasks
from pickups.models import PickupRequest, Receipt
from tests.factories import HOME, VendorFactory, create_pickup, member_of

pytestmark = pytest.mark.django_db


def refreshed(pickup) -> PickupRequest:
    return PickupRequest.objects.get(pk=pickup.pk)


def later(settings, extra: float = 1):
    moment = timezone.now() + timedelta(seconds=settings.STALLED_AFTER_SECONDS + extra)
    return time_machine.travel(moment, tick=False)


@pytest.fixture
def vendor():
    return VendorFactory(name="Near", latitude=HOME[0] + 0.005)


@pytest.fixture
def lost_create(customer, vendor, django_capture_on_commit_callbacks):
    """A pickup committed, whose assignment message never reached the broker (the process died
    between commit and publish)."""
    with django_capture_on_commit_callbacks(execute=False):
        pickup = create_pickup(customer)
    assert refreshed(pickup).status == "pending"
    return pickup


def test_a_lost_assignment_is_published_again_under_the_same_task_id(
    lost_create, vendor, run_on_commit, settings
):
    with later(settings):
        assert run_on_commit(tasks.requeue_stalled_task) == {"assignments": 1, "receipts": 0}
    pickup = refreshed(lost_create)
    assert pickup.status == "offered" and pickup.vendor == vendor
    assert pickup.assignment_task_id == lost_create.assignment_task_id


def test_work_that_is_merely_recent_is_left_to_its_message(lost_create, run_on_commit, settings):
    with later(settings, extra=-2):
        assert run_on_commit(tasks.requeue_stalled_task) == {"assignments": 0, "receipts": 0}
    assert refreshed(lost_create).status == "pending"


def test_a_slow_message_arriving_after_the_requeue_does_nothing_more(
    lost_create, vendor, run_on_commit, settings
):
    with later(settings):
        run_on_commit(tasks.requeue_stalled_task)
    tasks.assign_vendor_task.delay(lost_create.pk)  # the first message, late
    pickup = refreshed(lost_create)
    assert pickup.transitions.filter(event="assign").count() == 1
    assert vendor.__class__.objects.get(pk=vendor.pk).open_jobs == 1


def test_a_lost_receipt_is_issued_by_the_sweep(
    customer, vendor, run_on_commit, django_capture_on_commit_callbacks, settings
):
    pickup = run_on_commit(create_pickup, customer)
    member = member_of(vendor)
    run_on_commit(services.pickup_accept, pickup_id=pickup.pk, by=member)
    run_on_commit(services.pickup_advance, pickup_id=pickup.pk, by=member, status="en_route")
    run_on_commit(
        services.pickup_advance,
        pickup_id=pickup.pk,
        by=member,
        status="picked_up",
        actual_weights={"paper": "3"},
    )
    with django_capture_on_commit_callbacks(execute=False):  # the receipt message is lost
        services.pickup_advance(pickup_id=pickup.pk, by=member, status="completed")
    assert not Receipt.objects.exists()
    with later(settings):
        assert run_on_commit(tasks.requeue_stalled_task) == {"assignments": 0, "receipts": 1}
    assert Receipt.objects.get().pickup_id == pickup.pk
    with later(settings, extra=60):
        assert run_on_commit(tasks.requeue_stalled_task)["receipts"] == 0


def test_a_broker_that_refuses_the_publish_does_not_undo_or_fail_the_create(
    customer, vendor, run_on_commit, monkeypatch, caplog
):
    def broker_down(*args, **kwargs):
        raise OperationalError("[Errno 111] Connection refused")

    monkeypatch.setattr(tasks.assign_vendor_task, "apply_async", broker_down)
    with caplog.at_level(logging.ERROR, logger="django.db.backends.base"):
        pickup = run_on_commit(create_pickup, customer)  # no exception reaches the caller
    assert refreshed(pickup).status == "pending"  # committed, waiting for the sweep
    assert "Connection refused" in caplog.text  # and the failure is logged
    notified = pickup.customer.notifications.values_list("kind", flat=True)
    assert list(notified) == ["pickup.created"]


def test_the_tasks_of_the_project_publish_after_commit_robustly():
    from procurement_system.celery import PlatformTask

    assert isinstance(tasks.assign_vendor_task, PlatformTask)
    assert isinstance(tasks.issue_receipt_task, PlatformTask)
