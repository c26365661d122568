"""The whole pipeline through real processes: uvicorn, a Celery worker, RabbitMQ, Redis."""

import asyncio
import json
import statistics
import time

import pytest

from tests.e2e.client import call, next_frame, notification, open_inbox, open_socket, pickup_data
from tests.e2e.stack import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio]


async def test_create_offer_reject_reoffer_accept_complete(stack, tokens):
    alice = await open_socket(stack, tokens["alice"], "/ws/pickups/")
    alice_inbox = await open_inbox(stack, tokens["alice"])
    victor = await open_socket(stack, tokens["victor"], "/ws/pickups/")
    victor_inbox = await open_inbox(stack, tokens["victor"])
    vera = await open_socket(stack, tokens["vera"], "/ws/pickups/")
    vera_inbox = await open_inbox(stack, tokens["vera"])

    created = await call(alice, "create", data=pickup_data(), idempotency_key="e2e-flow-1")
    assert created["type"] == "pickup.created", created
    pickup_id = created["pickup"]["id"]

    # Victor's vendor is the nearest: the offer reaches his notification socket.
    offer = await notification(victor_inbox, "pickup.offered", pickup_id)
    assert "40.00 kg paper" in offer["message"]
    rejected = await call(victor, "reject", pickup_id=pickup_id, reason="Truck is full today")
    assert rejected["type"] == "pickup.rejected"

    # Re-assigned to the next nearest, never back to Victor.
    await notification(vera_inbox, "pickup.offered", pickup_id)
    accepted = await call(vera, "accept", pickup_id=pickup_id)
    assert accepted["pickup"]["vendor"]["name"] == "Vera Metals"
    assert accepted["pickup"]["customer"]["email"] == "alice@example.com"
    told = await notification(alice_inbox, "pickup.accepted", pickup_id)
    assert "Vera Metals" in told["message"]

    for status in ("en_route", "picked_up", "completed"):
        extra = (
            {"items": [{"material": "paper", "actual_kg": 37.4}]} if status == "picked_up" else {}
        )
        reply = await call(vera, "update", pickup_id=pickup_id, status=status, **extra)
        assert reply["type"] == f"pickup.{status}", reply
        await notification(alice_inbox, f"pickup.{status}", pickup_id)

    final = await call(alice, "get", pickup_id=pickup_id)
    assert final["pickup"]["status"] == "completed"
    assert [r["vendor"]["name"] for r in final["pickup"]["rejections"]] == ["Victor Recycling"]
    assert [h["status"] for h in final["pickup"]["history"]] == [
        "pending",
        "offered",
        "pending",
        "offered",
        "accepted",
        "en_route",
        "picked_up",
        "completed",
    ]
    # Victor never saw the pickup again after declining it.
    victor_kinds = []
    while True:
        try:
            frame = json.loads(await asyncio.wait_for(victor_inbox.recv(), 0.5))
        except TimeoutError:
            break
        victor_kinds.append(frame["notification"]["kind"])
    assert "pickup.offered" not in victor_kinds
    for ws in (alice, alice_inbox, victor, victor_inbox, vera, vera_inbox):
        await ws.close()


async def test_notification_socket_replays_exactly_what_it_missed(stack, tokens):
    alice = await open_socket(stack, tokens["alice"], "/ws/pickups/")
    inbox = await open_inbox(stack, tokens["alice"])
    pickup_id = (await call(alice, "create", data=pickup_data()))["pickup"]["id"]
    seen = await notification(inbox, "pickup.offered", pickup_id)
    await inbox.close()

    # While the socket is away: two more changes, each with a notification for Alice.
    await call(alice, "update", pickup_id=pickup_id, data={"notes": "Ring twice"})
    await call(alice, "cancel", pickup_id=pickup_id, reason="Sold it")

    inbox = await open_socket(stack, tokens["alice"], f"/ws/notifications/?after={seen['id']}")
    replayed = []
    done = await next_frame(
        inbox, lambda f: replayed.append(f) or f["type"] == "replay.done", timeout=10
    )
    missed = [f["notification"] for f in replayed if f["type"] == "notification"]
    ids = [n["id"] for n in missed]
    assert ids == list(range(seen["id"] + 1, done["last_id"] + 1))  # no gap, no duplicate
    kinds = [n["kind"] for n in missed if n["data"]["pickup_id"] == pickup_id]
    assert kinds == ["pickup.updated", "pickup.cancelled"]

    # Live delivery continues right after the replayed ones.
    second = (await call(alice, "create", data=pickup_data()))["pickup"]["id"]
    live = await notification(inbox, "pickup.created", second)
    assert live["id"] > done["last_id"]
    await call(alice, "cancel", pickup_id=second)
    await alice.close()
    await inbox.close()


RACE_SETUP = """
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from vendors.models import Material, Vendor, VendorMaterial
solo, _ = Vendor.objects.update_or_create(name="Solo Hamburg", defaults=dict(
    latitude=53.5511, longitude=9.9937, service_radius_km=10, capacity=1))
VendorMaterial.objects.get_or_create(vendor=solo, material_id="glass", defaults={"price_per_kg": 1})
for name in ("hanna", "henrik"):
    user, _ = get_user_model().objects.get_or_create(username=name)
    print(name, Token.objects.get_or_create(user=user)[0].key)
"""


