from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from tests.factories import HOME, MaterialFactory, UserFactory, VendorFactory, client_for, member_of
from vendors.geo import KM_PER_DEGREE_LAT
from vendors.models import Vendor, VendorMaterial
from vendors.selectors import vendor_candidates
from vendors.services import vendor_reserve_capacity

pytestmark = pytest.mark.django_db

PUBLIC_KEYS = {
    "id",
    "name",
    "latitude",
    "longitude",
    "service_radius_km",
    "is_online",
    "materials",
}
FULL_KEYS = PUBLIC_KEYS | {"is_active", "capacity", "open_jobs", "members"}


def north(km: float) -> float:
    return HOME[0] + km / KM_PER_DEGREE_LAT


def eligible(vendor: Vendor, location=HOME, materials=("paper",)) -> bool:
    found = vendor_candidates(latitude=location[0], longitude=location[1], material_codes=materials)
    return vendor.pk in {c.vendor.pk for c in found}


def assert_error(response, status: int, code: str, field: str | None = None) -> None:
    assert response.status_code == status, response.content
    assert response.json()["code"] == code
    if field is not None:
        assert field in response.json()["errors"], response.json()


@pytest.fixture
def vendor_a():
    return VendorFactory(name="A", materials=["paper", "metal"])


@pytest.fixture
def vendor_b():
    return VendorFactory(name="B", latitude=north(5))


@pytest.fixture
def people(customer, vendor_a, vendor_b):
    return {
        "customer": customer,
        "member_a": member_of(vendor_a),
        "member_b": member_of(vendor_b),
        "operator": UserFactory(username="op", is_staff=True),
        "anonymous": None,
    }


# --- authentication --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method, path",
    [
        ("get", "/api/vendors/"),
        ("post", "/api/vendors/"),
        ("get", "/api/vendors/{a}/"),
        ("get", "/api/vendors/nearby/?lat=52.5&lon=13.4&radius_km=5"),
        ("get", "/api/vendors/me/"),
        ("patch", "/api/vendors/me/"),
        ("post", "/api/vendors/{a}/members/"),
        ("delete", "/api/vendors/{a}/members/1/"),
    ],
)
def test_anonymous_is_401(vendor_a, method, path):
    response = getattr(APIClient(), method)(path.format(a=vendor_a.pk), {}, format="json")
    assert_error(response, 401, "not_authenticated")


# --- the public directory ---------------------------------------------------------------------


@pytest.mark.parametrize("who", ["customer", "member_a", "member_b", "operator"])
def test_everyone_signed_in_lists_public_fields_only(people, vendor_a, vendor_b, who):
    response = client_for(people[who]).get("/api/vendors/")
    assert response.status_code == 200
    page = response.json()
    assert page["count"] == 2
    assert [v["name"] for v in page["results"]] == ["A", "B"]
    for vendor in page["results"]:
        assert set(vendor) == PUBLIC_KEYS
    assert page["results"][0]["materials"] == [
        {"material": "metal", "name": "Metal", "price_per_kg": "0.10"},
        {"material": "paper", "name": "Paper", "price_per_kg": "0.10"},
    ]


def test_the_list_is_paginated(people):
    for i in range(3):
        VendorFactory(name=f"C{i}")
    page = client_for(people["customer"]).get("/api/vendors/?page_size=2&page=2").json()
    assert page["count"] == 5
    assert [v["name"] for v in page["results"]] == ["C0", "C1"]
    assert page["previous"] is not None


@pytest.mark.parametrize(
    "who, sees", [("customer", False), ("member_a", False), ("operator", True)]
)
def test_inactive_vendors_are_seen_by_operators_only(people, vendor_a, who, sees):
    Vendor.objects.filter(pk=vendor_a.pk).update(is_active=False)
    client = client_for(people[who])
    listed = [v["id"] for v in client.get("/api/vendors/").json()["results"]]
    detail = client.get(f"/api/vendors/{vendor_a.pk}/")
    assert (vendor_a.pk in listed) is sees
    if sees:
        assert detail.status_code == 200
    else:
        assert_error(detail, 404, "not_found")


