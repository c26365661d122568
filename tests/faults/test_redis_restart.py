"""Restart Redis and drop notification sockets during a burst of lifecycle events.

Notifications are rows committed with the change they announce; Redis only wakes the sockets. A
Redis restart takes every channel-layer group with it and breaks the sockets' channel-layer
connections, and a dropped TCP connection loses whatever was in flight. Neither may cost a
client a notification or show it one twice: a client that reconnects with
``?after=<last id seen>`` gets exactly what it missed, in order, and then live ones again.

The clients here behave like an app: each keeps one notification socket open and, whenever it
closes, reconnects with the last id it saw. The driver is alice and the vendors' members working
over REST, resending a request the server failed to answer. At the end every client reconnects
once more and its whole sequence of notifications, over all its connections, must equal the
stored list the REST API gives it.
"""

import asyncio
import json
import signal
import threading
import time
from datetime import UTC, datetime

import pytest
import websockets

from tests.e2e.client import open_socket, pickup_data
from tests.e2e.stack import wait_until
from tests.faults.conftest import (
    ensure_redis,
    fetch_pickups,
    last_notification_id,
    notifications,
    record,
    rest,
    start_redis,
    stop_redis,
)

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio]

PICKUPS = 20
OUTAGE = 1.0  # seconds Redis stays down once the assignments worker is back
RESEND_FOR = 60  # seconds a driver request is resent while the server fails to answer it


class Inbox:
    """One client's notification socket that reconnects with ``?after=<last id seen>``."""

    def __init__(self, stack, name: str, token: str, after: int) -> None:
        self.stack, self.name, self.token = stack, name, token
        self.last_id = after
        self.received: list[dict] = []  # every notification frame, in arrival order
        self.connections = 0  # handshakes that completed with replay.done
        self.refused = 0  # sockets closed before their replay.done
        self.dropped = 0  # established sockets the server closed or the network lost
        self.aborted = 0  # sockets this test cut
        self.ws = None
        self._replayed = False
        self.synced = asyncio.Event()
        self._stopping = False
        self._cut = False
        self._task: asyncio.Task | None = None

    def start(self) -> "Inbox":
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        while not self._stopping:
            if self.ws is None:
                try:
                    self.ws = await open_socket(
                        self.stack, self.token, f"/ws/notifications/?after={self.last_id}"
                    )
                except (OSError, TimeoutError, websockets.exceptions.WebSocketException):
                    self.refused += 1
                    await asyncio.sleep(0.2)
                    continue
                self._replayed = False
            try:
                frame = json.loads(await self.ws.recv())
            except websockets.exceptions.ConnectionClosed:
                self.ws = None
                if self._cut:
                    self._cut = False
                elif not self._replayed:
                    self.refused += 1
                elif not self._stopping:
                    self.dropped += 1
                await asyncio.sleep(0.1)
                continue
            if frame["type"] == "notification":
                self.received.append(frame["notification"])
                self.last_id = max(self.last_id, frame["notification"]["id"])
            elif frame["type"] == "replay.done":
                self._replayed = True
                self.connections += 1
                self.synced.set()

    def cut(self) -> None:
        """Drop the TCP connection without a closing handshake (call in the event loop)."""
        if self.ws is not None:
            self._cut = True
            self.aborted += 1
            self.ws.transport.abort()

    async def resync(self) -> None:
        """Reconnect once more with ``?after=<last id seen>`` and wait for its replay."""
        self.synced.clear()
        self._cut = True
        if self.ws is not None:
            await self.ws.close()
        await asyncio.wait_for(self.synced.wait(), 30)

    async def stop(self) -> None:
        self._stopping = True
        if self.ws is not None:
            await self.ws.close()
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


class Driver:
    """Alice and the vendor members over REST; a request the server fails to answer (no answer,
    or 5xx while Redis is away) is resent, with the same Idempotency-Key for a create."""

    def __init__(self, world) -> None:
        self.world = world
        self.requests = 0
        self.failures: list[tuple[float, int]] = []  # (when, status) of each failed answer

    def call(self, method: str, path: str, token: str, body=None, headers=None) -> dict:
        deadline = time.monotonic() + RESEND_FOR
        while True:
            self.requests += 1
            status, answer, _ = rest(self.world.stack, method, path, token, body, headers)
            if 200 <= status < 300:
                return answer
            assert status == 0 or status >= 500, (method, path, status, answer)
            self.failures.append((time.monotonic(), status))
            assert time.monotonic() < deadline, (method, path, status, answer)
            time.sleep(0.2)


