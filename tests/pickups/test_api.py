from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from pickups.models import PickupRequest
from tests.factories import HOME, UserFactory, VendorFactory, client_for, create_pickup, member_of

pytestmark = pytest.mark.django_db


def body(**data) -> dict:
    now = timezone.now()
    return {
        "address": "Alexanderplatz 1, Berlin",
        "latitude": HOME[0],
        "longitude": HOME[1],
        "window_start": (now + timedelta(hours=1)).isoformat(),
        "window_end": (now + timedelta(hours=3)).isoformat(),
        "items": [{"material": "paper", "estimated_kg": "40"}],
        **data,
    }


@pytest.fixture
def vendor_a():
    return VendorFactory(name="A")


@pytest.fixture
def vendor_b():
    return VendorFactory(name="B", latitude=HOME[0] + 0.05)


@pytest.fixture
def offered(customer, vendor_a, vendor_b, run_on_commit):
    """A pickup of the customer's, offered to vendor A (the nearer)."""
    return run_on_commit(create_pickup, customer)


@pytest.fixture
def people(customer, vendor_a, vendor_b):
    return {
        "customer": customer,
        "member_a": member_of(vendor_a),
        "member_b": member_of(vendor_b),
        "operator": UserFactory(username="op", is_staff=True),
        "stranger": UserFactory(username="stranger"),
    }