def test_filter_by_material_and_online(people, vendor_a, vendor_b):
    client = client_for(people["customer"])
    Vendor.objects.filter(pk=vendor_b.pk).update(is_online=False)

    def names(query: str) -> list[str]:
        response = client.get(f"/api/vendors/?{query}")
        assert response.status_code == 200
        return [v["name"] for v in response.json()["results"]]

    assert names("material=metal") == ["A"]
    assert names("material=paper") == ["A", "B"]
    assert names("material=glass") == []
    assert names("online=true") == ["A"]
    assert names("online=false") == ["B"]
    assert names("online=false&material=metal") == []


def test_an_invalid_filter_is_400(people):
    response = client_for(people["customer"]).get("/api/vendors/?online=maybe")
    assert_error(response, 400, "validation_error", "online")


def test_retrieve_has_public_fields_only(people, vendor_a):
    response = client_for(people["member_b"]).get(f"/api/vendors/{vendor_a.pk}/")
    assert response.status_code == 200
    assert set(response.json()) == PUBLIC_KEYS
    assert response.json()["name"] == "A"


@pytest.mark.parametrize("vendor_id", ["999999", "9" * 18, "9" * 19, "abc"])
def test_an_unknown_vendor_is_404(people, vendor_id):
    response = client_for(people["customer"]).get(f"/api/vendors/{vendor_id}/")
    assert_error(response, 404, "not_found")


# --- nearby -----------------------------------------------------------------------------------


def nearby(user, **params):
    return client_for(user).get("/api/vendors/nearby/", params)


def test_nearby_is_nearest_first_within_the_radius(customer):
    far = VendorFactory(name="far", latitude=north(8))
    near = VendorFactory(name="near", latitude=north(1))
    mid = VendorFactory(name="mid", latitude=north(3), service_radius_km=2)
    VendorFactory(name="out of range", latitude=north(12))
    response = nearby(customer, lat=HOME[0], lon=HOME[1], radius_km=10)
    assert response.status_code == 200
    found = response.json()
    assert [v["id"] for v in found] == [near.pk, mid.pk, far.pk]
    assert set(found[0]) == PUBLIC_KEYS | {"distance_km", "serves_location"}
    assert found[0]["distance_km"] == pytest.approx(1.0, abs=0.01)
    assert found[0]["distance_km"] == round(found[0]["distance_km"], 2)
    # The search is around the point; whether a vendor's own area reaches it is a separate flag.
    assert [v["serves_location"] for v in found] == [True, False, True]
    assert not eligible(mid)

    narrower = nearby(customer, lat=HOME[0], lon=HOME[1], radius_km=2.5).json()
    assert [v["id"] for v in narrower] == [near.pk]


def test_nearby_filters_by_material_and_skips_offline_and_inactive(customer):
    paper = VendorFactory(name="paper", latitude=north(1))
    metal = VendorFactory(name="metal", latitude=north(2), materials=["metal"])
    VendorFactory(name="offline", latitude=north(1), is_online=False)
    VendorFactory(name="inactive", latitude=north(1), is_active=False)
    everyone = nearby(customer, lat=HOME[0], lon=HOME[1], radius_km=5).json()
    assert [v["id"] for v in everyone] == [paper.pk, metal.pk]
    only_metal = nearby(customer, lat=HOME[0], lon=HOME[1], radius_km=5, material="metal").json()
    assert [v["id"] for v in only_metal] == [metal.pk]
    assert nearby(customer, lat=HOME[0], lon=HOME[1], radius_km=5, material="glass").json() == []


def test_nearby_returns_at_most_50_in_few_queries(customer):
    MaterialFactory(code="paper")
    for i in range(55):
        VendorFactory(latitude=north(0.1 * (i + 1)))
    with CaptureQueriesContext(connection) as queries:
        found = nearby(customer, lat=HOME[0], lon=HOME[1], radius_km=20).json()
    assert len(found) == 50
    assert found[-1]["distance_km"] == pytest.approx(5.0, abs=0.01)
    # The vendors, then their price lists and materials: never a query per vendor.
    vendor_queries = [q for q in queries if "vendors_" in q["sql"]]
    assert len(vendor_queries) <= 3
    assert "latitude" in vendor_queries[0]["sql"]


