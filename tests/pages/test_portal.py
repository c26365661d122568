"""The vendor portal's views: the board, its panels and the buttons, through the services."""

from decimal import Decimal

import pytest
from django.test import Client

from notifications.models import Notification
from pickups.models import PickupRejection, PickupRequest
from tests.factories import UserFactory, VendorFactory, create_pickup, member_of
from vendors.models import Vendor

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def vendor():
    return VendorFactory(name="Vera Metals", materials=["paper", "metal"])


@pytest.fixture
def member(vendor):
    return member_of(vendor)


@pytest.fixture
def browser(member):
    client = Client()
    client.force_login(member)
    return client


@pytest.fixture
def offered(customer, vendor, run_on_commit):
    pickup = run_on_commit(create_pickup, customer, materials=("paper", "metal"))
    pickup.refresh_from_db()
    assert (pickup.status, pickup.vendor_id) == ("offered", vendor.pk)
    return pickup


def status_of(pickup) -> str:
    return PickupRequest.objects.get(pk=pickup.pk).status


def post(browser, url, data=None, **headers):
    return browser.post(url, data or {}, **{**HTMX, **headers})


def test_signing_in_is_required(vendor):
    response = Client().get(f"/portal/{vendor.pk}/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_the_portal_opens_on_the_members_vendor(browser, vendor):
    response = browser.get("/portal/")
    assert response.status_code == 302
    assert response["Location"] == f"/portal/{vendor.pk}/"


def test_someone_elses_vendor_is_not_found(browser):
    other = VendorFactory(name="Other")
    assert browser.get(f"/portal/{other.pk}/").status_code == 404
    assert browser.get(f"/portal/{other.pk}/offers/").status_code == 404


def test_a_customer_without_a_vendor_gets_not_found(customer):
    client = Client()
    client.force_login(customer)
    assert client.get("/portal/").status_code == 404


def test_the_board_shows_the_offer_with_its_deadline(browser, vendor, offered):
    page = browser.get(f"/portal/{vendor.pk}/").content.decode()
    assert f'data-pickup-id="{offered.pk}"' in page
    assert f'data-deadline="{offered.offer_expires_at.isoformat()}"' in page
    assert "Accept" in page and "Reject" in page
    # The customer's contact stays hidden until the vendor accepts.
    assert "alice@example.com" not in page


def test_each_panel_fetches_itself_again_on_live_events(browser, vendor):
    page = browser.get(f"/portal/{vendor.pk}/").content.decode()
    for url in [f"/portal/{vendor.pk}/{p}/" for p in ("offers", "jobs", "history", "status")] + [
        "/notifications/panel/"
    ]:
        assert (
            f'hx-get="{url}" hx-trigger="notification from:body, pickups-changed from:body, '
            'live-reconnected from:body" hx-swap="innerHTML"'
        ) in page
        # The wrapper stays; what a panel's URL answers goes inside it, without another wrapper.
        assert "live-panel" not in browser.get(url).content.decode()


def test_an_unknown_panel_is_not_found(browser, vendor):
    assert browser.get(f"/portal/{vendor.pk}/secrets/").status_code == 404


def test_accepting_answers_a_message_and_asks_the_panels_to_refresh(browser, offered):
    response = post(browser, f"/portal/pickups/{offered.pk}/accept/")
    assert response.status_code == 200
    assert response["HX-Retarget"] == "#flash"
    assert "pickups-changed" in response["HX-Trigger"]
    assert f"You accepted pickup #{offered.pk}." in response.content.decode()
    assert status_of(offered) == "accepted"


def test_the_job_shows_the_customers_contact_once_accepted(browser, vendor, offered):
    post(browser, f"/portal/pickups/{offered.pk}/accept/")
    panel = browser.get(f"/portal/{vendor.pk}/jobs/").content.decode()
    assert "alice@example.com" in panel
    assert "Set off (en route)" in panel


def test_another_vendors_offer_is_not_found_and_unchanged(offered):
    stranger = member_of(VendorFactory(name="Other"))
    client = Client()
    client.force_login(stranger)
    response = post(client, f"/portal/pickups/{offered.pk}/accept/")
    assert response["X-Error-Code"] == "not_found"
    assert 'data-code="not_found"' in response.content.decode()
    # The page asks its panels to fetch themselves again, as after any action: they may be stale.
    assert "pickups-changed" in response["HX-Trigger"]
    assert status_of(offered) == "offered"


def test_rejecting_records_the_reason(browser, vendor, offered, run_on_commit):
    response = run_on_commit(
        post, browser, f"/portal/pickups/{offered.pk}/reject/", {"reason": "Truck full"}
    )
    assert f"You declined pickup #{offered.pk}." in response.content.decode()
    rejection = PickupRejection.objects.get(pickup=offered)
    assert (rejection.vendor_id, rejection.reason) == (vendor.pk, "Truck full")


def test_the_steps_run_to_completed_with_the_weights(browser, vendor, offered, run_on_commit):
    post(browser, f"/portal/pickups/{offered.pk}/accept/")
    post(browser, f"/portal/pickups/{offered.pk}/advance/", {"status": "en_route"})
    assert status_of(offered) == "en_route"
    assert "Share my location" in browser.get(f"/portal/{vendor.pk}/jobs/").content.decode()
    post(
        browser,
        f"/portal/pickups/{offered.pk}/advance/",
        {"status": "picked_up", "kg_paper": "10.5", "kg_metal": "0"},
    )
    weights = dict(offered.items.values_list("material_id", "actual_kg"))
    assert weights == {"paper": Decimal("10.50"), "metal": Decimal("0.00")}
    run_on_commit(post, browser, f"/portal/pickups/{offered.pk}/advance/", {"status": "completed"})
    assert status_of(offered) == "completed"
    history = browser.get(f"/portal/{vendor.pk}/history/").content.decode()
    receipt = PickupRequest.objects.get(pk=offered.pk).receipt
    assert receipt.number in history and f"/pickups/{offered.pk}/receipt/" in history


@pytest.mark.parametrize(
    ("weights", "problem"),
    [({"kg_paper": "abc", "kg_metal": "1"}, "paper"), ({"kg_paper": "1"}, "missing: metal")],
)
def test_bad_weights_change_nothing(browser, offered, weights, problem):
    post(browser, f"/portal/pickups/{offered.pk}/accept/")
    post(browser, f"/portal/pickups/{offered.pk}/advance/", {"status": "en_route"})
    response = post(
        browser, f"/portal/pickups/{offered.pk}/advance/", {"status": "picked_up", **weights}
    )
    assert response["X-Error-Code"] == "validation_error"
    assert problem in response.content.decode()
    assert status_of(offered) == "en_route"
    assert not offered.items.filter(actual_kg__isnull=False).exists()


def test_a_step_out_of_order_is_an_invalid_transition(browser, offered):
    response = post(browser, f"/portal/pickups/{offered.pk}/advance/", {"status": "completed"})
    assert response["X-Error-Code"] == "invalid_transition"
    assert status_of(offered) == "offered"


def test_going_offline_and_online(browser, vendor):
    post(browser, f"/portal/{vendor.pk}/online/", {"is_online": "false"})
    assert Vendor.objects.get(pk=vendor.pk).is_online is False
    status = browser.get(f"/portal/{vendor.pk}/status/").content.decode()
    assert "Offline" in status and "Go online" in status
    post(browser, f"/portal/{vendor.pk}/online/", {"is_online": "true"})
    assert Vendor.objects.get(pk=vendor.pk).is_online is True


def test_settings_change_capacity_and_price_list(browser, vendor):
    response = post(
        browser,
        f"/portal/{vendor.pk}/settings/",
        {
            "capacity": "7",
            "service_radius_km": "12.5",
            "collects_paper": "on",
            "price_paper": "0.25",
            "price_metal": "3",  # a price without the box ticked: not collected
        },
    )
    assert "Settings saved." in response.content.decode()
    vendor = Vendor.objects.get(pk=vendor.pk)
    assert (vendor.capacity, vendor.service_radius_km) == (7, 12.5)
    assert dict(vendor.materials.values_list("material_id", "price_per_kg")) == {
        "paper": Decimal("0.25")
    }


def test_invalid_settings_show_the_form_again_and_change_nothing(browser, vendor):
    response = post(
        browser,
        f"/portal/{vendor.pk}/settings/",
        {"capacity": "-1", "service_radius_km": "10", "collects_metal": "on"},
    )
    page = response.content.decode()
    assert 'id="settings"' in page
    assert "Give a price for what you collect." in page
    assert "greater than or equal to 0" in page
    vendor = Vendor.objects.get(pk=vendor.pk)
    assert vendor.capacity == 3
    assert sorted(vendor.materials.values_list("material_id", flat=True)) == ["metal", "paper"]


def test_without_javascript_a_button_returns_to_the_portal_with_the_message(browser, offered):
    response = browser.post(f"/portal/pickups/{offered.pk}/accept/", follow=True)
    assert response.redirect_chain[0][0] == "/portal/"
    assert f"You accepted pickup #{offered.pk}." in response.content.decode()


def test_actions_need_a_post_with_the_csrf_token(member, offered):
    client = Client(enforce_csrf_checks=True)
    client.force_login(member)
    assert client.get(f"/portal/pickups/{offered.pk}/accept/").status_code == 405
    assert client.post(f"/portal/pickups/{offered.pk}/accept/", **HTMX).status_code == 403
    assert status_of(offered) == "offered"


def test_notifications_panel_counts_and_marks_read(browser, member, offered):
    panel = browser.get("/notifications/panel/").content.decode()
    assert 'data-testid="unread-count" aria-label="1 unread">1<' in panel
    assert "pickup.offered" in panel
    post(browser, "/notifications/read/")
    assert not Notification.objects.filter(recipient=member, read_at__isnull=True).exists()
    assert 'aria-label="0 unread">0<' in browser.get("/notifications/panel/").content.decode()


def test_the_page_resumes_its_socket_after_the_newest_notification(
    browser, vendor, member, offered
):
    newest = Notification.objects.filter(recipient=member).order_by("-seq").first()
    page = browser.get(f"/portal/{vendor.pk}/").content.decode()
    assert f'data-notifications-after="{newest.seq}"' in page


def test_the_portal_home_lists_no_other_customer(vendor):
    assert UserFactory(username="bob")  # a user with no vendor sees nothing of this vendor
    client = Client()
    client.force_login(UserFactory(username="bob"))
    assert client.get(f"/portal/{vendor.pk}/jobs/").status_code == 404
