import math

import pytest

from vendors.geo import bounding_box, haversine_km


def test_haversine_matches_a_known_distance():
    berlin, munich = (52.5200, 13.4050), (48.1351, 11.5820)
    assert haversine_km(*berlin, *munich) == pytest.approx(504.4, abs=1.0)
    assert haversine_km(*berlin, *berlin) == 0


@pytest.mark.parametrize("lat, lon, radius", [(52.52, 13.40, 15), (-33.9, 18.4, 50), (0, 0, 100)])
def test_bounding_box_contains_every_point_of_the_circle(lat, lon, radius):
    box = bounding_box(lat, lon, radius)
    for bearing in range(0, 360, 5):
        # A point on the circle: step radius km along the bearing (spherical destination formula).
        d, b = radius / 6371.0088, math.radians(bearing)
        p1, l1 = math.radians(lat), math.radians(lon)
        p2 = math.asin(math.sin(p1) * math.cos(d) + math.cos(p1) * math.sin(d) * math.cos(b))
        l2 = l1 + math.atan2(
            math.sin(b) * math.sin(d) * math.cos(p1), math.cos(d) - math.sin(p1) * math.sin(p2)
        )
        plat, plon = math.degrees(p2), math.degrees(l2)
        assert haversine_km(lat, lon, plat, plon) == pytest.approx(radius, rel=1e-6)
        assert box.min_lat - 1e-9 <= plat <= box.max_lat + 1e-9
        assert box.min_lon - 1e-9 <= plon <= box.max_lon + 1e-9


def test_bounding_box_is_tight_away_from_the_poles():
    box = bounding_box(52.52, 13.40, 10)
    assert box.max_lat - box.min_lat == pytest.approx(20 / 111.2, rel=0.01)
    assert box.max_lon - box.min_lon < 0.4


@pytest.mark.parametrize("lat, lon", [(89.95, 10.0), (10.0, 179.99), (10.0, -179.99)])
def test_bounding_box_widens_at_a_pole_or_the_antimeridian(lat, lon):
    box = bounding_box(lat, lon, 20)
    assert (box.min_lon, box.max_lon) == (-180.0, 180.0)