@pytest.mark.parametrize(
    "params, field",
    [
        ({"lon": 13.4, "radius_km": 5}, "lat"),
        ({"lat": 52.5, "radius_km": 5}, "lon"),
        ({"lat": 52.5, "lon": 13.4}, "radius_km"),
        ({"lat": 90.5, "lon": 13.4, "radius_km": 5}, "lat"),
        ({"lat": 52.5, "lon": -180.5, "radius_km": 5}, "lon"),
        ({"lat": "north", "lon": 13.4, "radius_km": 5}, "lat"),
        ({"lat": "nan", "lon": 13.4, "radius_km": 5}, "lat"),
        ({"lat": 52.5, "lon": "inf", "radius_km": 5}, "lon"),
        ({"lat": 52.5, "lon": 13.4, "radius_km": 0}, "radius_km"),
        ({"lat": 52.5, "lon": 13.4, "radius_km": -1}, "radius_km"),
        ({"lat": 52.5, "lon": 13.4, "radius_km": 100.01}, "radius_km"),
        ({"lat": 52.5, "lon": 13.4, "radius_km": "1e400"}, "radius_km"),
        ({"lat": 52.5, "lon": 13.4, "radius_km": 5, "material": "no such!"}, "material"),
        ({"lat": 52.5, "lon": 13.4, "radius_km": 5, "radius": 5}, "radius"),
    ],
)
def test_invalid_nearby_queries_are_400(customer, params, field):
    assert_error(nearby(customer, **params), 400, "validation_error", field)


def test_nearby_at_the_edges_of_the_map(customer):
    for lat, lon in [(90, 0), (-90, 180), (0, 180), (0, -180)]:
        response = nearby(customer, lat=lat, lon=lon, radius_km=100)
        assert response.status_code == 200, response.json()


# --- a member's own vendor --------------------------------------------------------------------


def test_a_member_reads_their_vendor_with_its_workload(people, vendor_a):
    vendor_reserve_capacity(vendor_id=vendor_a.pk)
    response = client_for(people["member_a"]).get("/api/vendors/me/")
    assert response.status_code == 200
    data = response.json()
    assert set(data) == FULL_KEYS
    assert data["id"] == vendor_a.pk
    assert (data["capacity"], data["open_jobs"], data["is_active"]) == (3, 1, True)
    member = people["member_a"]
    assert data["members"] == [{"id": member.pk, "username": member.username}]


@pytest.mark.parametrize("who", ["customer", "operator"])
def test_no_vendor_of_ones_own_is_404(people, who):
    client = client_for(people[who])
    assert_error(client.get("/api/vendors/me/"), 404, "not_found")
    assert_error(
        client.patch("/api/vendors/me/", {"is_online": False}, format="json"), 404, "not_found"
    )


def test_a_member_of_several_vendors_chooses_with_the_query(people, vendor_a, vendor_b):
    member = people["member_b"]
    vendor_a.members.add(member)
    client = client_for(member)
    assert client.get("/api/vendors/me/").json()["id"] == vendor_a.pk  # first by name
    assert client.get(f"/api/vendors/me/?vendor={vendor_b.pk}").json()["id"] == vendor_b.pk
    response = client.patch(f"/api/vendors/me/?vendor={vendor_b.pk}", {"capacity": 9})
    assert response.json()["id"] == vendor_b.pk
    assert Vendor.objects.get(pk=vendor_b.pk).capacity == 9
    assert Vendor.objects.get(pk=vendor_a.pk).capacity == 3


def test_another_vendor_is_404_not_403(people, vendor_a, vendor_b):
    client = client_for(people["member_b"])
    assert_error(client.get(f"/api/vendors/me/?vendor={vendor_a.pk}"), 404, "not_found")
    response = client.patch(f"/api/vendors/me/?vendor={vendor_a.pk}", {"is_online": False})
    assert_error(response, 404, "not_found")
    assert Vendor.objects.get(pk=vendor_a.pk).is_online is True


@pytest.mark.parametrize("query", ["vendor=abc", "vendor=0", f"vendor={2**63}", "colour=red"])
def test_an_invalid_vendor_query_is_400(people, query):
    response = client_for(people["member_a"]).get(f"/api/vendors/me/?{query}")
    assert_error(response, 400, "validation_error")


