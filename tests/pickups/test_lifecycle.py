"""Offer timeouts, unassigned retries, expiry and the sweeps that drive them, with the clock
moved by time-machine instead of waited for."""

from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.utils import timezone

from notifications.models import Notification
from pickups import services, tasks
from pickups.models import PickupRejection, PickupRequest
from pickups.services import retry_delay
from procurement_system.errors import NotFound
from tests.factories import HOME, UserFactory, VendorFactory, create_pickup, member_of
from vendors.models import Vendor
from vendors.services import PriceInput, vendor_create, vendor_update_settings

pytestmark = pytest.mark.django_db


def refreshed(pickup: PickupRequest) -> PickupRequest:
    return PickupRequest.objects.get(pk=pickup.pk)


def open_jobs(vendor: Vendor) -> int:
    return Vendor.objects.get(pk=vendor.pk).open_jobs


def kinds_for(user) -> list[str]:
    return list(Notification.objects.filter(recipient=user).values_list("kind", flat=True))


def later(seconds: float):
    """Travel ``seconds`` into the future (and stay there) for the rest of the block."""
    return time_machine.travel(timezone.now() + timedelta(seconds=seconds), tick=False)


@pytest.fixture
def near():
    return VendorFactory(name="Near", latitude=HOME[0] + 0.005)


@pytest.fixture
def far():
    return VendorFactory(name="Far", latitude=HOME[0] + 0.05)


@pytest.fixture
def offered(customer, near, far, run_on_commit):
    return refreshed(run_on_commit(create_pickup, customer))


# --- the offer timer ------------------------------------------------------------------------


def test_an_offer_carries_its_deadline_and_quotes_the_vendors_prices(offered, near, settings):
    assert offered.status == "offered" and offered.vendor == near
    expected = offered.status_changed_at + timedelta(seconds=settings.OFFER_TIMEOUT_SECONDS)
    assert offered.offer_expires_at == expected
    assert [str(i.price_per_kg) for i in offered.items.all()] == ["0.10"]
    told = Notification.objects.get(recipient=member_of(near), kind="pickup.offered")
    assert told.data["offer_expires_at"] == expected.isoformat().replace("+00:00", "Z")


def test_the_sweep_leaves_an_offer_alone_before_its_deadline(offered, run_on_commit, settings):
    with later(settings.OFFER_TIMEOUT_SECONDS - 1):
        assert run_on_commit(tasks.expire_offers_task) == 0
    assert refreshed(offered).status == "offered"


def test_an_unanswered_offer_is_withdrawn_and_goes_to_the_next_vendor(
    offered, near, far, customer, run_on_commit, settings
):
    with later(settings.OFFER_TIMEOUT_SECONDS + 1):
        assert run_on_commit(tasks.expire_offers_task) == 1

        pickup = refreshed(offered)
        assert pickup.status == "offered" and pickup.vendor == far
        assert pickup.offer_expires_at == timezone.now() + timedelta(
            seconds=settings.OFFER_TIMEOUT_SECONDS
        )
    assert open_jobs(near) == 0 and open_jobs(far) == 1
    rejection = PickupRejection.objects.get(pickup=pickup)
    assert (rejection.vendor, rejection.role, rejection.rejected_by) == (near, "timeout", None)
    assert kinds_for(member_of(near)) == ["pickup.offered", "offer.expired"]
    assert kinds_for(member_of(far)) == ["pickup.offered"]
    assert kinds_for(customer)[-2:] == ["offer.expired", "pickup.offered"]
    assert [t.event for t in pickup.transitions.all()] == [
        "create",
        "assign",
        "offer_timeout",
        "assign",
    ]


def test_every_vendor_timing_out_leaves_the_pickup_unassigned_not_stuck(
    offered, near, far, run_on_commit, settings
):
    for round_ in (1, 2):
        with later(round_ * (settings.OFFER_TIMEOUT_SECONDS + 1)):
            assert run_on_commit(tasks.expire_offers_task) == 1
        offered = refreshed(offered)
    assert offered.status == "unassigned" and offered.vendor is None
    assert open_jobs(near) == 0 and open_jobs(far) == 0
    assert offered.next_retry_at is not None


