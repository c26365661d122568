import pytest
from django.contrib.admin.models import LogEntry
from django.test import Client

from pickups.models import PickupRequest
from tests.factories import HOME, UserFactory, VendorFactory, create_pickup
from vendors.models import Vendor

pytestmark = pytest.mark.django_db


def test_an_operator_switching_a_vendor_online_offers_it_waiting_pickups(
    customer, run_on_commit, django_capture_on_commit_callbacks
):
    vendor = VendorFactory(name="Sleepy", latitude=HOME[0] + 0.005, is_online=False)
    waiting = run_on_commit(create_pickup, customer)
    assert PickupRequest.objects.get(pk=waiting.pk).status == "unassigned"
    price = vendor.materials.get()
    client = Client()
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    form = {
        "name": vendor.name,
        "latitude": vendor.latitude,
        "longitude": vendor.longitude,
        "service_radius_km": vendor.service_radius_km,
        "capacity": vendor.capacity,
        "is_active": "on",
        "is_online": "on",
        "members": [m.pk for m in vendor.members.all()],
        "materials-TOTAL_FORMS": "1",
        "materials-INITIAL_FORMS": "1",
        "materials-0-id": price.pk,
        "materials-0-vendor": vendor.pk,
        "materials-0-material": price.material_id,
        "materials-0-price_per_kg": "0.10",
    }
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/admin/vendors/vendor/{vendor.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    pickup = PickupRequest.objects.get(pk=waiting.pk)
    assert (pickup.status, pickup.vendor_id) == ("offered", vendor.pk)


# --- the changelist and its actions -----------------------------------------------------------

CHANGELIST = "/admin/vendors/vendor/"


@pytest.fixture
def operator_client(db) -> Client:
    client = Client()
    client.force_login(UserFactory(username="operator", is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def vendors():
    """Paper Co: two members, one free place of three. Metal Ltd: full, offline, inactive."""
    paper = VendorFactory(name="Paper Co", member=UserFactory(username="pam", email="pam@paper.co"))
    paper.members.add(UserFactory(username="pete"))
    Vendor.objects.filter(pk=paper.pk).update(open_jobs=2)
    metal = VendorFactory(
        name="Metal Ltd",
        materials=["metal"],
        member=UserFactory(username="mo", email="mo@metal.example"),
        capacity=1,
        is_online=False,
        is_active=False,
    )
    Vendor.objects.filter(pk=metal.pk).update(open_jobs=1)
    return {"paper": paper, "metal": metal}


def listed(response) -> set[str]:
    assert response.status_code == 200, response.status_code  # a bad filter redirects (?e=1)
    return {vendor.name for vendor in response.context["cl"].result_list}


@pytest.mark.parametrize(
    "query, expected",
    [
        ("is_active__exact=1", {"Paper Co"}),
        ("is_active__exact=0", {"Metal Ltd"}),
        ("is_online__exact=0", {"Metal Ltd"}),
        ("materials__material__code__exact=metal", {"Metal Ltd"}),
        ("materials__material__code__exact=paper", {"Paper Co"}),
        ("free_capacity=yes", {"Paper Co"}),
        ("free_capacity=no", {"Metal Ltd"}),
        ("q=Paper", {"Paper Co"}),
        ("q=mo", {"Metal Ltd"}),  # a member's username
        ("q=pam@paper.co", {"Paper Co"}),  # a member's email
        ("", {"Paper Co", "Metal Ltd"}),
    ],
)
def test_each_filter_and_search_finds_its_vendors_and_only_them(
    operator_client, vendors, query, expected
):
    assert listed(operator_client.get(f"{CHANGELIST}?{query}")) == expected


def test_the_list_shows_members_and_open_jobs_of_capacity(operator_client, vendors):
    response = operator_client.get(f"{CHANGELIST}?q=Paper")
    [paper] = response.context["cl"].result_list
    assert paper.members_total == 2
    page = response.content.decode()
    assert '<td class="field-jobs">2 / 3</td>' in page
    assert '<td class="field-members_count">2</td>' in page


def test_switching_online_goes_through_the_service_and_offers_waiting_pickups(
    operator_client, customer, run_on_commit
):
    sleepy = VendorFactory(name="Sleepy", latitude=HOME[0] + 0.005, is_online=False)
    awake = VendorFactory(name="Awake", materials=["glass"])
    waiting = run_on_commit(create_pickup, customer)
    assert PickupRequest.objects.get(pk=waiting.pk).status == "unassigned"
    response = run_on_commit(
        operator_client.post,
        CHANGELIST,
        {"action": "switch_online", "_selected_action": [sleepy.pk, awake.pk]},
        follow=True,
    )
    messages = [str(m) for m in response.context["messages"]]
    assert messages == ["1 vendor switched online; 1 already online."]
    assert Vendor.objects.get(pk=sleepy.pk).is_online
    pickup = PickupRequest.objects.get(pk=waiting.pk)
    assert (pickup.status, pickup.vendor_id) == ("offered", sleepy.pk)
    assert LogEntry.objects.get(object_id=str(sleepy.pk)).get_change_message() == (
        "Switched online."
    )


def test_switching_offline_keeps_the_vendors_jobs_but_stops_offers(
    operator_client, vendors, customer, run_on_commit
):
    paper = vendors["paper"]
    response = operator_client.post(
        CHANGELIST,
        {"action": "switch_offline", "_selected_action": [paper.pk, vendors["metal"].pk]},
        follow=True,
    )
    messages = [str(m) for m in response.context["messages"]]
    assert messages == ["1 vendor switched offline; 1 already offline."]
    paper = Vendor.objects.get(pk=paper.pk)
    assert (paper.is_online, paper.open_jobs) == (False, 2)
    pickup = run_on_commit(create_pickup, customer)
    assert PickupRequest.objects.get(pk=pickup.pk).status == "unassigned"
