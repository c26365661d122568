import uuid

import pytest
from django.core.cache import caches

from tests.factories import UserFactory, VendorFactory, client_for, create_pickup, member_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def pickup(customer):
    VendorFactory()
    return create_pickup(customer)


def store_result(task_id: str, **meta) -> None:
    """What the django-cache backend writes when a task finishes."""
    from procurement_system.celery import app

    app.backend.store_result(task_id, meta.pop("result"), meta.pop("state"), request=None)


def test_the_customer_polls_the_assignment_task(pickup, customer):
    task_id = pickup.assignment_task_id
    assert uuid.UUID(task_id)
    pending = client_for(customer).get(f"/api/tasks/{task_id}/")
    assert pending.status_code == 200
    assert pending.json()["state"] == "PENDING"
    store_result(task_id, result="offered", state="SUCCESS")
    done = client_for(customer).get(f"/api/tasks/{task_id}/").json()
    assert (done["state"], done["result"], done["error"]) == ("SUCCESS", "offered", None)


def test_a_failure_reports_the_error(pickup, customer):
    store_result(pickup.assignment_task_id, result=RuntimeError("boom"), state="FAILURE")
    body = client_for(customer).get(f"/api/tasks/{pickup.assignment_task_id}/").json()
    assert body["state"] == "FAILURE" and "boom" in body["error"] and body["result"] is None


def test_others_and_unknown_ids_are_not_found(pickup):
    stranger = client_for(UserFactory(username="stranger"))
    for task_id in (pickup.assignment_task_id, str(uuid.uuid4())):
        response = stranger.get(f"/api/tasks/{task_id}/")
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"
    assert stranger.get("/api/tasks/not-a-uuid/").status_code == 404


def test_operators_see_any_task(pickup):
    operator = client_for(UserFactory(username="op", is_staff=True))
    assert operator.get(f"/api/tasks/{uuid.uuid4()}/").json()["state"] == "PENDING"


def test_the_task_id_is_the_customers_to_see(pickup, customer):
    from pickups.models import PickupRequest
    from pickups.services import pickup_assign_vendor

    pickup_assign_vendor(pickup_id=pickup.pk)
    vendor_user = member_of(PickupRequest.objects.get(pk=pickup.pk).vendor)
    seen = client_for(vendor_user).get(f"/api/pickups/{pickup.pk}/").json()
    assert "assignment_task_id" not in seen
    assert (
        client_for(customer).get(f"/api/pickups/{pickup.pk}/").json()["assignment_task_id"]
        == pickup.assignment_task_id
    )


@pytest.fixture(autouse=True)
def _clear_results():
    yield
    caches["celery_results"].clear()