def wait_for_status(world, ids, status: str, timeout: float = 60) -> dict[int, dict]:
    deadline = time.monotonic() + timeout
    while True:
        states = fetch_pickups(world, ids)
        if all(states[i]["status"] == status for i in ids):
            return states
        assert time.monotonic() < deadline, {i: s["status"] for i, s in states.items()}
        time.sleep(0.3)


async def test_every_client_gets_every_notification_once_in_order_across_a_redis_restart(world):
    stack = world.stack
    region = world.regions["redis"]
    first, second = region.vendors
    tokens = {"alice": world.alice, first.member: first.token, second.member: second.token}
    starts = {name: last_notification_id(world, token) for name, token in tokens.items()}
    inboxes = {
        name: Inbox(stack, name, token, starts[name]).start() for name, token in tokens.items()
    }
    await asyncio.gather(*(asyncio.wait_for(i.synced.wait(), 30) for i in inboxes.values()))
    loop = asyncio.get_running_loop()
    driver = Driver(world)
    marks: dict[str, float | datetime] = {}
    first_vendor_cut = threading.Event()

    def cut(name: str) -> None:
        loop.call_soon_threadsafe(inboxes[name].cut)

    def outage() -> None:
        # The assignments worker comes back while Redis is down and offers the declined
        # pickups to the second vendor: those notifications are stored, their pushes fail.
        stack.start_process("assignments")
        time.sleep(OUTAGE)
        start_redis()
        marks["back"], marks["back_at"] = time.monotonic(), datetime.now(UTC)
        marks["refused_before_back"] = sum(i.refused for i in inboxes.values())

    def drive() -> list[int]:
        tag = f"redis-{time.time_ns()}"
        ids = [
            driver.call(
                "POST",
                "/api/pickups/",
                world.alice,
                pickup_data(location=region.location),
                headers={"Idempotency-Key": f"{tag}-{n}"},
            )["id"]
            for n in range(PICKUPS)
        ]
        wait_for_status(world, ids, "offered")
        cut("alice")
        # Round 1: the first vendor declines a quarter, accepts half; alice cancels the rest.
        # The assignments worker is stopped meanwhile, so the declined pickups wait.
        stack.send_signal("assignments", signal.SIGTERM)
        stack.wait_exit("assignments", timeout=30)
        for n, pickup_id in enumerate(ids):
            if n % 4 == 0:
                driver.call("POST", f"/api/pickups/{pickup_id}/reject/", first.token, {})
            elif n % 4 in (1, 2):
                driver.call("POST", f"/api/pickups/{pickup_id}/accept/", first.token, {})
            else:
                driver.call("POST", f"/api/pickups/{pickup_id}/cancel/", world.alice, {})
        # Redis goes away; the declined pickups are offered to the second vendor while it is
        # down, and the round below starts (its requests fail and are resent).
        marks["down_at"] = datetime.now(UTC)
        marks["stopping"] = time.monotonic()
        stop_redis()
        marks["down"] = time.monotonic()
        restart = threading.Thread(target=outage)
        restart.start()
        # Round 2: the accepted ones set off, half of them are completed (a receipt follows);
        # the second vendor accepts the declined ones.
        for n, pickup_id in enumerate(ids):
            if n % 4 in (1, 2):
                driver.call(
                    "POST", f"/api/pickups/{pickup_id}/status/", first.token, {"status": "en_route"}
                )
        restart.join()
        for n, pickup_id in enumerate(ids):
            if n % 4 == 2:
                driver.call(
                    "POST",
                    f"/api/pickups/{pickup_id}/status/",
                    first.token,
                    {"status": "picked_up", "items": [{"material": "paper", "actual_kg": "35"}]},
                )
                if n == 6:
                    cut(first.member)
                    first_vendor_cut.set()
                driver.call(
                    "POST",
                    f"/api/pickups/{pickup_id}/status/",
                    first.token,
                    {"status": "completed"},
                )
        declined = [pickup_id for n, pickup_id in enumerate(ids) if n % 4 == 0]
        reoffered = wait_for_status(world, declined, "offered")
        assert {s["vendor"]["name"] for s in reoffered.values()} == {second.name}
        for pickup_id in declined:
            driver.call("POST", f"/api/pickups/{pickup_id}/accept/", second.token, {})
        return ids

    try:
        ids = await asyncio.to_thread(drive)
    finally:
        ensure_redis()
        if stack.processes["assignments"].poll() is not None:
            stack.start_process("assignments")
    completed = [pickup_id for n, pickup_id in enumerate(ids) if n % 4 == 2]

    # Quiet: every receipt issued, the queues empty, and nothing new stored for a second.
    def receipts_issued() -> bool:
        kinds = [
            (n["kind"], n["data"].get("pickup_id"))
            for n in notifications(world, world.alice, starts["alice"])
        ]
        return all(("receipt.issued", i) in kinds for i in completed)

    await asyncio.to_thread(
        wait_until, receipts_issued, timeout=60, interval=0.5, what="the receipts"
    )

    def quiet() -> bool:
        before = {name: last_notification_id(world, token) for name, token in tokens.items()}
        time.sleep(1)
        depths = stack.queue_depths()
        after = {name: last_notification_id(world, token) for name, token in tokens.items()}
        return before == after and depths["notifications"] == depths["assignments"] == 0

    await asyncio.to_thread(wait_until, quiet, timeout=60, interval=0, what="the stack to settle")
    for inbox in inboxes.values():
        await inbox.resync()

    figures: dict[str, object] = {
        "pickups": PICKUPS,
        "redis_down_seconds": round(marks["back"] - marks["down"], 1),
        "redis_stop_seconds": round(marks["down"] - marks["stopping"], 1),
        "driver_requests": driver.requests,
        "driver_failed_answers_while_down": sum(
            marks["stopping"] <= t <= marks["back"] for t, _ in driver.failures
        ),
        "driver_failed_answers_after_back": sum(t > marks["back"] for t, _ in driver.failures),
        "driver_failed_statuses": sorted({status for _, status in driver.failures}),
        "handshakes_refused_while_down": marks["refused_before_back"],
        "handshakes_refused_after_back": sum(i.refused for i in inboxes.values())
        - marks["refused_before_back"],
        "clients": {},
    }
    problems = {}
    for name, inbox in inboxes.items():
        stored = notifications(world, tokens[name], starts[name])
        got = [n["id"] for n in inbox.received]
        expected = [n["id"] for n in stored]
        during = [
            n for n in stored if marks["down_at"] <= _parse(n["created_at"]) <= marks["back_at"]
        ]
        figures["clients"][name] = {
            "stored": len(expected),
            "stored_while_redis_down": len(during),
            "received": len(got),
            "duplicates": len(got) - len(set(got)),
            "missing": len(set(expected) - set(got)),
            "in_order": got == sorted(got),
            "connections": inbox.connections,
            "handshakes_refused": inbox.refused,
            "dropped_by_server": inbox.dropped,
            "cut_by_test": inbox.aborted,
        }
        if got != expected or [n["kind"] for n in inbox.received] != [n["kind"] for n in stored]:
            problems[name] = {"got": got, "expected": expected}
    for inbox in inboxes.values():
        await inbox.stop()
    record("redis_restart_and_dropped_sockets", figures)

    assert not problems, problems
    assert first_vendor_cut.is_set()
    clients = figures["clients"]
    assert sum(c["stored_while_redis_down"] for c in clients.values()) > 0, "proves nothing"
    assert clients["alice"]["cut_by_test"] == 1 and clients[first.member]["cut_by_test"] == 1
    states = fetch_pickups(world, ids)
    assert sorted(s["status"] for s in states.values()) == sorted(
        ["accepted"] * (PICKUPS // 4)
        + ["en_route"] * (PICKUPS // 4)
        + ["completed"] * (PICKUPS // 4)
        + ["cancelled"] * (PICKUPS // 4)
    )


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
