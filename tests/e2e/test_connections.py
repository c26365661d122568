"""A thousand sockets connecting at the same moment to one uvicorn process."""

import asyncio

import pytest

from tests.e2e.client import call, next_frame, open_socket, pickup_data

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio]

SOCKETS = 1000


async def test_a_thousand_simultaneous_connects_all_join_their_group(stack, tokens):
    results = await asyncio.gather(
        *(open_socket(stack, tokens["alice"], "/ws/notifications/") for _ in range(SOCKETS)),
        return_exceptions=True,
    )
    sockets = [r for r in results if not isinstance(r, BaseException)]
    failures = [r for r in results if isinstance(r, BaseException)]
    try:
        assert not failures, f"{len(failures)} handshakes failed, e.g. {failures[0]!r}"
        # Every socket is in Notifications_<alice>: one notification reaches all of them.
        alice = await open_socket(stack, tokens["alice"], "/ws/pickups/")
        pickup_id = (await call(alice, "create", data=pickup_data()))["pickup"]["id"]
        frames = await asyncio.gather(
            *(
                next_frame(
                    ws,
                    lambda f: (
                        f.get("type") == "notification"
                        and f["notification"]["data"]["pickup_id"] == pickup_id
                    ),
                    timeout=30,
                )
                for ws in sockets
            )
        )
        assert len({f["notification"]["id"] for f in frames}) == 1
        assert len(frames) == SOCKETS
        await call(alice, "cancel", pickup_id=pickup_id)
        await alice.close()
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