async def test_two_assignments_racing_for_the_last_unit_never_both_win(stack):
    keys = dict(
        line.split() for line in stack.manage("shell", "-v", "0", "-c", RACE_SETUP).splitlines()
    )
    hamburg = (53.5530, 9.9920)
    sockets = [await open_socket(stack, keys[n], "/ws/pickups/") for n in ("hanna", "henrik")]
    inboxes = [await open_inbox(stack, keys[n]) for n in ("hanna", "henrik")]
    for _ in range(5):
        replies = await asyncio.gather(
            *(
                call(ws, "create", data=pickup_data(location=hamburg, materials=("glass",)))
                for ws in sockets
            )
        )
        ids = [r["pickup"]["id"] for r in replies]
        outcomes = await asyncio.gather(
            *(
                next_frame(
                    inbox,
                    lambda f, pid=pid: (
                        f.get("type") == "notification"
                        and f["notification"]["data"]["pickup_id"] == pid
                        and f["notification"]["kind"] in ("pickup.offered", "pickup.unassigned")
                    ),
                )
                for inbox, pid in zip(inboxes, ids, strict=True)
            )
        )
        kinds = sorted(o["notification"]["kind"] for o in outcomes)
        assert kinds == ["pickup.offered", "pickup.unassigned"]
        for ws, pid in zip(sockets, ids, strict=True):
            state = await call(ws, "get", pickup_id=pid)
            assert state["pickup"]["status"] in ("offered", "unassigned")
            assert await call(ws, "cancel", pickup_id=pid)  # frees the unit for the next round
    for ws in sockets + inboxes:
        await ws.close()


async def test_create_to_offer_latency(stack, tokens):
    """Every offer arrives; the create→offer times are printed for the record."""
    alice = await open_socket(stack, tokens["alice"], "/ws/pickups/")
    vince = await open_socket(stack, tokens["vince"], "/ws/pickups/")
    inbox = await open_inbox(stack, tokens["vince"])
    reply_ms, offer_ms = [], []
    for _ in range(30):
        started = time.perf_counter()
        # Only Vince's vendor collects glass: every one of these is offered to him.
        reply = await call(alice, "create", data=pickup_data(materials=("glass",)))
        reply_ms.append((time.perf_counter() - started) * 1000)
        await notification(inbox, "pickup.offered", reply["pickup"]["id"])
        offer_ms.append((time.perf_counter() - started) * 1000)
        await call(vince, "reject", pickup_id=reply["pickup"]["id"])
    for name, values in (("create->reply", reply_ms), ("create->offer", offer_ms)):
        q = statistics.quantiles(values, n=20)
        print(
            f"{name}: p50 {statistics.median(values):.1f} ms, p95 {q[18]:.1f} ms, "
            f"max {max(values):.1f} ms over {len(values)}"
        )
    assert len(offer_ms) == 30
    for ws in (alice, vince, inbox):
        await ws.close()


async def test_accept_and_reject_sent_at_once_are_serialized(stack, tokens):
    """Two sockets of the same vendor member race on one offer: exactly one change wins."""
    alice = await open_socket(stack, tokens["alice"], "/ws/pickups/")
    inbox = await open_inbox(stack, tokens["victor"])
    first = await open_socket(stack, tokens["victor"], "/ws/pickups/")
    second = await open_socket(stack, tokens["victor"], "/ws/pickups/")
    for _ in range(5):
        pickup_id = (await call(alice, "create", data=pickup_data()))["pickup"]["id"]
        await notification(inbox, "pickup.offered", pickup_id)
        accepted, rejected = await asyncio.gather(
            call(first, "accept", pickup_id=pickup_id),
            call(second, "reject", pickup_id=pickup_id, reason="race"),
        )
        outcomes = sorted([accepted["type"], rejected["type"]])
        assert outcomes in (["error", "pickup.accepted"], ["error", "pickup.rejected"]), outcomes
        loser = accepted if accepted["type"] == "error" else rejected
        assert loser["code"] in ("invalid_transition", "not_found")
        state = (await call(alice, "get", pickup_id=pickup_id))["pickup"]
        if accepted["type"] == "pickup.accepted":
            assert state["status"] == "accepted" and state["rejections"] == []
        else:
            assert [r["vendor"]["name"] for r in state["rejections"]] == ["Victor Recycling"]
            assert state["vendor"] is None or state["vendor"]["name"] != "Victor Recycling"
        assert (await call(alice, "cancel", pickup_id=pickup_id))["type"] == "pickup.cancelled"
    for ws in (alice, inbox, first, second):
        await ws.close()


RESULTS_QUERY = """
from django.db import connection
with connection.cursor() as cursor:
    cursor.execute("SELECT COUNT(*) FROM celery_results_cache")
    print(cursor.fetchone()[0])
"""


async def test_task_results_land_in_the_database_cache_table(stack, tokens):
    alice = await open_socket(stack, tokens["alice"], "/ws/pickups/")
    inbox = await open_inbox(stack, tokens["alice"])
    pickup_id = (await call(alice, "create", data=pickup_data()))["pickup"]["id"]
    await notification(inbox, "pickup.offered", pickup_id)
    # A result is written just after its task returns, a moment after the push we waited for.
    wait_until(
        lambda: int(stack.manage("shell", "-v", "0", "-c", RESULTS_QUERY)) >= 2,
        timeout=15,
        interval=0.5,
        what="the assignment and notification results",
    )
    await call(alice, "cancel", pickup_id=pickup_id)
    for ws in (alice, inbox):
        await ws.close()
