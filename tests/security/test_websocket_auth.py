"""Who may open a socket: a foreign Origin is refused at the handshake; no identity, a wrong or
revoked token closes with 4401; revoking a token closes every socket it opened, at once."""

import json

import pytest
from channels.db import database_sync_to_async
from channels.testing.websocket import WebsocketCommunicator
from django.core.cache import caches
from django.test import Client
from rest_framework.test import APIClient

from procurement_system.asgi import application
from procurement_system.connection_limits import local_sockets
from procurement_system.websocket import CLOSE_UNAUTHENTICATED
from tests.consumers import ask, connect, token_for
from tests.factories import UserFactory

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("worker_thread_connections"),
]

ENDPOINTS = ("/ws/pickups/", "/ws/notifications/")


@pytest.fixture(autouse=True)
def fresh_counts():
    """Throttle counts and open sockets of other tests stay out of these."""
    caches["default"].clear()
    local_sockets.users.clear()
    yield
    caches["default"].clear()
    local_sockets.users.clear()


@pytest.fixture
def key(customer):
    return token_for(customer)


@pytest.fixture
def session_cookie(customer) -> bytes:
    browser = Client()
    browser.force_login(customer)
    return f"sessionid={browser.cookies['sessionid'].value}".encode()


async def handshake(path: str, headers: list[tuple[bytes, bytes]]) -> bool:
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, _ = await communicator.connect()
    if connected:
        await communicator.disconnect()
    return connected


# --- Origin -------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize(
    "origin",
    [
        b"https://evil.example",
        b"http://localhost.evil.example",
        b"http://127.0.0.1.evil.example:8000",
        b"null",  # sandboxed frames, file:// pages
    ],
)
async def test_a_foreign_origin_is_refused_at_the_handshake(key, session_cookie, path, origin):
    # Neither a token nor the victim's session cookie gets a foreign page in.
    assert not await handshake(
        path, [(b"origin", origin), (b"authorization", f"Token {key}".encode())]
    )
    assert not await handshake(path, [(b"origin", origin), (b"cookie", session_cookie)])


@pytest.mark.parametrize(
    "origin", [b"http://localhost:8000", b"https://127.0.0.1", b"http://[::1]:8000"]
)
async def test_an_allowed_hosts_origin_and_no_origin_are_let_in(key, origin):
    for headers in ([(b"origin", origin)], []):
        socket = await connect("/ws/pickups/", key, headers=headers)
        assert (await ask(socket, {"action": "ping"}))["type"] == "pong"
        await socket.disconnect()


async def test_the_origin_check_follows_allowed_hosts(key, settings):
    settings.ALLOWED_HOSTS = ["pickups.example.com"]
    # The validator reads ALLOWED_HOSTS once, when the ASGI application is built.
    from channels.routing import URLRouter

    from procurement_system.routing import websocket_urlpatterns
    from procurement_system.websocket_auth import (
        OptionalOriginValidator,
        TokenOrSessionAuthMiddleware,
    )

    app = OptionalOriginValidator(TokenOrSessionAuthMiddleware(URLRouter(websocket_urlpatterns)))
    auth = (b"authorization", f"Token {key}".encode())
    for origin, allowed in (
        (b"https://pickups.example.com", True),
        (b"http://localhost:8000", False),
    ):
        communicator = WebsocketCommunicator(
            app, "/ws/pickups/", headers=[(b"origin", origin), auth]
        )
        connected, _ = await communicator.connect()
        assert connected is allowed, origin
        if connected:
            await communicator.disconnect()


# --- 4401 ---------------------------------------------------------------------------------------


async def closed_code(socket) -> int:
    output = await socket.receive_output()
    assert output["type"] == "websocket.close"
    return output["code"]


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize(
    "authorization",
    [None, b"Token ", b"Token not-a-real-key", b"Bearer whatever", b"Basic YWxpY2U6cHc="],
)
async def test_no_valid_identity_is_closed_with_4401(key, path, authorization):
    headers = [] if authorization is None else [(b"authorization", authorization)]
    socket = await connect(path, headers=headers)
    assert await closed_code(socket) == CLOSE_UNAUTHENTICATED
    await socket.send_to(text_data=json.dumps({"action": "ping"}))
    assert await socket.receive_nothing(timeout=0.1)  # frames on it are ignored


async def test_a_wrong_token_is_4401_even_with_a_valid_session(session_cookie):
    socket = await connect(
        "/ws/pickups/", headers=[(b"cookie", session_cookie), (b"authorization", b"Token nope")]
    )
    assert await closed_code(socket) == CLOSE_UNAUTHENTICATED


async def test_an_inactive_users_token_is_4401(customer, key):
    customer.is_active = False
    await database_sync_to_async(customer.save)()
    assert await closed_code(await connect("/ws/pickups/", key)) == CLOSE_UNAUTHENTICATED


async def test_a_valid_session_cookie_is_an_identity(session_cookie):
    socket = await connect("/ws/notifications/", headers=[(b"cookie", session_cookie)])
    assert (await ask(socket, {"action": "ping"}))["type"] == "pong"
    await socket.disconnect()


# --- revocation ---------------------------------------------------------------------------------


async def test_revoking_a_token_closes_its_open_sockets_and_refuses_it_after(
    customer, key, session_cookie
):
    sockets = [await connect(path, key) for path in (*ENDPOINTS, "/ws/pickups/")]
    for socket in sockets:
        assert (await ask(socket, {"action": "ping"}))["type"] == "pong"
    # Another user's socket and the same user's session socket stay open.
    other = await database_sync_to_async(UserFactory)(username="bob")
    bobs = await connect("/ws/pickups/", await database_sync_to_async(token_for)(other))
    browser = await connect("/ws/notifications/", headers=[(b"cookie", session_cookie)])

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    revoked = await database_sync_to_async(client.delete)("/api/auth/token/")
    assert revoked.status_code == 204

    for socket in sockets:
        assert await closed_code(socket) == CLOSE_UNAUTHENTICATED
        # A frame that was already on its way when the token went is not served.
        await socket.send_to(text_data=json.dumps({"action": "list"}))
        assert await socket.receive_nothing(timeout=0.1)
    for still_open in (bobs, browser):
        assert (await ask(still_open, {"action": "ping"}))["type"] == "pong"
        await still_open.disconnect()
    assert await closed_code(await connect("/ws/pickups/", key)) == CLOSE_UNAUTHENTICATED
    rest = await database_sync_to_async(client.get)("/api/me/")
    assert rest.status_code == 401


async def test_a_revoked_tokens_sockets_give_their_slots_back(customer, key, settings):
    settings.WEBSOCKET_MAX_PER_USER = 1
    socket = await connect("/ws/pickups/", key)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    await database_sync_to_async(client.delete)("/api/auth/token/")
    assert await closed_code(socket) == CLOSE_UNAUTHENTICATED
    await socket.disconnect()  # the client goes, as it does on a close frame
    fresh = await connect("/ws/pickups/", await database_sync_to_async(token_for)(customer))
    assert (await ask(fresh, {"action": "ping"}))["type"] == "pong"
    await fresh.disconnect()