def test_a_timeout_that_fires_after_the_vendor_accepted_changes_nothing(
    offered, near, run_on_commit, settings
):
    with later(settings.OFFER_TIMEOUT_SECONDS + 1):
        # The sweep saw the offer due ...
        [(pickup_id, version)] = tasks.selectors.offers_due(now=timezone.now(), limit=10)
    with later(settings.OFFER_TIMEOUT_SECONDS - 1):
        # ... but the accept, made in time by the web process's clock, commits first ...
        run_on_commit(services.pickup_accept, pickup_id=pickup_id, by=member_of(near))
    with later(settings.OFFER_TIMEOUT_SECONDS + 1):
        # ... so when the sweep acts on what it saw, nothing changes.
        assert not run_on_commit(services.pickup_expire_offer, pickup_id=pickup_id, version=version)
    pickup = refreshed(offered)
    assert pickup.status == "accepted" and pickup.vendor == near
    assert pickup.offer_expires_at is None
    assert not PickupRejection.objects.filter(pickup=pickup).exists()
    assert open_jobs(near) == 1


def test_an_accept_that_arrives_after_the_timeout_is_refused(
    offered, near, far, run_on_commit, settings
):
    with later(settings.OFFER_TIMEOUT_SECONDS + 1):
        run_on_commit(tasks.expire_offers_task)
    with pytest.raises(NotFound):  # no longer near's pickup
        services.pickup_accept(pickup_id=offered.pk, by=member_of(near))
    assert refreshed(offered).vendor == far


def test_a_timer_for_an_older_offer_does_not_withdraw_the_current_one(
    offered, near, far, run_on_commit, settings
):
    first_version = offered.version
    run_on_commit(services.pickup_reject, pickup_id=offered.pk, by=member_of(near), reason="")
    pickup = refreshed(offered)
    assert pickup.status == "offered" and pickup.vendor == far  # the newer offer
    with later(settings.OFFER_TIMEOUT_SECONDS + 1):
        assert not run_on_commit(
            services.pickup_expire_offer, pickup_id=pickup.pk, version=first_version
        )
    pickup = refreshed(offered)
    assert pickup.status == "offered" and pickup.vendor == far
    assert list(PickupRejection.objects.values_list("role", flat=True)) == ["vendor"]


def test_a_repeated_timeout_for_the_same_offer_acts_once(
    offered, near, far, run_on_commit, settings
):
    with later(settings.OFFER_TIMEOUT_SECONDS + 1):
        [(pickup_id, version)] = tasks.selectors.offers_due(now=timezone.now(), limit=10)
        assert run_on_commit(services.pickup_expire_offer, pickup_id=pickup_id, version=version)
        assert not run_on_commit(services.pickup_expire_offer, pickup_id=pickup_id, version=version)
    assert PickupRejection.objects.count() == 1
    assert refreshed(offered).vendor == far
    assert open_jobs(near) == 0 and open_jobs(far) == 1


def test_a_detail_edit_while_offered_does_not_restart_or_lose_the_timer(
    offered, customer, run_on_commit, settings
):
    deadline = offered.offer_expires_at
    run_on_commit(
        services.pickup_update_details,
        pickup_id=offered.pk,
        by=customer,
        changes={"notes": "Ring twice"},
    )
    assert refreshed(offered).offer_expires_at == deadline
    with later(settings.OFFER_TIMEOUT_SECONDS + 1):
        assert run_on_commit(tasks.expire_offers_task) == 1


# --- unassigned pickups ---------------------------------------------------------------------


@pytest.fixture
def unassigned(customer, run_on_commit):
    """A pickup nobody can take: the only vendor around is offline."""
    VendorFactory(name="Sleepy", latitude=HOME[0] + 0.005, is_online=False)
    return refreshed(run_on_commit(create_pickup, customer))


def test_backoff_doubles_up_to_the_cap(settings):
    settings.UNASSIGNED_RETRY_BASE_SECONDS = 30
    settings.UNASSIGNED_RETRY_MAX_SECONDS = 900
    assert [retry_delay(n).total_seconds() for n in range(7)] == [
        30,
        60,
        120,
        240,
        480,
        900,
        900,
    ]
    assert retry_delay(10_000).total_seconds() == 900


