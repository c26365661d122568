import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.factories import HOME, VendorFactory
from vendors.models import Vendor
from vendors.selectors import vendor_candidates
from vendors.services import vendor_release_capacity, vendor_reserve_capacity

pytestmark = pytest.mark.django_db


def test_reserve_never_exceeds_capacity():
    vendor = VendorFactory(capacity=1)
    assert vendor_reserve_capacity(vendor_id=vendor.pk) is True
    assert vendor_reserve_capacity(vendor_id=vendor.pk) is False
    assert Vendor.objects.get(pk=vendor.pk).open_jobs == 1


def test_release_gives_a_unit_back_and_never_goes_negative():
    vendor = VendorFactory(capacity=1)
    vendor_reserve_capacity(vendor_id=vendor.pk)
    vendor_release_capacity(vendor_id=vendor.pk)
    vendor_release_capacity(vendor_id=vendor.pk)
    assert Vendor.objects.get(pk=vendor.pk).open_jobs == 0
    assert vendor_reserve_capacity(vendor_id=vendor.pk) is True


def test_candidates_are_nearest_first_and_exclude_rejecters():
    far = VendorFactory(name="far", latitude=HOME[0] + 0.05)
    near = VendorFactory(name="near", latitude=HOME[0] + 0.001)
    mid = VendorFactory(name="mid", latitude=HOME[0] + 0.02)
    found = vendor_candidates(latitude=HOME[0], longitude=HOME[1], material_codes=["paper"])
    assert [c.vendor for c in found] == [near, mid, far]
    assert found[0].distance_km == pytest.approx(0.111, abs=0.01)
    found = vendor_candidates(
        latitude=HOME[0], longitude=HOME[1], material_codes=["paper"], exclude_vendor_ids={near.pk}
    )
    assert [c.vendor for c in found] == [mid, far]


def test_box_corner_outside_the_circle_is_not_eligible():
    # The bounding box's corner is ~1.41 radii away: inside the box, outside the service area.
    vendor = VendorFactory(service_radius_km=10)
    lat = vendor.latitude + 0.95 * (vendor.max_lat - vendor.latitude)
    lon = vendor.longitude + 0.95 * (vendor.max_lon - vendor.longitude)
    assert vendor_candidates(latitude=lat, longitude=lon, material_codes=["paper"]) == []


def test_candidate_search_is_one_query_whatever_the_number_of_vendors():
    for i in range(30):
        VendorFactory(latitude=HOME[0] + (i - 15) * 0.2)  # most are out of range
    with CaptureQueriesContext(connection) as queries:
        found = vendor_candidates(latitude=HOME[0], longitude=HOME[1], material_codes=["paper"])
    assert len(queries) == 1
    assert 0 < len(found) < 30
    assert "min_lat" in queries[0]["sql"]


def test_moving_a_vendor_moves_its_service_area():
    vendor = VendorFactory()
    vendor.latitude = 10.0
    vendor.save(update_fields=["latitude"])
    stored = Vendor.objects.get(pk=vendor.pk)
    assert stored.min_lat < 10.0 < stored.max_lat