def test_going_offline_takes_the_vendor_out_of_assignment(people, vendor_a):
    client = client_for(people["member_a"])
    assert eligible(vendor_a)
    response = client.patch("/api/vendors/me/", {"is_online": False}, format="json")
    assert response.status_code == 200
    assert response.json()["is_online"] is False
    assert not eligible(vendor_a)
    assert vendor_a.pk not in [
        v["id"] for v in nearby(people["customer"], lat=HOME[0], lon=HOME[1], radius_km=5).json()
    ]
    client.patch("/api/vendors/me/", {"is_online": True}, format="json")
    assert eligible(vendor_a)


def test_capacity_below_open_jobs_is_allowed_and_stops_new_offers(people, vendor_a):
    for _ in range(2):
        assert vendor_reserve_capacity(vendor_id=vendor_a.pk)
    response = client_for(people["member_a"]).patch("/api/vendors/me/", {"capacity": 1})
    assert response.status_code == 200
    assert (response.json()["capacity"], response.json()["open_jobs"]) == (1, 2)
    assert not eligible(vendor_a)
    assert vendor_reserve_capacity(vendor_id=vendor_a.pk) is False
    client_for(people["member_a"]).patch("/api/vendors/me/", {"capacity": 3})
    assert vendor_reserve_capacity(vendor_id=vendor_a.pk) is True
    assert Vendor.objects.get(pk=vendor_a.pk).open_jobs == 3


def test_capacity_zero_takes_no_offers(people, vendor_a):
    client_for(people["member_a"]).patch("/api/vendors/me/", {"capacity": 0})
    assert not eligible(vendor_a)


def test_a_new_service_radius_moves_the_service_area(people, vendor_a):
    far_point = (north(1.11 + 15), HOME[1])  # the vendor is ~1.11 km north of HOME
    assert not eligible(vendor_a, far_point)
    response = client_for(people["member_a"]).patch(
        "/api/vendors/me/", {"service_radius_km": 20}, format="json"
    )
    assert response.json()["service_radius_km"] == 20
    assert eligible(vendor_a, far_point)
    vendor = Vendor.objects.get(pk=vendor_a.pk)
    assert vendor.max_lat > north(1.11 + 19)