def test_a_fruitless_retry_backs_off_silently(unassigned, customer, run_on_commit, settings):
    assert unassigned.status == "unassigned"
    assert unassigned.next_retry_at == unassigned.status_changed_at + retry_delay(0)
    told = kinds_for(customer)
    with later(settings.UNASSIGNED_RETRY_BASE_SECONDS + 1):
        assert run_on_commit(tasks.retry_unassigned_task) == 0
        pickup = refreshed(unassigned)
        assert pickup.retry_count == 1
        assert pickup.next_retry_at == timezone.now() + retry_delay(1)
    assert pickup.status == "unassigned" and pickup.version == unassigned.version
    assert kinds_for(customer) == told  # nothing new to tell


def test_a_retry_is_not_made_before_it_is_due(unassigned, run_on_commit, settings):
    with later(settings.UNASSIGNED_RETRY_BASE_SECONDS - 1):
        run_on_commit(tasks.retry_unassigned_task)
    assert refreshed(unassigned).retry_count == 0


def test_a_due_retry_offers_the_pickup_once_a_vendor_is_there(
    unassigned, customer, run_on_commit, settings
):
    awake = VendorFactory(name="Awake", latitude=HOME[0] + 0.01)
    with later(settings.UNASSIGNED_RETRY_BASE_SECONDS + 1):
        assert run_on_commit(tasks.retry_unassigned_task) == 1
    pickup = refreshed(unassigned)
    assert pickup.status == "offered" and pickup.vendor == awake
    assert pickup.next_retry_at is None and pickup.retry_count == 0
    assert [t.event for t in pickup.transitions.all()][-2:] == ["retry", "assign"]
    assert kinds_for(member_of(awake)) == ["pickup.offered"]
    assert kinds_for(customer)[-1] == "pickup.offered"


def test_two_retries_of_one_pickup_offer_it_once(unassigned, run_on_commit, settings):
    awake = VendorFactory(name="Awake", latitude=HOME[0] + 0.01, capacity=5)
    with later(settings.UNASSIGNED_RETRY_BASE_SECONDS + 1):
        # Two sweeps (or a sweep and a vendor's trigger) picked the same pickup.
        run_on_commit(services.pickup_retry_assignment, pickup_id=unassigned.pk)
        run_on_commit(services.pickup_retry_assignment, pickup_id=unassigned.pk, due_only=False)
    assert open_jobs(awake) == 1
    assert refreshed(unassigned).transitions.filter(event="assign").count() == 1
    assert kinds_for(member_of(awake)) == ["pickup.offered"]


def test_two_fruitless_retries_of_one_pickup_count_one(unassigned, run_on_commit, settings):
    with later(settings.UNASSIGNED_RETRY_BASE_SECONDS + 1):
        run_on_commit(services.pickup_retry_assignment, pickup_id=unassigned.pk)
        run_on_commit(services.pickup_retry_assignment, pickup_id=unassigned.pk)
    assert refreshed(unassigned).retry_count == 1


def test_a_vendor_coming_online_takes_waiting_pickups_at_once(unassigned, run_on_commit):
    sleepy = Vendor.objects.get(name="Sleepy")
    run_on_commit(vendor_update_settings, vendor_id=sleepy.pk, by=member_of(sleepy), is_online=True)
    pickup = refreshed(unassigned)
    assert pickup.status == "offered" and pickup.vendor == sleepy


def test_a_vendor_raising_capacity_takes_waiting_pickups_at_once(customer, run_on_commit):
    full = VendorFactory(name="Full", latitude=HOME[0] + 0.005, capacity=1)
    first = refreshed(run_on_commit(create_pickup, customer))
    second = refreshed(run_on_commit(create_pickup, customer))
    assert (first.vendor, second.status) == (full, "unassigned")
    run_on_commit(vendor_update_settings, vendor_id=full.pk, by=member_of(full), capacity=2)
    assert refreshed(second).vendor == full
    assert open_jobs(full) == 2


