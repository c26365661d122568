import pytest
from django.test import Client

from pickups.models import PickupRequest
from tests.factories import HOME, UserFactory, VendorFactory, create_pickup

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