def test_the_price_list_is_replaced_as_a_whole(people, vendor_a):
    MaterialFactory(code="glass")
    prices = [
        {"material": "glass", "price_per_kg": "0.05"},
        {"material": "paper", "price_per_kg": "1.5"},
    ]
    response = client_for(people["member_a"]).patch(
        "/api/vendors/me/", {"materials": prices}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["materials"] == [
        {"material": "glass", "name": "Glass", "price_per_kg": "0.05"},
        {"material": "paper", "name": "Paper", "price_per_kg": "1.50"},
    ]
    stored = VendorMaterial.objects.filter(vendor=vendor_a)
    assert {(m.material_id, m.price_per_kg) for m in stored} == {
        ("glass", Decimal("0.05")),
        ("paper", Decimal("1.50")),
    }
    assert not eligible(vendor_a, materials=["metal"])
    assert eligible(vendor_a, materials=["glass", "paper"])


def test_an_empty_price_list_takes_no_offers(people, vendor_a):
    response = client_for(people["member_a"]).patch(
        "/api/vendors/me/", {"materials": []}, format="json"
    )
    assert response.json()["materials"] == []
    assert not eligible(vendor_a)


def test_an_empty_patch_changes_nothing(people, vendor_a):
    response = client_for(people["member_a"]).patch("/api/vendors/me/", {}, format="json")
    assert response.status_code == 200
    assert response.json()["capacity"] == 3


def price(material="paper", price_per_kg="1.00", **extra) -> dict:
    return {"material": material, "price_per_kg": price_per_kg, **extra}


@pytest.mark.parametrize(
    "data, field",
    [
        ({"capacity": -1}, "capacity"),
        ({"capacity": 1001}, "capacity"),
        ({"capacity": 10**30}, "capacity"),
        ({"capacity": "many"}, "capacity"),
        ({"service_radius_km": 0.05}, "service_radius_km"),
        ({"service_radius_km": 500.5}, "service_radius_km"),
        ({"is_online": "perhaps"}, "is_online"),
        ({"materials": [price("unobtainium")]}, "materials"),
        ({"materials": [price(), price(price_per_kg="2")]}, "materials"),
        ({"materials": [price(price_per_kg="-0.01")]}, "materials"),
        ({"materials": [price(price_per_kg="0.001")]}, "materials"),
        ({"materials": [price(price_per_kg="1e20")]}, "materials"),
        ({"materials": [price(price_per_kg="NaN")]}, "materials"),
        ({"materials": [price(colour="red")]}, "materials"),
        ({"materials": [price(f"m{i}") for i in range(51)]}, "materials"),
        ({"materials": None}, "materials"),
        ({"materials": {"paper": "1.00"}}, "materials"),
        ({"open_jobs": 0}, "open_jobs"),
        ({"name": "Renamed"}, "name"),
        ({"is_active": True}, "is_active"),
    ],
)
def test_invalid_settings_are_400_and_change_nothing(people, vendor_a, data, field):
    response = client_for(people["member_a"]).patch("/api/vendors/me/", data, format="json")
    assert_error(response, 400, "validation_error", field)
    vendor = Vendor.objects.get(pk=vendor_a.pk)
    assert (vendor.capacity, vendor.service_radius_km, vendor.is_online) == (3, 10, True)
    assert set(
        VendorMaterial.objects.filter(vendor=vendor).values_list("material_id", flat=True)
    ) == {
        "metal",
        "paper",
    }


def test_a_number_beyond_float_is_400(people, vendor_a):
    response = client_for(people["member_a"]).patch(
        "/api/vendors/me/", '{"service_radius_km": 1e400}', content_type="application/json"
    )
    assert_error(response, 400, "validation_error", "service_radius_km")
    assert Vendor.objects.get(pk=vendor_a.pk).service_radius_km == 10


def test_malformed_json_is_400_bad_request(people):
    response = client_for(people["member_a"]).patch(
        "/api/vendors/me/", "{nope", content_type="application/json"
    )
    assert_error(response, 400, "bad_request")


# --- operators: vendors and members -----------------------------------------------------------

NEW_VENDOR = {
    "name": "Vera Metals",
    "latitude": HOME[0],
    "longitude": HOME[1],
    "service_radius_km": 12.5,
    "capacity": 4,
    "is_active": True,
    "is_online": False,
    "materials": [{"material": "paper", "price_per_kg": "0.12"}],
}


def test_an_operator_creates_a_vendor(people):
    response = client_for(people["operator"]).post("/api/vendors/", NEW_VENDOR, format="json")
    assert response.status_code == 201, response.json()
    data = response.json()
    assert set(data) == FULL_KEYS
    assert data["name"] == "Vera Metals"
    assert (data["capacity"], data["open_jobs"], data["members"]) == (4, 0, [])
    assert data["materials"] == [{"material": "paper", "name": "Paper", "price_per_kg": "0.12"}]
    vendor = Vendor.objects.get(pk=data["id"])
    assert vendor.max_lat > vendor.latitude  # the service area's box is stored
    assert not eligible(vendor)  # created offline
    Vendor.objects.filter(pk=vendor.pk).update(is_online=True)
    assert eligible(vendor)


def test_create_has_defaults(people):
    data = {k: NEW_VENDOR[k] for k in ("name", "latitude", "longitude", "service_radius_km")}
    response = client_for(people["operator"]).post("/api/vendors/", data, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["capacity"], body["is_active"], body["is_online"], body["materials"]) == (
        5,
        True,
        True,
        [],
    )


@pytest.mark.parametrize(
    "data, field",
    [
        ({"name": ""}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"latitude": 91}, "latitude"),
        ({"longitude": 181}, "longitude"),
        ({"service_radius_km": 0}, "service_radius_km"),
        ({"capacity": 1001}, "capacity"),
        ({"materials": [price("unobtainium")]}, "materials"),
        ({"open_jobs": 3}, "open_jobs"),
        ({"members": [1]}, "members"),
    ],
)
def test_invalid_create_is_400_and_stores_nothing(people, data, field):
    response = client_for(people["operator"]).post(
        "/api/vendors/", {**NEW_VENDOR, **data}, format="json"
    )
    assert_error(response, 400, "validation_error", field)
    assert not Vendor.objects.filter(name=NEW_VENDOR["name"]).exists()


