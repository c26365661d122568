"""CSRF on the session-authenticated REST API: a browser signed in with the session cookie must
send the CSRF token with every unsafe request; token-authenticated clients need none (a browser
never attaches an ``Authorization`` header on its own)."""

import json

import pytest
from django.test import Client

from pickups.models import PickupRequest
from tests.consumers import token_for
from tests.factories import create_pickup

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice(customer):
    customer.set_password("s3cret-pass-123")
    customer.save()
    return customer


@pytest.fixture
def browser(alice) -> Client:
    """Signed in through the login form, as a person would be: CSRF cookie, then the form."""
    browser = Client(enforce_csrf_checks=True)
    assert browser.get("/accounts/login/").status_code == 200
    form = {"username": "alice", "password": "s3cret-pass-123"}
    refused = browser.post("/accounts/login/", form)
    assert refused.status_code == 403  # the login form itself is protected
    signed_in = browser.post(
        "/accounts/login/", {**form, "csrfmiddlewaretoken": browser.cookies["csrftoken"].value}
    )
    assert signed_in.status_code == 302
    return browser


def send(client: Client, method: str, path: str, body=None, **headers):
    return getattr(client, method)(
        path,
        json.dumps(body) if body is not None else None,
        content_type="application/json",
        **headers,
    )


def csrf(browser: Client) -> dict[str, str]:
    return {"HTTP_X_CSRFTOKEN": browser.cookies["csrftoken"].value}


def test_session_post_without_the_csrf_token_is_forbidden(alice, browser):
    pickup = create_pickup(alice)
    response = send(browser, "post", f"/api/pickups/{pickup.pk}/cancel/", {"reason": "x"})
    assert response.status_code == 403
    assert response.json() == {
        "code": "forbidden",
        "message": "CSRF Failed: CSRF token missing.",
    }
    assert PickupRequest.objects.get(pk=pickup.pk).status != "cancelled"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", "/api/pickups/", {}),
        ("patch", "/api/pickups/{id}/", {"notes": "x"}),
        ("post", "/api/pickups/{id}/cancel/", {}),
        ("post", "/api/notifications/mark-read/", {"all": True}),
        ("patch", "/api/vendors/me/", {"is_online": False}),
        ("delete", "/api/auth/token/", None),
    ],
)
def test_every_unsafe_method_needs_the_token(alice, browser, method, path, body):
    pickup = create_pickup(alice)
    token_for(alice)
    response = send(browser, method, path.format(id=pickup.pk), body)
    assert response.status_code == 403, response.content
    assert response.json()["message"].startswith("CSRF Failed")
    assert PickupRequest.objects.count() == 1
    assert PickupRequest.objects.get(pk=pickup.pk).notes == ""


def test_a_wrong_token_or_a_foreign_origin_is_forbidden(alice, browser):
    pickup = create_pickup(alice)
    path = f"/api/pickups/{pickup.pk}/cancel/"
    wrong = send(browser, "post", path, {}, HTTP_X_CSRFTOKEN="x" * 32)
    assert wrong.status_code == 403 and wrong.json()["message"].startswith("CSRF Failed")
    foreign = send(browser, "post", path, {}, HTTP_ORIGIN="https://evil.example", **csrf(browser))
    assert foreign.status_code == 403
    assert "Origin checking failed" in foreign.json()["message"]
    assert PickupRequest.objects.get(pk=pickup.pk).status != "cancelled"


def test_with_the_token_the_session_works(alice, browser):
    pickup = create_pickup(alice)
    response = send(
        browser, "post", f"/api/pickups/{pickup.pk}/cancel/", {"reason": "sold"}, **csrf(browser)
    )
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "cancelled"
    # Safe methods need no token.
    assert browser.get(f"/api/pickups/{pickup.pk}/").status_code == 200


def test_token_authentication_needs_no_csrf_token(alice):
    pickup = create_pickup(alice)
    client = Client(enforce_csrf_checks=True)
    response = send(
        client,
        "post",
        f"/api/pickups/{pickup.pk}/cancel/",
        {},
        HTTP_AUTHORIZATION=f"Token {token_for(alice)}",
    )
    assert response.status_code == 200
