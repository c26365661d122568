"""The customer's pages: the list, the new-pickup form, the live detail, cancel, reject."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.test import Client
from django.utils import timezone

from notifications.selectors import notification_last_seq
from pickups import services
from pickups.models import PickupRequest
from tests.factories import MaterialFactory, UserFactory, VendorFactory, create_pickup, member_of

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def browser(customer):
    client = Client()
    client.force_login(customer)
    return client


@pytest.fixture
def vendor():
    return VendorFactory(name="Vera Metals", materials=["paper", "metal"])


def form_data(**overrides) -> dict:
    start = timezone.localtime() + timedelta(hours=1)
    return {
        "address": "Alexanderplatz 1, Berlin",
        "latitude": "52.5219",
        "longitude": "13.4132",
        "window_start": start.strftime("%Y-%m-%dT%H:%M"),
        "window_end": (start + timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M"),
        "kg_paper": "12.5",
        "kg_metal": "",
        "contact_phone": "+49 30 1234",
        "notes": "Ring twice",
        "idempotency_key": "form-1",
        **overrides,
    }


@pytest.mark.parametrize(
    ("user", "where"),
    [("customer", "/pickups/"), ("member", "/portal/"), ("operator", "/admin/")],
)
def test_home_sends_each_role_to_its_page(customer, vendor, user, where):
    people = {
        "customer": customer,
        "member": member_of(vendor),
        "operator": UserFactory(username="op", is_staff=True),
    }
    client = Client()
    client.force_login(people[user])
    assert client.get("/")["Location"] == where


def test_home_asks_a_stranger_to_sign_in():
    assert Client().get("/")["Location"] == "/accounts/login/"


def test_signing_in_leads_home(customer):
    customer.set_password("pw-123456789")
    customer.save()
    client = Client(enforce_csrf_checks=True)
    page = client.get("/accounts/login/")
    token = page.cookies["csrftoken"].value
    response = client.post(
        "/accounts/login/",
        {"username": "alice", "password": "pw-123456789", "csrfmiddlewaretoken": token},
    )
    assert response["Location"] == "/"


def test_the_form_creates_a_pickup_and_opens_it(browser, customer, vendor, run_on_commit):
    MaterialFactory(code="metal")
    response = run_on_commit(browser.post, "/pickups/", form_data())
    pickup = PickupRequest.objects.get(customer=customer)
    assert response["Location"] == f"/pickups/{pickup.pk}/"
    assert [(i.material_id, str(i.estimated_kg)) for i in pickup.items.all()] == [
        ("paper", "12.50")
    ]
    assert (pickup.contact_phone, pickup.notes, pickup.status) == (
        "+49 30 1234",
        "Ring twice",
        "offered",
    )
    page = browser.get(f"/pickups/{pickup.pk}/").content.decode()
    assert "Vera Metals" in page and 'data-status="offered"' in page


def test_sending_the_form_twice_creates_one_pickup(browser, customer, vendor):
    first = browser.post("/pickups/", form_data())
    second = browser.post("/pickups/", form_data())
    assert first["Location"] == second["Location"]
    assert PickupRequest.objects.filter(customer=customer).count() == 1


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"kg_paper": ""}, "Give the estimated weight of at least one material."),
        ({"latitude": "95"}, "less than or equal to 90"),
        ({"contact_phone": "call me"}, "This value does not match the required pattern."),
        (
            {"window_end": (timezone.localtime() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")},
            "The window must end",
        ),
    ],
)
def test_an_invalid_form_shows_why_and_creates_nothing(
    browser, customer, vendor, overrides, message
):
    response = browser.post("/pickups/", form_data(**overrides))
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not PickupRequest.objects.filter(customer=customer).exists()


def test_times_are_read_in_the_browsers_time_zone(browser, customer, vendor):
    browser.cookies["tz"] = "Europe/Berlin"
    berlin = ZoneInfo("Europe/Berlin")
    start = (datetime.now(berlin) + timedelta(days=1)).replace(
        hour=14, minute=0, second=0, microsecond=0
    )
    browser.post(
        "/pickups/",
        form_data(
            window_start=start.strftime("%Y-%m-%dT%H:%M"),
            window_end=(start + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"),
        ),
    )
    pickup = PickupRequest.objects.get(customer=customer)
    assert pickup.window_start == start
    assert pickup.window_start.astimezone(berlin).hour == 14


def test_an_unknown_time_zone_cookie_is_ignored(browser):
    browser.cookies["tz"] = "Mars/Olympus"
    assert "UTC" in browser.get("/pickups/").content.decode()


def test_someone_elses_pickup_is_not_found(vendor):
    pickup = create_pickup(UserFactory(username="bob"))
    client = Client()
    client.force_login(UserFactory(username="carol"))
    assert client.get(f"/pickups/{pickup.pk}/").status_code == 404
    assert client.get(f"/pickups/{pickup.pk}/panel/").status_code == 404
    # ... and so is it for the vendor's members: they work from the portal.
    client.force_login(member_of(vendor))
    assert client.get(f"/pickups/{pickup.pk}/").status_code == 404


def test_the_list_shows_the_customers_pickups_only(browser, customer, vendor):
    mine = create_pickup(customer)
    theirs = create_pickup(UserFactory(username="bob"))
    panel = browser.get("/pickups/panel/").content.decode()
    assert f'data-pickup-id="{mine.pk}"' in panel
    assert f'data-pickup-id="{theirs.pk}"' not in panel


def test_cancelling(browser, customer, vendor, run_on_commit):
    pickup = run_on_commit(create_pickup, customer)
    response = browser.post(f"/pickups/{pickup.pk}/cancel/", **HTMX)
    assert f"Pickup #{pickup.pk} was cancelled." in response.content.decode()
    panel = browser.get(f"/pickups/{pickup.pk}/panel/").content.decode()
    assert 'data-status="cancelled"' in panel and "Cancel pickup" not in panel
    again = browser.post(f"/pickups/{pickup.pk}/cancel/", **HTMX)
    assert again["X-Error-Code"] == "invalid_transition"


def test_choosing_another_vendor_once_accepted(browser, customer, vendor, run_on_commit):
    pickup = run_on_commit(create_pickup, customer)
    services.pickup_accept(pickup_id=pickup.pk, by=member_of(vendor))
    panel = browser.get(f"/pickups/{pickup.pk}/panel/").content.decode()
    assert "Choose another vendor" in panel
    response = run_on_commit(browser.post, f"/pickups/{pickup.pk}/reject-vendor/", **HTMX)
    assert "goes to another vendor" in response.content.decode()
    pickup.refresh_from_db()
    assert pickup.rejections.get().role == "customer"


def test_the_timeline_lists_every_step(browser, customer, vendor, run_on_commit):
    pickup = run_on_commit(create_pickup, customer)
    services.pickup_accept(pickup_id=pickup.pk, by=member_of(vendor))
    panel = browser.get(f"/pickups/{pickup.pk}/panel/").content.decode()
    assert [e for e in ("create", "assign", "accept") if f'data-event="{e}"' in panel] == [
        "create",
        "assign",
        "accept",
    ]


def test_the_pages_load_their_scripts_from_the_app(browser, customer):
    pickup = create_pickup(customer)
    page = browser.get(f"/pickups/{pickup.pk}/").content.decode()
    for script in ("django_htmx/htmx-2.min.js", "pickups/live.js", "pickups/customer.js"):
        assert f"/static/{script}" in page
    assert "https://" not in page


def test_the_page_resumes_its_socket_from_before_what_it_shows(browser, customer, monkeypatch):
    """A change that commits while the page is being read (here: between the socket's position
    and the pickup) must reach the page as a notification after that position, or the page
    would show it half and never hear of it."""
    from notifications.services import notification_store
    from pickups import views

    pickup = create_pickup(customer)
    before = notification_last_seq(user_id=customer.pk)
    read = views._pickup

    def read_during_a_change(request, pickup_id):
        notification_store(
            user_id=customer.pk,
            kind="pickup.offered",
            message="Offered meanwhile.",
            data={"pickup_id": pickup.pk},
            event_key="meanwhile",
        )
        return read(request, pickup_id)

    monkeypatch.setattr(views, "_pickup", read_during_a_change)
    page = browser.get(f"/pickups/{pickup.pk}/").content.decode()
    assert f'data-notifications-after="{before}"' in page
    assert notification_last_seq(user_id=customer.pk) == before + 1  # delivered by the socket