def test_create_needs_the_required_fields(people):
    response = client_for(people["operator"]).post("/api/vendors/", {}, format="json")
    assert_error(response, 400, "validation_error")
    assert set(response.json()["errors"]) == {"name", "latitude", "longitude", "service_radius_km"}


@pytest.mark.parametrize("who", ["customer", "member_a", "member_b"])
@pytest.mark.parametrize("data", [NEW_VENDOR, {"colour": "red"}])
def test_only_operators_create_vendors(people, who, data):
    response = client_for(people[who]).post("/api/vendors/", data, format="json")
    assert_error(response, 403, "forbidden")
    assert Vendor.objects.count() == 2


def test_an_operator_adds_and_removes_a_member(people, vendor_a):
    newcomer = people["customer"]
    operator = client_for(people["operator"])
    response = operator.post(
        f"/api/vendors/{vendor_a.pk}/members/", {"username": newcomer.username}, format="json"
    )
    assert response.status_code == 200, response.json()
    assert set(response.json()) == FULL_KEYS
    assert newcomer.pk in {m["id"] for m in response.json()["members"]}
    assert client_for(newcomer).get("/api/vendors/me/").json()["id"] == vendor_a.pk

    again = operator.post(
        f"/api/vendors/{vendor_a.pk}/members/", {"username": newcomer.username}, format="json"
    )
    assert again.status_code == 200
    assert vendor_a.members.count() == 2

    removed = operator.delete(f"/api/vendors/{vendor_a.pk}/members/{newcomer.pk}/")
    assert removed.status_code == 204
    assert not vendor_a.members.filter(pk=newcomer.pk).exists()
    assert_error(client_for(newcomer).get("/api/vendors/me/"), 404, "not_found")
    # The former member is no longer one: a second removal has nothing to remove.
    again = operator.delete(f"/api/vendors/{vendor_a.pk}/members/{newcomer.pk}/")
    assert_error(again, 404, "not_found")


@pytest.mark.parametrize(
    "data, field",
    [
        ({"username": "nobody"}, "username"),
        ({"username": ""}, "username"),
        ({}, "username"),
        ({"username": "alice", "role": "admin"}, "role"),
    ],
)
def test_adding_an_unknown_user_is_400(people, vendor_a, data, field):
    response = client_for(people["operator"]).post(
        f"/api/vendors/{vendor_a.pk}/members/", data, format="json"
    )
    assert_error(response, 400, "validation_error", field)
    assert vendor_a.members.count() == 1


def test_members_of_an_unknown_vendor_are_404(people):
    operator = client_for(people["operator"])
    added = operator.post("/api/vendors/999999/members/", {"username": "alice"}, format="json")
    assert_error(added, 404, "not_found")
    removed = operator.delete(f"/api/vendors/999999/members/{people['customer'].pk}/")
    assert_error(removed, 404, "not_found")
    assert_error(operator.delete(f"/api/vendors/1/members/{'9' * 19}/"), 404, "not_found")


@pytest.mark.parametrize("who", ["customer", "member_a", "member_b"])
def test_only_operators_manage_members(people, vendor_a, who):
    client = client_for(people[who])
    added = client.post(
        f"/api/vendors/{vendor_a.pk}/members/", {"username": "alice"}, format="json"
    )
    assert_error(added, 403, "forbidden")
    member = people["member_a"]
    removed = client.delete(f"/api/vendors/{vendor_a.pk}/members/{member.pk}/")
    assert_error(removed, 403, "forbidden")
    # No probing either: an unknown vendor is forbidden as well, not not_found.
    assert_error(client.post("/api/vendors/999999/members/", {}, format="json"), 403, "forbidden")
    assert set(vendor_a.members.all()) == {member}


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_vendors_are_not_changed_through_their_public_url(people, vendor_a, method):
    response = getattr(client_for(people["operator"]), method)(
        f"/api/vendors/{vendor_a.pk}/", {"name": "X"}, format="json"
    )
    assert_error(response, 405, "method_not_allowed")
