"""A client as Postman or an app would be: token header, JSON text frames (and JSON over HTTP)."""

import asyncio
import itertools
import json
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta

import websockets

ALEXANDERPLATZ = (52.5219, 13.4132)
_request_ids = itertools.count(1)


async def open_socket(stack, key: str, path: str):
    return await websockets.connect(
        f"{stack.ws}{path}", additional_headers={"Authorization": f"Token {key}"}, open_timeout=10
    )


async def open_inbox(stack, key: str):
    """A notifications socket that has joined its group: one without ``?after`` starts at "now"
    as of that moment, which comes after the handshake, so a test waits for it (a ping's pong)
    before it makes the changes it expects to hear about."""
    inbox = await open_socket(stack, key, "/ws/notifications/")
    await call(inbox, "ping")
    return inbox


async def next_frame(ws, predicate=lambda frame: True, timeout: float = 10) -> dict:
    """The next frame that satisfies ``predicate``, waiting at most ``timeout`` seconds."""

    async def read() -> dict:
        while True:
            frame = json.loads(await ws.recv())
            if predicate(frame):
                return frame

    return await asyncio.wait_for(read(), timeout)


async def call(ws, action: str, timeout: float = 10, **fields) -> dict:
    """Send an action and return the reply carrying the same request_id."""
    request_id = f"req-{next(_request_ids)}"
    await ws.send(json.dumps({"action": action, "request_id": request_id, **fields}))
    return await next_frame(ws, lambda f: f.get("request_id") == request_id, timeout)


async def notification(ws, kind: str, pickup_id: int, timeout: float = 10) -> dict:
    frame = await next_frame(
        ws,
        lambda f: (
            f.get("type") == "notification"
            and f["notification"]["kind"] == kind
            and f["notification"]["data"].get("pickup_id") == pickup_id
        ),
        timeout,
    )
    return frame["notification"]


def pickup_data(*, location=ALEXANDERPLATZ, materials=("paper",), kg: float = 40) -> dict:
    now = datetime.now(UTC)
    return {
        "address": "Alexanderplatz 1, 10178 Berlin",
        "latitude": location[0],
        "longitude": location[1],
        "window_start": (now + timedelta(hours=1)).isoformat(),
        "window_end": (now + timedelta(hours=4)).isoformat(),
        "items": [{"material": code, "estimated_kg": kg} for code in materials],
        "notes": "Blue door, ground floor",
    }


def http(stack, method: str, path: str, token: str, body=None, headers=None):
    """A REST call with the token: (status, parsed JSON body, headers), errors included."""
    request = urllib.request.Request(
        f"{stack.http}{path}",
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={
            "Authorization": f"Token {token}",
            "Content-Type": "application/json",
            **(headers or {}),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or "null"), response.headers
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or "null"), error.headers