def test_a_finished_job_frees_capacity_for_a_waiting_pickup(customer, run_on_commit):
    vendor = VendorFactory(name="Busy", latitude=HOME[0] + 0.005, capacity=1)
    first = refreshed(run_on_commit(create_pickup, customer))
    second = refreshed(run_on_commit(create_pickup, customer))
    assert second.status == "unassigned"
    member = member_of(vendor)
    run_on_commit(services.pickup_accept, pickup_id=first.pk, by=member)
    for step in ("en_route", "picked_up", "completed"):
        weights = {"paper": "10"} if step == "picked_up" else None
        run_on_commit(
            services.pickup_advance,
            pickup_id=first.pk,
            by=member,
            status=step,
            actual_weights=weights,
        )
    second = refreshed(second)
    assert second.status == "offered" and second.vendor == vendor


def test_a_vendor_is_not_offered_pickups_it_cannot_take(customer, run_on_commit):
    VendorFactory(name="Paper", latitude=HOME[0] + 0.005, is_online=False)
    glass = refreshed(run_on_commit(create_pickup, customer, materials=("glass",)))
    far_away = refreshed(run_on_commit(create_pickup, customer, location=(HOME[0] + 1, HOME[1])))
    assert glass.status == far_away.status == "unassigned"
    paper = Vendor.objects.get(name="Paper")
    run_on_commit(vendor_update_settings, vendor_id=paper.pk, by=member_of(paper), is_online=True)
    assert refreshed(glass).status == refreshed(far_away).status == "unassigned"
    assert refreshed(glass).retry_count == 0  # not even tried: it was not a candidate
    assert open_jobs(paper) == 0


def test_a_vendor_that_refused_a_pickup_is_not_offered_it_again_on_coming_online(
    offered, near, far, run_on_commit
):
    run_on_commit(services.pickup_reject, pickup_id=offered.pk, by=member_of(near), reason="")
    run_on_commit(services.pickup_reject, pickup_id=offered.pk, by=member_of(far), reason="")
    assert refreshed(offered).status == "unassigned"
    run_on_commit(vendor_update_settings, vendor_id=near.pk, by=member_of(near), capacity=5)
    assert refreshed(offered).status == "unassigned"


# --- expiry ---------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["pending", "offered", "unassigned", "accepted"])
def test_a_pickup_whose_window_ended_expires(status, customer, run_on_commit, near):
    if status == "unassigned":
        Vendor.objects.filter(pk=near.pk).update(is_online=False)
    if status == "pending":
        pickup = create_pickup(customer)  # its assignment never ran
    else:
        pickup = run_on_commit(create_pickup, customer)
    if status == "accepted":
        run_on_commit(services.pickup_accept, pickup_id=pickup.pk, by=member_of(near))
    pickup = refreshed(pickup)
    assert pickup.status == status
    with time_machine.travel(pickup.window_end + timedelta(seconds=1), tick=False):
        assert run_on_commit(tasks.expire_pickups_task) == 1
    pickup = refreshed(pickup)
    assert pickup.status == "expired" and pickup.vendor is None
    assert pickup.offer_expires_at is None and pickup.next_retry_at is None
    assert open_jobs(near) == 0
    assert kinds_for(customer)[-1] == "pickup.expired"
    if status in ("offered", "accepted"):
        assert kinds_for(member_of(near))[-1] == "pickup.expired"


def test_a_pickup_en_route_is_left_to_finish(offered, near, run_on_commit):
    member = member_of(near)
    run_on_commit(services.pickup_accept, pickup_id=offered.pk, by=member)
    run_on_commit(services.pickup_advance, pickup_id=offered.pk, by=member, status="en_route")
    with time_machine.travel(offered.window_end + timedelta(hours=1), tick=False):
        assert run_on_commit(tasks.expire_pickups_task) == 0
    assert refreshed(offered).status == "en_route"


def test_nothing_expires_before_its_window_ends(offered, run_on_commit):
    with time_machine.travel(offered.window_end - timedelta(seconds=1), tick=False):
        assert run_on_commit(tasks.expire_pickups_task) == 0
    assert refreshed(offered).status == "offered"


