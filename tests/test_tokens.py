import pytest
from channels.db import database_sync_to_async
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from procurement_system.tokens import token_revoke
from tests.consumers import ask, connect, token_for
from tests.factories import UserFactory


@pytest.fixture
def user(db):
    user = UserFactory(username="tess")
    user.set_password("s3cret-pass")
    user.save()
    return user


def test_a_password_buys_the_users_token(user):
    response = APIClient().post(
        "/api/auth/token/",
        {"username": "tess", "password": "s3cret-pass"},
        format="json",
        HTTP_AUTHORIZATION="Token stale-or-bogus",  # ignored: the password is what counts
    )
    assert response.status_code == 200
    assert response.json() == {"token": Token.objects.get(user=user).key}


def test_a_wrong_password_is_a_validation_error(user):
    response = APIClient().post(
        "/api/auth/token/", {"username": "tess", "password": "nope"}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["code"] == "validation_error"


def test_delete_revokes_the_token(user):
    key = token_for(user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.get("/api/me/").status_code == 200
    assert client.delete("/api/auth/token/").status_code == 204
    assert not Token.objects.filter(user=user).exists()
    refused = client.get("/api/me/")
    assert refused.status_code == 401 and refused.json()["code"] == "not_authenticated"


def test_delete_needs_authentication(db):
    response = APIClient().delete("/api/auth/token/")
    assert response.status_code == 401


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("worker_thread_connections")
async def test_revoking_a_token_closes_the_sockets_it_opened(user):
    key = await database_sync_to_async(token_for)(user)
    pickups = await connect("/ws/pickups/", key)
    inbox = await connect("/ws/notifications/", key)
    assert (await ask(pickups, {"action": "ping"}))["type"] == "pong"
    assert await database_sync_to_async(token_revoke)(user=user) is True
    for socket in (pickups, inbox):
        assert await socket.receive_output(timeout=5) == {"type": "websocket.close", "code": 4401}
