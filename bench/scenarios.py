"""The benchmark's scenarios. Each takes the running stack and the seeded crowd and returns a
JSON-ready dict of what it measured."""

import asyncio
import contextlib
import subprocess
import sys
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil
from asgiref.sync import sync_to_async
from prometheus_client.parser import text_string_to_metric_families

from bench.load import Client, Inbox, connect_all, now, open_loop, summary
from bench.seed import CENTRE, MATERIAL, Crowd, Person


@contextlib.contextmanager
def profiled(stack, into: Path | None, label: str, seconds: float):
    """Sample web and the workers (their pool processes too) with py-spy for ``seconds`` while
    the body runs: collapsed stacks in ``into/<process>-<label>.txt``, for flame graphs or
    ``python -m bench.profile``."""
    if into is None:
        yield
        return
    into.mkdir(parents=True, exist_ok=True)
    py_spy = Path(sys.executable).parent / "py-spy"
    recorders = [
        subprocess.Popen(
            [
                str(py_spy),
                "record",
                "--pid",
                str(stack.pid(name)),
                "--subprocesses",
                "--duration",
                str(int(seconds)),
                "--rate",
                "200",
                "--format",
                "raw",
                "--gil",
                "--nonblocking",
                "--output",
                str(into / f"{name}-{label}.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name in ("web", "assignments", "notifications")
    ]
    try:
        yield
    finally:
        for recorder in recorders:
            recorder.wait(timeout=seconds + 60)


# The machine's other parts, by process name: where the rest of the CPU goes.
SERVICES = {"postgres": "PostgreSQL", "beam.smp": "RabbitMQ", "redis-server": "Redis"}


def cpu_seconds(stack) -> dict[str, float]:
    """CPU time (user + system) used so far by each part: uvicorn, each worker with its pool
    processes, PostgreSQL, RabbitMQ, Redis, and this load generator."""

    def used(process: psutil.Process) -> float:
        times = process.cpu_times()
        return times.user + times.system

    parts: dict[str, float] = {}
    for name in ("web", "assignments", "notifications"):
        main = psutil.Process(stack.pid(name))
        parts[name] = used(main) + sum(used(c) for c in main.children(recursive=True))
    for process in psutil.process_iter(["name", "ppid"]):
        label = SERVICES.get(process.info["name"])
        try:
            if label is None or psutil.Process(process.info["ppid"]).name() == process.info["name"]:
                continue  # not a service, or one of its children: counted with its parent
            # A service's own time, its live children's, and what its children that have
            # ended used (PostgreSQL ends a server process with each connection).
            times = process.cpu_times()
            parts[label] = (
                parts.get(label, 0.0)
                + used(process)
                + times.children_user
                + times.children_system
                + sum(used(c) for c in process.children(recursive=True))
            )
        except psutil.NoSuchProcess:
            pass
    parts["load generator"] = used(psutil.Process())
    return parts


def open_sockets(stack) -> float:
    """Sockets the web process holds open now, by its own ``/metrics`` (this machine may read
    them without the token)."""
    with urllib.request.urlopen(f"{stack.http}/metrics", timeout=10) as response:
        text = response.read().decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        if family.name.endswith("websocket_connections")
        for sample in family.samples
    )


async def server_closed_all(stack, *, timeout: float = 300) -> float:
    """Wait until the web process has closed every socket (the ones we closed go through its
    cleanup, a few Redis commands each, after our side is done); how long that took."""
    started = now()
    while await sync_to_async(open_sockets, thread_sensitive=False)(stack) > 0:
        if now() - started > timeout:
            raise TimeoutError(f"the web process still holds sockets after {timeout} s")
        await asyncio.sleep(0.5)
    return round(now() - started, 1)


def rss_bytes(stack, name: str = "web") -> int:
    return psutil.Process(stack.pid(name)).memory_info().rss


# --- 1. connection capacity ------------------------------------------------------------------


async def connections(stack, people: list[Person], *, step: int, parallel: int) -> dict:
    """Ramp one authenticated notifications socket per person on the one uvicorn process, in
    steps; after each step the web process's RSS. Every socket then answers a ping (it has
    joined its ``Notifications_<id>`` group by then: the group is joined before the socket reads
    its first frame). Leaves the sockets open for the fan-out; returns (result, clients)."""
    baseline = rss_bytes(stack)
    clients: list[Client] = []
    failed: list[str] = []
    points = [{"connections": 0, "rss_mb": round(baseline / 2**20, 1)}]
    started = now()
    for first in range(0, len(people), step):
        batch = [
            Client(f"{stack.ws}/ws/notifications/", p.token) for p in people[first : first + step]
        ]
        batch_started = now()
        errors = await connect_all(batch, parallel=parallel)
        seconds = now() - batch_started
        failed += [repr(e) for e in errors if e is not None]
        clients += [c for c, e in zip(batch, errors, strict=True) if e is None]
        rss = rss_bytes(stack)
        points.append(
            {
                "connections": len(clients),
                "rss_mb": round(rss / 2**20, 1),
                "handshakes_per_second": round(len(batch) / seconds, 1),
            }
        )
        print(f"  {len(clients):>6} sockets open, web RSS {rss / 2**20:.0f} MB", flush=True)
    ramp_seconds = now() - started
    pongs = await asyncio.gather(
        *(c.request("ping", timeout=120) for c in clients), return_exceptions=True
    )
    answered = sum(not isinstance(p, BaseException) and p[0]["type"] == "pong" for p in pongs)
    rss = rss_bytes(stack)
    per_connection = (rss - baseline) / max(1, len(clients))
    return {
        "sockets_asked": len(people),
        "sockets_open": len(clients),
        "failed_handshakes": len(failed),
        "failures_sample": failed[:5],
        "answered_ping": answered,
        "ramp_seconds": round(ramp_seconds, 1),
        "web_rss_baseline_mb": round(baseline / 2**20, 1),
        "web_rss_mb": round(rss / 2**20, 1),
        "rss_per_connection_kb": round(per_connection / 1024, 1),
        "points": points,
    }, clients


# --- 2. pipeline: create -> assign -> offer -> accept ----------------------------------------


def _pickup_frame(i: int) -> dict:
    start = datetime.now(UTC) + timedelta(hours=1)
    return {
        "idempotency_key": f"bench-{uuid.uuid4().hex}",
        "data": {
            "address": f"Benchstraße {i}, Berlin",
            "latitude": CENTRE[0] + 0.001 * (i % 11 - 5),
            "longitude": CENTRE[1] + 0.001 * (i % 13 - 6),
            "window_start": start.isoformat(),
            "window_end": (start + timedelta(hours=3)).isoformat(),
            "items": [{"material": MATERIAL, "estimated_kg": 20}],
        },
    }


class Pipeline:
    """The sockets of the pipeline scenario, and what they saw."""

    def __init__(self, stack, crowd: Crowd) -> None:
        self.stack = stack
        self.crowd = crowd
        self.customers = [
            Client(f"{stack.ws}/ws/pickups/", p.token, self._customer_frame)
            for p in crowd.customers
        ]
        self.inboxes = {
            p.user_id: Client(
                f"{stack.ws}/ws/notifications/", p.token, self._notification(p.user_id)
            )
            for p in (*crowd.customers, *crowd.vendor_members)
        }
        self.vendor_sockets = {
            p.user_id: Client(f"{stack.ws}/ws/pickups/", p.token, self._vendor_reply)
            for p in crowd.vendor_members
        }
        self.vendor_members = {p.user_id for p in crowd.vendor_members}
        self.reset()

    def reset(self) -> None:
        self.inbox = Inbox()
        self.scheduled: dict[str, float] = {}  # request id -> scheduled send time
        self.created: dict[int, float] = {}  # pickup id -> scheduled send time of its create
        self.replied: list[float] = []
        self.errors: list[dict] = []
        self.offered: dict[int, float] = {}
        self.accept_sent: dict[int, float] = {}
        self.accepted_told: dict[int, float] = {}

    async def connect(self, parallel: int = 100) -> int:
        sockets = self._sockets()
        errors = [e for e in await connect_all(sockets, parallel=parallel) if e is not None]
        if errors:
            raise RuntimeError(
                f"{len(errors)} of the pipeline's sockets did not open: {errors[0]!r}"
            )
        # Every notifications socket has joined its group once it answers a ping.
        await asyncio.gather(*(c.request("ping") for c in self.inboxes.values()))

    async def reopen(self) -> int:
        """Open again, as an app would, the sockets the server closed during an earlier rate
        (an overloaded uvicorn closes a socket whose frames wait past its keepalive), so that
        they do not count as losses in this one; how many."""
        closed = [c for c in self._sockets() if c.closed_by_server]
        for client in closed:
            client.closed_by_server = None
        errors = [e for e in await connect_all(closed, parallel=100) if e is not None]
        if errors:
            raise RuntimeError(f"{len(errors)} sockets did not open again: {errors[0]!r}")
        inboxes = set(map(id, self.inboxes.values()))
        await asyncio.gather(*(c.request("ping") for c in closed if id(c) in inboxes))
        return len(closed)

    def _sockets(self) -> list[Client]:
        return [*self.customers, *self.inboxes.values(), *self.vendor_sockets.values()]

    def _closed(self) -> dict[str, list[str]]:
        roles = {
            "customer pickups": self.customers,
            "inboxes": list(self.inboxes.values()),
            "vendor pickups": list(self.vendor_sockets.values()),
        }
        return {
            role: [c.closed_by_server for c in clients if c.closed_by_server]
            for role, clients in roles.items()
        }

    async def close(self) -> None:
        await asyncio.gather(*(c.close() for c in self._sockets()), return_exceptions=True)

    def _customer_frame(self, client: Client, frame: dict, arrived: float) -> None:
        scheduled = self.scheduled.pop(frame.get("request_id"), None)
        if scheduled is None:
            return
        if frame["type"] == "pickup.created":
            self.created[frame["pickup"]["id"]] = scheduled
            self.replied.append((arrived - scheduled) * 1000)
        else:
            self.errors.append(frame)

    def _vendor_reply(self, client: Client, frame: dict, arrived: float) -> None:
        if frame.get("type") == "error":
            self.errors.append(frame)

    def _notification(self, user_id: int):
        def on_frame(client: Client, frame: dict, arrived: float) -> None:
            notification = self.inbox.frame(user_id, frame, arrived)
            if notification is None:
                return
            pickup_id = notification["data"].get("pickup_id")
            if notification["kind"] == "pickup.offered" and user_id in self.vendor_members:
                self.offered.setdefault(pickup_id, arrived)
                asyncio.get_running_loop().create_task(self._accept(user_id, pickup_id))
            elif notification["kind"] == "pickup.accepted" and user_id not in self.vendor_members:
                self.accepted_told.setdefault(pickup_id, arrived)

        return on_frame

    async def _accept(self, member_id: int, pickup_id: int) -> None:
        self.accept_sent[pickup_id] = now()
        await self.vendor_sockets[member_id].send("accept", pickup_id=pickup_id)

    async def run(self, rate: float, duration: float, *, settle: float) -> dict:
        """Create pickups at ``rate`` per second for ``duration`` seconds, open loop, customers
        in turn; then wait up to ``settle`` seconds for every offer and acceptance."""
        reopened = await self.reopen()
        self.reset()
        depths: list[dict] = []
        sampling = asyncio.create_task(self._sample_depths(depths))
        cpu_before = cpu_seconds(self.stack)

        async def fire(i: int, at: float) -> None:
            client = self.customers[i % len(self.customers)]
            request_id = f"create-{i}-{uuid.uuid4().hex[:6]}"
            self.scheduled[request_id] = at
            await client.send("create", request_id, **_pickup_frame(i))

        started = time.monotonic()
        sent = await open_loop(rate, duration, fire)
        send_seconds = time.monotonic() - started
        deadline = now() + settle
        while now() < deadline and not self._settled(sent):
            await asyncio.sleep(0.1)
        sampling.cancel()
        cpu = {
            part: round((seconds - cpu_before.get(part, 0.0)) * 1000 / max(1, len(self.offered)), 1)
            for part, seconds in cpu_seconds(self.stack).items()
        }
        offers = [
            (self.offered[p] - at) * 1000 for p, at in self.created.items() if p in self.offered
        ]
        accepts = [
            (self.accepted_told[p] - self.accept_sent[p]) * 1000
            for p in self.accepted_told
            if p in self.accept_sent
        ]
        unanswered = sent - len(self.replied) - len(self.errors)
        not_offered = [p for p in self.created if p not in self.offered]
        return {
            "offered_rate": rate,
            "seconds": duration,
            "sent": sent,
            "achieved_send_rate": round(sent / send_seconds, 1),
            "created": len(self.created),
            "errors": len(self.errors),
            "errors_sample": self.errors[:3],
            "unanswered": unanswered,
            "offers_delivered": len(offers),
            "lost_offers": len(not_offered),
            "accepted_notified": len(accepts),
            "lost_accepted": len([p for p in self.accept_sent if p not in self.accepted_told]),
            "duplicated_notifications": self.inbox.duplicates,
            # Sockets the server closed so far, by role, and frames that could not be sent.
            "sockets_closed_by_server": self._closed(),
            "sockets_reopened_before": reopened,
            "send_failures": sum(c.send_failures for c in self._sockets()),
            "create_to_reply_ms": summary(self.replied),
            "create_to_offer_ms": summary(offers),
            "accept_to_customer_ms": summary(accepts),
            "max_queue_depth": {
                q: max((d[q] for d in depths), default=0) for q in ("assignments", "notifications")
            },
            # CPU milliseconds per pickup offered, by process, over the run and its settling.
            "cpu_ms_per_pickup": cpu,
            "queue_depths": depths,
        }

    def _settled(self, sent: int) -> bool:
        answered = len(self.replied) + len(self.errors) == sent
        return (
            answered
            and all(p in self.offered for p in self.created)
            and all(p in self.accepted_told for p in self.accept_sent)
        )

    async def _sample_depths(self, into: list[dict]) -> None:
        started = now()
        while True:
            depths = await sync_to_async(self.stack.queue_depths, thread_sensitive=False)()
            into.append({"t": round(now() - started, 1), **depths})
            await asyncio.sleep(0.5)


def sustained(result: dict, *, offer_p99_limit_ms: float) -> bool:
    """A rate is sustained when everything sent was created, offered and accepted without loss
    or duplicate, and offers kept up (p99 within the limit: no backlog that grows)."""
    offer = result["create_to_offer_ms"]
    return (
        result["created"] == result["sent"]
        and result["lost_offers"] == 0
        and result["lost_accepted"] == 0
        and result["duplicated_notifications"] == 0
        and offer["p99"] is not None
        and offer["p99"] <= offer_p99_limit_ms
    )


# --- 3 and 4. fan-out, our path against the naive one ----------------------------------------


async def naive_sockets(stack, people: list[Person]) -> dict[int, Client]:
    """The naive socket of each of ``people``, open, by user id."""
    clients = {p.user_id: Client(f"{stack.ws}/ws/naive/notifications/", p.token) for p in people}
    errors = [e for e in await connect_all(list(clients.values()), parallel=100) if e is not None]
    if errors:
        raise RuntimeError(f"{len(errors)} naive sockets did not open: {errors[0]!r}")
    return clients


async def fanout(stack, clients: dict[int, Client], *, events: int, mode: str) -> dict:
    """Notifications delivered per second from the notifications workers to connected sockets.

    ``events`` events each to every user in ``clients`` are stored first (not measured), then
    their pushes are published at once: ``platform`` publishes the platform's own push task,
    one per event for all its recipients; ``naive`` one ``bench.tasks.naive_push_task`` per
    notification (``async_to_sync(group_send)`` each) to the naive sockets, which load each
    notification with an ORM ``.get()`` (``clients`` are connected to the socket of the mode). The rate is notifications delivered over
    the time from the first publish to the last arrival."""
    from django.db import transaction

    from bench.tasks import naive_push_task
    from notifications.models import Notification
    from notifications.services import notification_store
    from notifications.tasks import push_notifications_task

    user_ids = sorted(clients)
    run = uuid.uuid4().hex[:8]

    @sync_to_async(thread_sensitive=False)
    def store() -> list[tuple[str, list[Notification]]]:
        stored = []
        for e in range(events):
            key = f"bench-fanout-{run}-{e}"
            with transaction.atomic():
                rows = [
                    notification_store(
                        user_id=uid,
                        kind="vendor.digest",
                        message=f"Fan-out {e}",
                        data={"bench": run, "event": e},
                        event_key=key,
                    )[0]
                    for uid in user_ids
                ]
            stored.append((key, rows))
        return stored

    stored = await store()
    expected = {(n.recipient_id, n.seq) for _, rows in stored for n in rows}
    inbox = Inbox()
    done = asyncio.Event()
    latencies: list[float] = []

    def on_frame(user_id: int):
        def record(client: Client, frame: dict, arrived: float) -> None:
            notification = inbox.frame(user_id, frame, arrived)
            if notification is not None and (user_id, notification["id"]) in expected:
                latencies.append(arrived)
                if len(latencies) == len(expected):
                    done.set()

        return record

    for uid, client in clients.items():
        client.on_frame = on_frame(uid)

    @sync_to_async(thread_sensitive=False)
    def publish() -> None:
        if mode == "platform":
            for key, rows in stored:
                push_notifications_task.delay([n.recipient_id for n in rows], key)
        else:
            for _, rows in stored:
                for notification in rows:
                    naive_push_task.delay(notification.recipient_id, notification.pk)

    cpu_before = cpu_seconds(stack)
    started = now()
    await publish()
    publish_seconds = now() - started
    try:
        await asyncio.wait_for(done.wait(), timeout=max(60.0, len(expected) / 50))
    except TimeoutError:
        pass
    delivered = len(latencies)
    seconds = (max(latencies) - started) if latencies else float("nan")
    cpu = {
        part: round((seconds - cpu_before.get(part, 0.0)) * 1000 / max(1, delivered), 2)
        for part, seconds in cpu_seconds(stack).items()
    }
    for client in clients.values():
        client.on_frame = None
    return {
        "mode": mode,
        "sockets": len(clients),
        "events": events,
        "notifications": len(expected),
        "delivered": delivered,
        "lost": len(expected) - delivered,
        "duplicated": inbox.duplicates,
        "publish_seconds": round(publish_seconds, 2),
        "seconds": round(seconds, 2),
        "per_second": round(delivered / seconds, 1) if latencies else 0,
        "first_to_socket_ms": summary([(t - started) * 1000 for t in latencies]),
        # CPU milliseconds per notification delivered, by process, from publish to last arrival.
        "cpu_ms_per_notification": cpu,
    }