def test_a_pickup_whose_window_ended_is_expired_instead_of_offered(customer, near):
    pickup = create_pickup(customer)  # pending: its assignment is late
    with time_machine.travel(pickup.window_end, tick=False):
        services.pickup_assign_vendor(pickup_id=pickup.pk)
    assert refreshed(pickup).status == "expired"
    assert open_jobs(near) == 0


def test_a_retry_after_the_window_expires_the_pickup(unassigned, run_on_commit):
    with time_machine.travel(unassigned.window_end + timedelta(seconds=1), tick=False):
        run_on_commit(services.pickup_retry_assignment, pickup_id=unassigned.pk)
    assert refreshed(unassigned).status == "expired"


def test_expired_is_final(offered, customer, run_on_commit):
    with time_machine.travel(offered.window_end + timedelta(seconds=1), tick=False):
        run_on_commit(tasks.expire_pickups_task)
        assert run_on_commit(tasks.expire_pickups_task) == 0
        assert run_on_commit(tasks.expire_offers_task) == 0
        assert run_on_commit(tasks.retry_unassigned_task) == 0
    with pytest.raises(services.InvalidTransition):
        services.pickup_cancel(pickup_id=offered.pk, by=customer)


def test_no_pickup_outlives_its_window_in_pending_offered_or_unassigned(
    customer, near, far, run_on_commit, settings
):
    """Whatever mix of states the sweeps meet, after the window ends and one run of each sweep
    (in any order), none is left waiting."""
    Vendor.objects.filter(pk=far.pk).update(capacity=1)
    pickups = [run_on_commit(create_pickup, customer) for _ in range(6)]  # offered/unassigned
    pickups.append(create_pickup(customer))  # pending
    window_end = max(refreshed(p).window_end for p in pickups)
    with time_machine.travel(window_end + timedelta(seconds=1), tick=False):
        run_on_commit(tasks.expire_offers_task)
        run_on_commit(tasks.retry_unassigned_task)
        run_on_commit(tasks.expire_pickups_task)
    statuses = set(
        PickupRequest.objects.filter(pk__in=[p.pk for p in pickups]).values_list(
            "status", flat=True
        )
    )
    assert statuses == {"expired"}
    assert open_jobs(near) == open_jobs(far) == 0


def test_sweeps_handle_at_most_a_batch_per_run(customer, near, run_on_commit, settings):
    settings.LIFECYCLE_BATCH_SIZE = 2
    Vendor.objects.filter(pk=near.pk).update(is_online=False)
    pickups = [run_on_commit(create_pickup, customer) for _ in range(3)]
    with time_machine.travel(refreshed(pickups[0]).window_end + timedelta(seconds=1), tick=False):
        assert run_on_commit(tasks.expire_pickups_task) == 2
        assert run_on_commit(tasks.expire_pickups_task) == 1


def test_an_accept_after_the_deadline_is_refused_even_before_the_sweep(
    offered, near, run_on_commit, settings
):
    with later(settings.OFFER_TIMEOUT_SECONDS):
        with pytest.raises(services.InvalidTransition, match="expired"):
            services.pickup_accept(pickup_id=offered.pk, by=member_of(near))
    assert refreshed(offered).status == "offered"  # the sweep withdraws it
    with later(settings.OFFER_TIMEOUT_SECONDS - 1):
        run_on_commit(services.pickup_accept, pickup_id=offered.pk, by=member_of(near))
    assert refreshed(offered).status == "accepted"


def test_a_new_vendor_takes_waiting_pickups_at_once(unassigned, run_on_commit):
    operator = UserFactory(is_staff=True)
    created = run_on_commit(
        vendor_create,
        by=operator,
        name="Newcomer",
        latitude=HOME[0] + 0.01,
        longitude=HOME[1],
        service_radius_km=10,
        materials=[PriceInput("paper", Decimal("0.20"))],
    )
    pickup = refreshed(unassigned)
    assert pickup.status == "offered" and pickup.vendor == created
    assert [str(i.price_per_kg) for i in pickup.items.all()] == ["0.20"]