def test_create_returns_201_and_the_pickup(customer, vendor_a, run_on_commit):
    response = run_on_commit(client_for(customer).post, "/api/pickups/", body(), format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["status"] == "pending"  # as committed; the offer follows
    assert PickupRequest.objects.get().status == "offered"


def test_the_same_idempotency_key_answers_the_same(customer, vendor_a):
    client = client_for(customer)
    first = client.post("/api/pickups/", body(), format="json", HTTP_IDEMPOTENCY_KEY="k1")
    again = client.post("/api/pickups/", body(), format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json()["id"] == first.json()["id"]
    assert again["Idempotent-Replayed"] == "true"
    assert PickupRequest.objects.count() == 1


@pytest.mark.parametrize(
    "data, field",
    [
        ({"latitude": 91}, "latitude"),
        ({"items": []}, "items"),
        ({"items": [{"material": "paper", "estimated_kg": "-1"}]}, "items"),
        ({"window_end": "not a date"}, "window_end"),
        ({"colour": "red"}, "colour"),
        ({"notes": 0}, "notes"),  # JSON types are kept: no number where a string belongs
        ({"latitude": "52.5"}, "latitude"),
        ({"latitude": True}, "latitude"),
        ({"items": [{"material": "paper", "estimated_kg": False}]}, "items"),
    ],
)
def test_invalid_create_is_400_with_field_errors_and_stores_nothing(customer, data, field):
    response = client_for(customer).post("/api/pickups/", body(**data), format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "validation_error"
    assert field in response.json()["errors"]
    assert PickupRequest.objects.count() == 0


def test_malformed_json_is_400_bad_request(customer):
    response = client_for(customer).post(
        "/api/pickups/", "{not json", content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["code"] == "bad_request"


def test_anonymous_is_401(offered):
    for response in (
        APIClient().get("/api/pickups/"),
        APIClient().get(f"/api/pickups/{offered.pk}/"),
        APIClient().post(f"/api/pickups/{offered.pk}/cancel/"),
    ):
        assert response.status_code == 401
        assert response.json()["code"] == "not_authenticated"


@pytest.mark.parametrize(
    "who, sees",
    [
        ("customer", True),
        ("member_a", True),
        ("member_b", False),
        ("operator", True),
        ("stranger", False),
    ],
)
def test_who_sees_a_pickup(offered, people, who, sees):
    client = client_for(people[who])
    listed = [p["id"] for p in client.get("/api/pickups/").json()["results"]]
    detail = client.get(f"/api/pickups/{offered.pk}/")
    assert (offered.pk in listed) is sees
    assert detail.status_code == (200 if sees else 404)
    if not sees:
        assert detail.json() == {"code": "not_found", "message": "No such object."}


def test_contact_details_reach_the_vendor_only_after_accepting(offered, people):
    client = client_for(people["member_a"])
    assert client.get(f"/api/pickups/{offered.pk}/").json()["customer"] is None
    accepted = client.post(f"/api/pickups/{offered.pk}/accept/")
    assert accepted.status_code == 200
    assert accepted.json()["customer"]["email"] == people["customer"].email


@pytest.mark.parametrize(
    "who, path, status, code",
    [
        ("member_b", "accept", 404, "not_found"),
        ("member_b", "reject", 404, "not_found"),
        ("member_b", "cancel", 404, "not_found"),
        ("stranger", "cancel", 404, "not_found"),
        ("customer", "accept", 403, "forbidden"),
        ("member_a", "cancel", 403, "forbidden"),
        ("customer", "reject", 409, "invalid_transition"),
        ("operator", "accept", 403, "forbidden"),
        ("operator", "reject", 403, "forbidden"),
        ("operator", "cancel", 403, "forbidden"),
    ],
)
def test_actions_refused_with_the_websocket_codes(offered, people, who, path, status, code):
    response = client_for(people[who]).post(f"/api/pickups/{offered.pk}/{path}/", {}, format="json")
    assert response.status_code == status
    assert response.json()["code"] == code
    assert PickupRequest.objects.get(pk=offered.pk).status == "offered"


def test_the_vendor_works_the_job_to_completed(offered, people, run_on_commit):
    client = client_for(people["member_a"])
    assert client.post(f"/api/pickups/{offered.pk}/accept/").status_code == 200
    for step in ("en_route", "picked_up", "completed"):
        data = {"status": step}
        if step == "picked_up":
            data["items"] = [{"material": "paper", "actual_kg": "38.5"}]
        response = run_on_commit(
            client.post, f"/api/pickups/{offered.pk}/status/", data, format="json"
        )
        assert response.status_code == 200, response.json()
        assert response.json()["status"] == step
    assert response.json()["items"][0]["actual_kg"] == "38.50"


def test_a_skipped_step_is_409(offered, people):
    client = client_for(people["member_a"])
    client.post(f"/api/pickups/{offered.pk}/accept/")
    response = client.post(
        f"/api/pickups/{offered.pk}/status/", {"status": "completed"}, format="json"
    )
    assert response.status_code == 409
    assert response.json()["code"] == "invalid_transition"


def test_vendor_reject_reoffers(offered, people, vendor_b, run_on_commit):
    response = run_on_commit(
        client_for(people["member_a"]).post,
        f"/api/pickups/{offered.pk}/reject/",
        {"reason": "full"},
        format="json",
    )
    assert response.status_code == 200
    assert PickupRequest.objects.get(pk=offered.pk).vendor == vendor_b


def test_customer_edits_and_cancels(offered, people):
    client = client_for(people["customer"])
    edited = client.patch(f"/api/pickups/{offered.pk}/", {"notes": "Back door"}, format="json")
    assert edited.status_code == 200 and edited.json()["notes"] == "Back door"
    moved = client.patch(f"/api/pickups/{offered.pk}/", {"latitude": 1.0}, format="json")
    assert moved.status_code == 409
    cancelled = client.post(f"/api/pickups/{offered.pk}/cancel/", {"reason": "sold"}, format="json")
    assert cancelled.json()["status"] == "cancelled"


def test_list_filters_and_pages(customer, vendor_a, run_on_commit):
    client = client_for(customer)
    ids = [create_pickup(customer).pk for _ in range(3)]
    client.post(f"/api/pickups/{ids[0]}/cancel/")
    cancelled = client.get("/api/pickups/?status=cancelled").json()
    assert [p["id"] for p in cancelled["results"]] == [ids[0]]
    page = client.get("/api/pickups/?page_size=2").json()
    assert page["count"] == 3 and len(page["results"]) == 2 and page["next"]
    future = (timezone.now() + timedelta(days=1)).isoformat()
    assert client.get("/api/pickups/", {"created_after": future}).json()["count"] == 0
    bad = client.get("/api/pickups/?status=flying")
    assert bad.status_code == 400 and bad.json()["code"] == "validation_error"


def test_session_auth_needs_csrf(customer, offered):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(customer)
    response = client.post(f"/api/pickups/{offered.pk}/cancel/", {}, format="json")
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"
    assert PickupRequest.objects.get(pk=offered.pk).status == "offered"


def test_me_tells_roles_and_vendors(people, vendor_a):
    me = client_for(people["member_a"]).get("/api/me/").json()
    assert me["roles"] == ["customer", "vendor_member"]
    assert me["vendors"] == [{"id": vendor_a.pk, "name": "A"}]
    assert client_for(people["operator"]).get("/api/me/").json()["roles"] == [
        "customer",
        "operator",
    ]


def test_too_many_requests_are_429_with_when_to_retry(customer, monkeypatch):
    from django.core.cache import cache
    from rest_framework.throttling import SimpleRateThrottle

    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"user": "3/min", "anon": "3/min"})
    cache.clear()
    client = client_for(customer)
    statuses = [client.get("/api/pickups/").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    refused = client.get("/api/pickups/")
    assert refused.json()["code"] == "throttled"
    assert 0 < refused.json()["retry_after"] <= 60
    assert int(refused["Retry-After"]) == refused.json()["retry_after"]


def test_an_unexpected_error_is_a_json_500(customer, monkeypatch):
    from pickups import selectors

    def broken(**kwargs):
        raise RuntimeError("database on fire")

    monkeypatch.setattr(selectors, "pickups_visible_to", broken)
    response = client_for(customer).get("/api/pickups/")
    assert response.status_code == 500
    assert response.json()["code"] == "internal_error"
    assert "fire" not in response.json()["message"]


def test_unknown_api_paths_and_pages_answer_json(customer):
    client = client_for(customer)
    for path in ("/api/pickups/abc/", "/api/pickups/9999999999999999999999/", "/api/nothing/"):
        response = client.get(path)
        assert response.status_code == 404
        assert response.json() == {"code": "not_found", "message": "No such object."}
    page = client.get("/api/pickups/?page=99")
    assert page.status_code == 404
    assert page.json() == {"code": "not_found", "message": "Invalid page."}


def test_throttling_ignores_a_forged_forwarded_for(db, monkeypatch):
    from django.core.cache import cache
    from rest_framework.throttling import SimpleRateThrottle

    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"user": "2/min", "anon": "2/min"})
    cache.clear()
    statuses = [
        APIClient()
        .post(
            "/api/auth/token/",
            {"username": "x", "password": "y"},
            format="json",
            HTTP_X_FORWARDED_FOR=f"10.0.0.{i}",
        )
        .status_code
        for i in range(3)
    ]
    assert statuses == [400, 400, 429]


def test_a_patch_replaces_items_only_with_complete_ones(customer, vendor_a):
    pickup = create_pickup(customer)
    response = client_for(customer).patch(
        f"/api/pickups/{pickup.pk}/", {"items": [{"material": "paper"}]}, format="json"
    )
    assert response.status_code == 400 and "items" in response.json()["errors"]


@pytest.mark.parametrize("page_size", ["null", "0", "101", "2.5", "-1"])
def test_a_page_size_out_of_range_is_400(customer, page_size):
    response = client_for(customer).get(f"/api/pickups/?page_size={page_size}")
    assert response.status_code == 400
    assert response.json()["errors"] == {"page_size": ["An integer from 1 to 100."]}


@pytest.mark.parametrize("query", ["created_before=", "created_after=", "status="])
def test_a_filter_without_a_value_is_400(customer, query):
    response = client_for(customer).get(f"/api/pickups/?{query}")
    assert response.status_code == 400
    assert response.json()["errors"] == {query[:-1]: ["May not be empty."]}


@pytest.mark.parametrize("page", ["abc", "0", "-1", "1.5"])
def test_a_page_that_is_not_a_number_is_400(customer, page):
    response = client_for(customer).get(f"/api/pickups/?page={page}")
    assert response.status_code == 400
    assert "page" in response.json()["errors"]


@pytest.mark.parametrize(
    "path, body",
    [
        ("reject", {"reason": "x", "colour": 1}),
        ("cancel", {"reason": 5}),
        ("status", {"status": "en_route", "extra": True}),
    ],
)
def test_action_bodies_are_strict(offered, people, path, body):
    who = "customer" if path == "cancel" else "member_a"
    response = client_for(people[who]).post(
        f"/api/pickups/{offered.pk}/{path}/", body, format="json"
    )
    assert response.status_code == 400 and response.json()["code"] == "validation_error"
    assert PickupRequest.objects.get(pk=offered.pk).status == "offered"


def test_created_filters_take_any_iso_offset_and_compare_in_utc(customer):
    """PostgreSQL refuses offsets beyond ±15:59 that ISO 8601 allows: the filter sends UTC."""
    pickup = create_pickup(customer)
    client = client_for(customer)
    # -20:12 puts this moment 20 h 12 min after the same wall time in UTC.
    wall = (pickup.created_at - timedelta(hours=20)).strftime("%Y-%m-%dT%H:%M:%S")
    after = client.get("/api/pickups/", {"created_after": f"{wall}-20:12"})
    assert after.status_code == 200
    assert [p["id"] for p in after.json()["results"]] == []
    before = client.get("/api/pickups/", {"created_before": f"{wall}-20:12"})
    assert [p["id"] for p in before.json()["results"]] == [pickup.pk]


@pytest.mark.parametrize(
    "query",
    [
        {"created_after": "0001-01-01T00:00:00+05:00"},
        {"created_before": "9999-12-31T23:00:00-05:00"},
    ],
)
def test_a_moment_beyond_the_range_of_dates_is_a_validation_error(customer, query):
    response = client_for(customer).get("/api/pickups/", query)
    assert response.status_code == 400
    assert response.json()["code"] == "validation_error"
    assert list(response.json()["errors"]) == list(query)
