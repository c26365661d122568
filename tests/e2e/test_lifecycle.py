"""The pickup lifecycle driven by the clock: real beat (django-celery-beat's database scheduler)
sends the sweeps, the assignments worker runs them, the notifications worker pushes the outcome.

These tests run on ``lifecycle_stack``: the timers are seconds (an offer times out after 2 s,
every sweep runs each second), so the waits below are bounded by those timers plus slack for a
loaded machine. Every wait is on an event, never a sleep.
"""

import asyncio
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest

from tests.e2e.client import call, http, notification, open_inbox, open_socket, pickup_data
from tests.e2e.stack import LIFECYCLE_ENV, REPO

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio]

OFFER_TIMEOUT = int(LIFECYCLE_ENV["OFFER_TIMEOUT_SECONDS"])
SWEEP = int(LIFECYCLE_ENV["SCHEDULE_OFFER_SWEEP_SECONDS"])
# What a loaded CI machine may add to a timer before its effect reaches a socket: beat's tick,
# a task's trip through RabbitMQ, the transaction, the push through Redis.
SLACK = 10
VENDORS = {"Victor Recycling": "victor", "Vera Metals": "vera", "Vince Scrap & E-waste": "vince"}


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def open_jobs(stack, tokens) -> dict[str, int]:
    """Each demo vendor's units of capacity in use, as its member sees them."""
    jobs = {}
    for member in VENDORS.values():
        status, vendor, _ = await asyncio.to_thread(
            http, stack, "GET", "/api/vendors/me/", tokens[member]
        )
        assert status == 200, vendor
        jobs[member] = vendor["open_jobs"]
    return jobs


async def test_an_unanswered_offer_moves_to_the_next_vendor_with_real_beat(
    lifecycle_stack, lifecycle_tokens
):
    stack, tokens = lifecycle_stack, lifecycle_tokens
    alice = await open_socket(stack, tokens["alice"], "/ws/pickups/")
    victor_inbox = await open_inbox(stack, tokens["victor"])
    vera_inbox = await open_inbox(stack, tokens["vera"])

    created = await call(alice, "create", data=pickup_data())
    assert created["type"] == "pickup.created", created
    pickup_id = created["pickup"]["id"]
    offer = await notification(victor_inbox, "pickup.offered", pickup_id)
    offered_at = time.monotonic()
    deadline = parse_time(offer["data"]["offer_expires_at"])
    assert f"Answer within {OFFER_TIMEOUT} s" in offer["message"]

    # Nobody answers. Beat's next sweep after the deadline withdraws the offer...
    expired = await notification(
        victor_inbox, "offer.expired", pickup_id, timeout=OFFER_TIMEOUT + SWEEP + SLACK
    )
    withdrawn_after = time.monotonic() - offered_at
    assert datetime.now(UTC) >= deadline, "the offer was withdrawn before its deadline"
    assert expired["data"]["status"] == "pending"
    # ... and the pickup goes to the next nearest vendor.
    reoffer = await notification(vera_inbox, "pickup.offered", pickup_id, timeout=SLACK)
    moved_after = time.monotonic() - offered_at
    assert reoffer["data"]["version"] > expired["data"]["version"]
    print(
        f"offer to Victor withdrawn {withdrawn_after:.2f} s after it arrived "
        f"(timeout {OFFER_TIMEOUT} s, sweep every {SWEEP} s); Vera offered after {moved_after:.2f} s"
    )

    state = (await call(alice, "get", pickup_id=pickup_id))["pickup"]
    first = state["rejections"][0]
    assert (first["vendor"]["name"], first["role"]) == ("Victor Recycling", "timeout"), state
    assert "offer_timeout" in [h["event"] for h in state["history"]]

    assert (await call(alice, "cancel", pickup_id=pickup_id))["type"] == "pickup.cancelled"
    assert await open_jobs(stack, tokens) == {"victor": 0, "vera": 0, "vince": 0}
    for ws in (alice, victor_inbox, vera_inbox):
        await ws.close()


