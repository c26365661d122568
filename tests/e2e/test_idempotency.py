"""Create is idempotent by key over the socket and REST alike, even when the same key arrives
many times at once on both."""

import asyncio
import uuid

import pytest

from tests.e2e.client import call, http, open_socket, pickup_data

pytestmark = pytest.mark.e2e

SOCKETS = 10
REQUESTS = 10


async def test_the_same_key_sent_at_once_over_both_apis_creates_one_pickup(stack, tokens):
    key = f"burst-{uuid.uuid4()}"
    data = pickup_data()
    sockets = [await open_socket(stack, tokens["alice"], "/ws/pickups/") for _ in range(SOCKETS)]
    try:

        def rest() -> tuple[int, dict, str | None]:
            status, body, headers = http(
                stack, "POST", "/api/pickups/", tokens["alice"], data, {"Idempotency-Key": key}
            )
            return status, body, headers.get("Idempotent-Replayed")

        replies = await asyncio.gather(
            *(call(ws, "create", data=data, idempotency_key=key) for ws in sockets),
            *(asyncio.to_thread(rest) for _ in range(REQUESTS)),
        )
    finally:
        for ws in sockets:
            await ws.close()
    socket_replies, rest_replies = replies[:SOCKETS], replies[SOCKETS:]
    assert all(r["type"] == "pickup.created" for r in socket_replies), socket_replies
    assert all(status == 201 for status, _, _ in rest_replies), rest_replies
    ids = {r["pickup"]["id"] for r in socket_replies} | {b["id"] for _, b, _ in rest_replies}
    assert len(ids) == 1  # one pickup, whichever request won
    firsts = sum(r["created"] for r in socket_replies) + sum(
        replayed is None for _, _, replayed in rest_replies
    )
    assert firsts == 1  # exactly one reply says it created it; every other one is a replay
    [pickup_id] = ids
    status, listed, _ = http(stack, "GET", "/api/pickups/?page_size=100", tokens["alice"])
    assert status == 200
    assert [p["id"] for p in listed["results"] if p["idempotency_key"] == key] == [pickup_id]
    # Let the vendor it was offered to go, so later tests on this stack find its capacity free.
    status, _, _ = http(stack, "POST", f"/api/pickups/{pickup_id}/cancel/", tokens["alice"], {})
    assert status == 200
