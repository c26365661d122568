"""The pickups' admin as an operator uses it: filters, search, status badges, Flower links and
the "Re-run assignment" action, which goes through the service."""

from datetime import timedelta

import pytest
import time_machine
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from pickups import services
from pickups.models import PickupRequest
from tests.factories import HOME, UserFactory, VendorFactory, create_pickup, member_of

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/pickups/pickuprequest/"


def refreshed(pickup: PickupRequest) -> PickupRequest:
    return PickupRequest.objects.get(pk=pickup.pk)


def listed(response) -> set[int]:
    assert response.status_code == 200, response.status_code  # a bad filter redirects (?e=1)
    return {pickup.pk for pickup in response.context["cl"].result_list}


def shown_messages(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


@pytest.fixture
def operator_client(db) -> Client:
    client = Client()
    client.force_login(UserFactory(username="operator", is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def near():
    return VendorFactory(name="Near Recycling", latitude=HOME[0] + 0.005)


@pytest.fixture
def pending(near, django_capture_on_commit_callbacks):
    """Pending: its assignment message was lost. Its window ends in three days."""
    customer = UserFactory(username="penny", email="penny@pending.example")
    with django_capture_on_commit_callbacks(execute=False):
        pickup = create_pickup(
            customer, address="Pending Lane 1", window_end=timezone.now() + timedelta(days=3)
        )
    return refreshed(pickup)


@pytest.fixture
def offered(near, run_on_commit):
    customer = UserFactory(username="olga", email="olga@offered.example")
    return refreshed(run_on_commit(create_pickup, customer, address="Offer Street 2"))


@pytest.fixture
def unassigned(run_on_commit):
    """Nobody collects metal, and its window ends within the hour."""
    customer = UserFactory(username="uwe", email="uwe@unassigned.example")
    now = timezone.now()
    pickup = run_on_commit(
        create_pickup,
        customer,
        materials=["metal"],
        address="Scrap Yard 3",
        window_start=now - timedelta(hours=1),
        window_end=now + timedelta(minutes=30),
    )
    return refreshed(pickup)


@pytest.fixture
def accepted(offered, near, run_on_commit):
    run_on_commit(services.pickup_accept, pickup_id=offered.pk, by=member_of(near))
    return refreshed(offered)


# --- the changelist ----------------------------------------------------------------------------


def test_the_admin_is_branded_for_operations(operator_client):
    page = operator_client.get("/admin/").content.decode()
    assert "<title>Operations | Procurement operations</title>" in page
    assert ">Procurement operations</a>" in page


@pytest.mark.parametrize(
    "query, expected, absent",
    [
        ("status__exact=unassigned", "unassigned", "offered"),
        ("status__exact=offered", "offered", "unassigned"),
        ("vendor__id__exact={near}", "offered", "unassigned"),
        ("items__material__code__exact=metal", "unassigned", "offered"),
        ("items__material__code__exact=paper", "offered", "unassigned"),
        ("window=1h", "unassigned", "offered"),
        ("window=24h", "offered", "pending"),  # create_pickup's window ends in 4 hours
        ("window=later", "pending", "offered"),
        ("q=uwe@unassigned.example", "unassigned", "offered"),
        ("q=olga", "offered", "unassigned"),
        ("q=Scrap+Yard", "unassigned", "offered"),
        ("q=Near+Recycling", "offered", "unassigned"),
        ("q={unassigned}", "unassigned", "offered"),
    ],
)
def test_each_filter_and_search_finds_its_pickups_and_only_them(
    operator_client, near, pending, offered, unassigned, query, expected, absent
):
    pickups = {"pending": pending, "offered": offered, "unassigned": unassigned}
    query = query.format(near=near.pk, unassigned=unassigned.pk)
    found = listed(operator_client.get(f"{CHANGELIST}?{query}"))
    assert pickups[expected].pk in found
    assert pickups[absent].pk not in found


def test_the_window_filter_shows_ended_windows(operator_client, unassigned, offered):
    with time_machine.travel(timezone.now() + timedelta(hours=1), tick=False):
        found = listed(operator_client.get(f"{CHANGELIST}?window=ended"))
    assert found == {unassigned.pk}


def test_the_date_hierarchy_narrows_to_the_day_of_creation(operator_client, near, run_on_commit):
    with time_machine.travel(timezone.now() - timedelta(days=3)):
        old = run_on_commit(create_pickup, UserFactory(username="early"))
    new = run_on_commit(create_pickup, UserFactory(username="late"))
    day = old.created_at
    query = f"created_at__year={day.year}&created_at__month={day.month}&created_at__day={day.day}"
    assert listed(operator_client.get(f"{CHANGELIST}?{query}")) == {old.pk}
    assert listed(operator_client.get(f"{CHANGELIST}?created_at__year={day.year}")) >= {old.pk}
    assert listed(operator_client.get(CHANGELIST)) == {old.pk, new.pk}


def test_the_changelists_queries_do_not_grow_with_its_rows(
    operator_client, offered, unassigned, run_on_commit, django_assert_max_num_queries
):
    with django_assert_max_num_queries(20) as context:
        operator_client.get(CHANGELIST)
    few = len(context.captured_queries)
    for i in range(5):  # two more offered to Near, three unassigned; five more customers
        run_on_commit(create_pickup, UserFactory(username=f"more{i}"))
    with django_assert_max_num_queries(few):
        assert len(listed(operator_client.get(CHANGELIST))) == 7


def test_the_status_is_a_coloured_badge(operator_client, offered, unassigned):
    page = operator_client.get(CHANGELIST).content.decode()
    assert '<span class="status-badge status-offered">offered</span>' in page
    assert '<span class="status-badge status-unassigned">unassigned</span>' in page
    assert ".status-badge.status-unassigned {" in page  # its colour, from base_site.html


def test_each_pickup_links_to_its_assignment_task_in_flower(operator_client, offered, settings):
    settings.FLOWER_URL = "http://flower.example:5555/"
    task_url = f"http://flower.example:5555/task/{offered.assignment_task_id}"
    listing = operator_client.get(CHANGELIST).content.decode()
    assert f'<a href="{task_url}" target="_blank" rel="noopener"' in listing
    header_link = '<a href="http://flower.example:5555/" target="_blank" rel="noopener"'
    assert f'{header_link} id="flower-link">Flower</a>' in listing
    change = operator_client.get(f"{CHANGELIST}{offered.pk}/change/").content.decode()
    assert f'href="{task_url}"' in change


def test_without_flower_url_there_are_no_flower_links(operator_client, offered, settings):
    settings.FLOWER_URL = ""
    listing = operator_client.get(CHANGELIST).content.decode()
    assert "/task/" not in listing and 'id="flower-link"' not in listing
    assert offered.assignment_task_id in listing  # the id is still shown, as text


def test_the_change_page_shows_the_timers_and_stays_read_only(operator_client, offered):
    response = operator_client.get(f"{CHANGELIST}{offered.pk}/change/")
    page = response.content.decode()
    for label in ("Offer expires at", "Retry count", "Next retry at", "Assignment task"):
        assert f"{label}:</label>" in page, label
    assert '<span class="status-badge status-offered">offered</span>' in page
    assert 'name="_save"' not in page


# --- re-run assignment -------------------------------------------------------------------------


def rerun(client: Client, *pickups: PickupRequest):
    return client.post(
        CHANGELIST,
        {"action": "rerun_assignment", "_selected_action": [p.pk for p in pickups]},
        follow=True,
    )


def test_rerun_republishes_a_pending_pickups_assignment(
    operator_client, pending, near, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as published:
        response = rerun(operator_client, pending)
    assert shown_messages(response) == [f"Assignment re-run for 1 pickup: #{pending.pk} queued."]
    # The action published the assignment; the rest came after, from the task it ran.
    assert published[0].__qualname__ == "publish of pickups.tasks.assign_vendor_task"
    assert [c.__qualname__ for c in published].count(published[0].__qualname__) == 1
    after = refreshed(pending)
    assert after.assignment_task_id != pending.assignment_task_id
    assert (after.status, after.vendor) == ("offered", near)  # the task ran (eagerly)
    entry = LogEntry.objects.get(object_id=str(pending.pk))
    assert entry.get_change_message() == "Re-ran the assignment."


def test_rerun_offers_an_unassigned_pickup_to_a_vendor_eligible_now(
    operator_client, unassigned, run_on_commit
):
    metalworks = VendorFactory(name="Metalworks", materials=["metal"])
    response = run_on_commit(rerun, operator_client, unassigned)
    assert shown_messages(response) == [
        f"Assignment re-run for 1 pickup: #{unassigned.pk} offered to Metalworks."
    ]
    after = refreshed(unassigned)
    assert (after.status, after.vendor) == ("offered", metalworks)


def test_rerun_skips_an_accepted_pickup_and_leaves_it_untouched(
    operator_client, accepted, unassigned, run_on_commit
):
    response = run_on_commit(rerun, operator_client, accepted, unassigned)
    assert shown_messages(response) == [
        f"Assignment re-run for 1 pickup: #{unassigned.pk} still without a vendor.",
        f"Skipped 1 pickup, neither pending nor unassigned: #{accepted.pk} (accepted).",
    ]
    after = refreshed(accepted)
    assert (after.status, after.vendor_id, after.version, after.assignment_task_id) == (
        "accepted",
        accepted.vendor_id,
        accepted.version,
        accepted.assignment_task_id,
    )
    assert refreshed(unassigned).retry_count == 1
    assert not LogEntry.objects.filter(object_id=str(accepted.pk)).exists()


def test_rerun_is_offered_only_to_operators_who_may_change_pickups(unassigned, run_on_commit):
    viewer = UserFactory(username="viewer", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_pickuprequest"))
    client = Client()
    client.force_login(viewer)
    assert client.get(CHANGELIST).context["action_form"] is None  # no action for them at all
    assert shown_messages(run_on_commit(rerun, client, unassigned)) == []
    assert refreshed(unassigned).retry_count == 0  # not retried

    viewer.user_permissions.add(Permission.objects.get(codename="change_pickuprequest"))
    actions = client.get(CHANGELIST).context["action_form"].fields["action"].choices
    assert "rerun_assignment" in dict(actions)