async def test_a_pickup_whose_window_ends_expires_with_real_beat(lifecycle_stack, lifecycle_tokens):
    """The window ends while offers time out one after another: however the offer sweep and the
    expiry sweep interleave (an offer withdrawn, then the re-assignment finds the window over;
    or the offer still out when the expiry sweep runs), the pickup ends ``expired`` once, with
    no vendor holding it and no capacity held."""
    stack, tokens = lifecycle_stack, lifecycle_tokens
    alice = await open_socket(stack, tokens["alice"], "/ws/pickups/")
    inbox = await open_inbox(stack, tokens["alice"])

    window = OFFER_TIMEOUT + 2 * SWEEP + 1  # long enough for at least one offer to time out
    now = datetime.now(UTC)
    data = {
        **pickup_data(),
        "window_start": now.isoformat(),
        "window_end": (now + timedelta(seconds=window)).isoformat(),
    }
    created = await call(alice, "create", data=data)
    assert created["type"] == "pickup.created", created
    pickup_id = created["pickup"]["id"]
    window_end = parse_time(created["pickup"]["window_end"])

    told = await notification(inbox, "pickup.expired", pickup_id, timeout=window + SWEEP + SLACK)
    late_by = (datetime.now(UTC) - window_end).total_seconds()
    assert late_by >= 0, "expired before its window ended"
    assert told["data"]["status"] == "expired"
    print(f"pickup.expired arrived {late_by:.2f} s after the window ended")

    state = (await call(alice, "get", pickup_id=pickup_id))["pickup"]
    assert state["status"] == "expired"
    assert state["vendor"] is None
    events = [h["event"] for h in state["history"]]
    assert events[-1] == "expire" and events.count("expire") == 1, events
    assert {r["role"] for r in state["rejections"]} <= {"timeout"}, state["rejections"]
    assert await open_jobs(stack, tokens) == {"victor": 0, "vera": 0, "vince": 0}
    # An expired pickup is final: the customer can no longer cancel it.
    assert (await call(alice, "cancel", pickup_id=pickup_id))["type"] == "error"
    for ws in (alice, inbox):
        await ws.close()


BACKLOG = 3000
# Publishes through the project's own Celery app and routing (the task names no queue), the way
# beat or any caller would: if the task were routed anywhere but ``maintenance``, the
# assignments queue would fill up instead and the checks below would say so.
PUBLISH_BACKLOG = """
import sys
import django
django.setup()
from notifications.tasks import purge_read_notifications_task
from procurement_system.celery import app
with app.producer_or_acquire() as producer:
    for _ in range(int(sys.argv[1])):
        purge_read_notifications_task.apply_async(producer=producer)
"""


async def test_a_maintenance_backlog_does_not_delay_assignment(lifecycle_stack, lifecycle_tokens):
    stack, tokens = lifecycle_stack, lifecycle_tokens
    started = time.perf_counter()
    published = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", PUBLISH_BACKLOG, str(BACKLOG)],
        cwd=REPO,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert published.returncode == 0, published.stderr[-4000:]
    publish_s = time.perf_counter() - started
    try:
        alice = await open_socket(stack, tokens["alice"], "/ws/pickups/")
        inbox = await open_inbox(stack, tokens["victor"])
        at_create = stack.queue_depth("maintenance")
        assert at_create > 0, "the maintenance worker drained the backlog before the test began"
        assert stack.queue_depth("assignments") < 50, "maintenance tasks went to assignments"

        started = time.perf_counter()
        pickup_id = (await call(alice, "create", data=pickup_data()))["pickup"]["id"]
        # Wait longer than the bound, so that a slow offer is reported with its latency.
        await notification(inbox, "pickup.offered", pickup_id, timeout=30)
        latency_ms = (time.perf_counter() - started) * 1000
        at_offer = stack.queue_depth("maintenance")
        print(
            f"maintenance backlog: {BACKLOG} published in {publish_s:.1f} s, {at_create} waiting "
            f"at create, {at_offer} when the offer arrived; create->offer {latency_ms:.0f} ms"
        )
        assert at_offer > 0, "the backlog was gone before the offer arrived: proves nothing"
        # The worker was busy with it all along (it only takes 4 at a time, so the depth falls
        # in steps: over a fast assignment it may not have moved at all).
        assert at_offer <= at_create < BACKLOG, "the maintenance worker was not draining its queue"
        assert latency_ms < 5000
        assert (await call(alice, "cancel", pickup_id=pickup_id))["type"] == "pickup.cancelled"
        for ws in (alice, inbox):
            await ws.close()
    finally:
        # The rest of the backlog is no test's business; it would only load the machine.
        stack.purge_queue("maintenance")
