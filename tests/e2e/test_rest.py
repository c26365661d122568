"""The REST API through uvicorn: a pickup created over HTTP is offered over the socket."""

import asyncio

import pytest

from tests.e2e.client import http, notification, open_inbox, open_socket, pickup_data
from tests.e2e.stack import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio]


async def test_create_over_rest_is_offered_live_and_accepted_over_rest(stack, tokens):
    inbox = await open_inbox(stack, tokens["victor"])
    status, pickup, _ = await asyncio.to_thread(
        http,
        stack,
        "POST",
        "/api/pickups/",
        tokens["alice"],
        pickup_data(),
        {"Idempotency-Key": "rest-e2e-1"},
    )
    assert status == 201, pickup
    offer = await notification(inbox, "pickup.offered", pickup["id"])
    assert offer["data"]["status"] == "offered"

    status, again, headers = await asyncio.to_thread(
        http,
        stack,
        "POST",
        "/api/pickups/",
        tokens["alice"],
        pickup_data(),
        {"Idempotency-Key": "rest-e2e-1"},
    )
    assert (status, again["id"], headers.get("Idempotent-Replayed")) == (201, pickup["id"], "true")

    status, accepted, _ = await asyncio.to_thread(
        http, stack, "POST", f"/api/pickups/{pickup['id']}/accept/", tokens["victor"], {}
    )
    assert (status, accepted["status"]) == (200, "accepted")
    status, error, _ = await asyncio.to_thread(
        http, stack, "POST", f"/api/pickups/{pickup['id']}/accept/", tokens["vera"], {}
    )
    assert (status, error["code"]) == (404, "not_found")
    status, _, _ = await asyncio.to_thread(
        http, stack, "POST", f"/api/pickups/{pickup['id']}/cancel/", tokens["alice"], {}
    )
    assert status == 200
    await inbox.close()


NEW_USER = """
from django.contrib.auth import get_user_model
user, _ = get_user_model().objects.get_or_create(username="rita")
user.set_password("rita-pass-123")
user.save()
"""


async def test_revoking_a_token_closes_its_open_sockets(stack):
    import websockets

    await asyncio.to_thread(stack.manage, "shell", "-v", "0", "-c", NEW_USER)
    key = await asyncio.to_thread(stack.token, "rita", "rita-pass-123")
    sockets = [
        await open_socket(stack, key, path) for path in ("/ws/pickups/", "/ws/notifications/")
    ]
    status, _, _ = await asyncio.to_thread(http, stack, "DELETE", "/api/auth/token/", key)
    assert status == 204
    for ws in sockets:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
        assert closed.value.rcvd.code == 4401
    late = await open_socket(stack, key, "/ws/pickups/")  # the revoked token: 4401 at once
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await asyncio.wait_for(late.recv(), 10)
    assert closed.value.rcvd.code == 4401


async def test_a_client_without_a_socket_polls_the_assignment_task(stack, tokens):
    status, pickup, _ = await asyncio.to_thread(
        http, stack, "POST", "/api/pickups/", tokens["alice"], pickup_data()
    )
    assert status == 201
    task_path = f"/api/tasks/{pickup['assignment_task_id']}/"

    seen: dict = {}

    def finished() -> bool:  # the polling a socket-less client does, against the real backend
        seen.update(http(stack, "GET", task_path, tokens["alice"])[1])
        return seen["state"] in ("SUCCESS", "FAILURE")

    await asyncio.to_thread(wait_until, finished, timeout=10, what="the assignment task")
    task = seen
    assert (task["state"], task["result"]) == ("SUCCESS", "offered")
    assert task["name"] == "pickups.tasks.assign_vendor_task"
    status, error, _ = await asyncio.to_thread(http, stack, "GET", task_path, tokens["vera"])
    assert (status, error["code"]) == (404, "not_found")
    await asyncio.to_thread(
        http, stack, "POST", f"/api/pickups/{pickup['id']}/cancel/", tokens["alice"], {}
    )
