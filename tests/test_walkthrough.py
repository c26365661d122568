"""The quick start's walkthrough, played against the real consumers.

``docs/quickstart.rst`` marks every frame its reader sends with a comment
``.. walkthrough: <user> <endpoint> send`` right before the code-block, and every frame the
reader should then see with ``.. walkthrough: <user> <endpoint> receive`` (``<endpoint>`` is
``pickups`` or ``notifications``). This test loads the demo data, opens the notification stream
of every user whose stream the page shows (as the page's first step does), and plays the marked
blocks in order, in-process, through the ASGI application and its token authentication:

* a ``send`` block is sent on that user's socket (opened on first use), after the work queued so
  far has run, as a reader would wait a moment between steps; its reply must not be an error;
* a ``receive`` block is looked for among the frames that socket receives from then on: the
  first with the same ``type`` (and, for a notification, the same ``kind``) is the one, the
  frames before it are passed over. It must arrive within ``TIMEOUT`` seconds, and it must match
  the documented frame key for key and value for value, except for the keys in ``LOOSE_IDS``,
  ``LOOSE_TIMES`` and ``LOOSE_UUIDS``, which only need a value of the same kind.

The page tells the story of pickup 1; the test database numbers it as it comes. Each pickup id
of the page is mapped to the id the server gave it, learned from the frames received (the same
page id must always be the same pickup): the frames sent carry the server's id, and in the texts
compared, ``#1`` and the receipt number ``R-000001`` stand for it.

Celery runs as it does for the reader, not eagerly: a task published after a change waits in a
queue, and a worker (here the test) takes the tasks one by one while a ``receive`` block waits
for its frame. So the reply to ``create`` is made before the pickup is offered, as on a running
stack. The notifications those tasks push reach the sockets through the test's channel layer.
"""

import asyncio
import io
import json
import re
import textwrap
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from celery.result import AsyncResult
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.core.management import call_command
from rest_framework.authtoken.models import Token

from notifications import push
from procurement_system.celery import PlatformTask
from tests.consumers import connect

QUICKSTART = Path(__file__).resolve().parents[1] / "docs" / "quickstart.rst"
MARKER = re.compile(
    r"^(?P<indent> *)\.\. walkthrough: (?P<user>\w+) (?P<endpoint>pickups|notifications) "
    r"(?P<direction>send|receive)\s*$"
)
ENDPOINTS = {"pickups": "/ws/pickups/", "notifications": "/ws/notifications/"}
# How long a documented frame may take to arrive once the work before it has run.
TIMEOUT = 5.0

# The only keys whose values are compared loosely, wherever they appear in a frame: values that
# differ from one run to the next, or from one database to another.
LOOSE_IDS = {"id", "pickup_id", "vendor_id"}  # database ids, per-user notification numbers
LOOSE_TIMES = {  # when something happened: ISO 8601 with the same UTC suffix ("Z", "+00:00")
    "at",
    "created_at",
    "updated_at",
    "status_changed_at",
    "offer_expires_at",
    "issued_at",
    "read_at",
}
LOOSE_UUIDS = {"assignment_task_id"}  # a Celery task id, chosen when the pickup is created


# --- the page -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    user: str
    endpoint: str
    direction: str
    frame: dict[str, Any]
    line: int  # of the marker, for the messages

    def __str__(self) -> str:
        return f"quickstart.rst line {self.line} ({self.user} {self.endpoint} {self.direction})"


def walkthrough_steps(text: str) -> list[Step]:
    """Every marked code-block of the page, in order, with its JSON parsed."""
    lines = text.splitlines()
    steps = []
    for index, line in enumerate(lines):
        match = MARKER.match(line)
        if match is None:
            assert not line.lstrip().startswith(".. walkthrough"), f"malformed marker: {line!r}"
            continue
        at = index + 1
        while at < len(lines) and not lines[at].strip():
            at += 1
        directive = lines[at] if at < len(lines) else ""
        assert directive.strip() == ".. code-block:: json", (
            f"line {index + 1}: the marker must come right before a JSON code-block"
        )
        indent = len(directive) - len(directive.lstrip())
        body = []
        for content in lines[at + 1 :]:
            if content.strip() and len(content) - len(content.lstrip()) <= indent:
                break
            body.append(content)
        frame = json.loads(textwrap.dedent("\n".join(body)))
        assert isinstance(frame, dict), f"line {index + 1}: a frame is a JSON object"
        steps.append(Step(match["user"], match["endpoint"], match["direction"], frame, index + 1))
    return steps


def test_the_page_marks_a_whole_walkthrough():
    steps = walkthrough_steps(QUICKSTART.read_text())
    sent = [s.frame.get("action") for s in steps if s.direction == "send"]
    assert sent[0] == "create"
    assert {"reject", "accept", "update", "location", "get"} <= set(sent)
    assert all(s.frame.get("request_id") for s in steps if s.direction == "send")
    kinds = {
        s.frame["notification"]["kind"] for s in steps if s.frame.get("type") == "notification"
    }
    assert {"pickup.offered", "receipt.issued"} <= kinds


# --- comparing frames -----------------------------------------------------------------------


def _utc_suffix(value: Any) -> str | None:
    """The suffix ("Z" or "+00:00") of an ISO 8601 date and time in UTC; None for anything else."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.utcoffset() is None or moment.utcoffset().total_seconds() != 0:
        return None
    return "Z" if value.endswith("Z") else value[-6:]


def _is_uuid(value: Any) -> bool:
    try:
        return isinstance(value, str) and str(uuid.UUID(value)) == value
    except ValueError:
        return False


def mismatches(documented: Any, received: Any, path: str = "$", key: str | None = None) -> list:
    """Where the received frame differs from the documented one (empty if nowhere)."""
    if key in LOOSE_IDS:
        ok = all(isinstance(v, int) and not isinstance(v, bool) for v in (documented, received))
        return [] if ok else [f"{path}: documented {documented!r}, received {received!r}"]
    if key in LOOSE_TIMES and (documented, received) != (None, None):
        ok = _utc_suffix(documented) is not None and (
            _utc_suffix(documented) == _utc_suffix(received)
        )
        return [] if ok else [f"{path}: documented {documented!r}, received {received!r}"]
    if key in LOOSE_UUIDS:
        ok = _is_uuid(documented) and _is_uuid(received)
        return [] if ok else [f"{path}: documented {documented!r}, received {received!r}"]
    if isinstance(documented, dict) and isinstance(received, dict):
        problems = [f"{path}.{k}: documented, not sent" for k in documented.keys() - received]
        problems += [
            f"{path}.{k}: sent ({received[k]!r}), not documented"
            for k in received.keys() - documented
        ]
        for k in documented.keys() & received.keys():
            problems += mismatches(documented[k], received[k], f"{path}.{k}", k)
        return problems
    if isinstance(documented, list) and isinstance(received, list):
        if len(documented) != len(received):
            return [f"{path}: documented {len(documented)} entries, received {len(received)}"]
        return [
            problem
            for i, (d, r) in enumerate(zip(documented, received, strict=True))
            for problem in mismatches(d, r, f"{path}[{i}]")
        ]
    if type(documented) is not type(received) or documented != received:
        return [f"{path}: documented {documented!r}, received {received!r}"]
    return []


def test_the_comparison_is_strict_but_for_the_loose_keys():
    documented = {
        "pickup": {"id": 1, "at": "2026-11-21T05:47:48.414106Z", "status": "pending"},
        "assignment_task_id": "8d3a568a-bad6-4b0e-add1-837d7b927028",
    }
    same = {
        "pickup": {"id": 7, "at": "2031-01-02T03:04:05.000006Z", "status": "pending"},
        "assignment_task_id": str(uuid.uuid4()),
    }
    assert mismatches(documented, same) == []
    assert mismatches({"id": 1}, {"id": "1"})
    assert mismatches({"at": "2026-11-21T05:47:48Z"}, {"at": "2026-11-21T05:47:48+00:00"})
    assert mismatches({"at": None}, {"at": "2026-11-21T05:47:48Z"})
    assert mismatches({"status": "pending"}, {"status": "offered"})
    assert mismatches({"kg": "40.00"}, {"kg": 40.0})
    assert mismatches({"a": 1}, {"a": 1, "b": 2}) == ["$.b: sent (2), not documented"]
    assert mismatches({"a": 1, "b": 2}, {"a": 1}) == ["$.b: documented, not sent"]
    assert mismatches({"items": [1]}, {"items": [1, 2]})


def _same_kind(documented: dict, received: dict) -> bool:
    if documented.get("type") != received.get("type"):
        return False
    if documented.get("type") != "notification":
        return True
    return documented["notification"].get("kind") == received["notification"].get("kind")


# --- Celery and the channel layer as on a running stack -------------------------------------


class Worker:
    """Tasks published after a change wait here until the test lets the worker take one."""

    def __init__(self) -> None:
        self.queue: deque[tuple[PlatformTask, tuple, dict, str]] = deque()

    def publish(self, task, args=None, kwargs=None, task_id=None, **options) -> AsyncResult:
        task_id = task_id or str(uuid.uuid4())
        self.queue.append((task, tuple(args or ()), dict(kwargs or {}), task_id))
        return AsyncResult(task_id)

    async def run_one(self) -> bool:
        """Run the oldest waiting task (it may publish more); False if none waits."""
        if not self.queue:
            return False
        task, args, kwargs, task_id = self.queue.popleft()
        await database_sync_to_async(task.apply)(args, kwargs, task_id=task_id)
        return True

    async def run_all(self) -> None:
        while await self.run_one():
            pass


class LayerBridge:
    """The notification push's sender, in place of ``push.group_sender``: it sends to the channel
    layer the test's sockets listen on, from the worker's thread through the test's event loop.
    (With the test settings, the real sender's in-memory layer is its own and reaches no socket.)
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.layer = get_channel_layer()

    def send_many(self, messages, timeout: float) -> list[BaseException | None]:
        async def send_all() -> None:
            for group, message in messages:
                await self.layer.group_send(group, message)

        asyncio.run_coroutine_threadsafe(send_all(), self.loop).result(timeout)
        return [None] * len(messages)


# --- playing it -----------------------------------------------------------------------------


class Socket:
    def __init__(self, communicator) -> None:
        self.communicator = communicator
        self.frames: deque[dict] = deque()  # received and not yet looked at

    async def read(self, timeout: float) -> bool:
        """Take one more frame into ``frames``; False if none came within ``timeout``."""
        if await self.communicator.receive_nothing(timeout=timeout, interval=0.005):
            return False
        self.frames.append(json.loads(await self.communicator.receive_from()))
        return True


class Walk:
    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.sockets: dict[tuple[str, str], Socket] = {}
        self.problems: list[str] = []
        self.pickup_ids: dict[int, int] = {}  # the page's id -> the server's

    def learn_pickup_ids(self, documented: Any, received: Any, key: str | None = None) -> None:
        """Map the pickup ids of a documented frame to those of the received one."""
        if isinstance(documented, dict) and isinstance(received, dict):
            if key == "pickup" and "id" in documented and "id" in received:
                self._map(documented["id"], received["id"])
            for k in documented.keys() & received.keys():
                if k == "pickup_id":
                    self._map(documented[k], received[k])
                else:
                    self.learn_pickup_ids(documented[k], received[k], k)
        elif isinstance(documented, list) and isinstance(received, list):
            for d, r in zip(documented, received, strict=False):
                self.learn_pickup_ids(d, r)

    def _map(self, documented: Any, received: Any) -> None:
        if not all(isinstance(v, int) for v in (documented, received)):
            return  # not an id: the comparison reports it
        known = self.pickup_ids.setdefault(documented, received)
        assert known == received, f"the page's pickup {documented} is {known}, not {received}"

    def with_server_ids(self, value: Any, key: str | None = None) -> Any:
        """A documented value with the server's pickup ids for the page's."""
        if isinstance(value, dict):
            return {k: self.with_server_ids(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [self.with_server_ids(v) for v in value]
        if key == "pickup_id" and isinstance(value, int):
            return self.pickup_ids.get(value, value)
        if isinstance(value, str):
            value = re.sub(r"#(\d+)\b", lambda m: f"#{self._server_id(m[1])}", value)
            return re.sub(r"\bR-(\d{6})\b", lambda m: f"R-{self._server_id(m[1]):06d}", value)
        return value

    def _server_id(self, digits: str) -> int:
        return self.pickup_ids.get(int(digits), int(digits))

    async def socket(self, user: str, endpoint: str) -> Socket:
        if (user, endpoint) not in self.sockets:
            key = await database_sync_to_async(lambda: Token.objects.get(user__username=user).key)()
            socket = Socket(await connect(ENDPOINTS[endpoint], key))
            self.sockets[user, endpoint] = socket
            # Wait until the socket has joined its groups (and, for notifications, read where
            # it starts): a ping's answer comes after that.
            await self._ask(socket, {"action": "ping", "request_id": "joined"})
        return self.sockets[user, endpoint]

    async def _ask(self, socket: Socket, frame: dict) -> dict:
        await socket.communicator.send_to(text_data=json.dumps(frame))
        while True:
            assert await socket.read(TIMEOUT), f"no reply to {frame}"
            reply = socket.frames[-1]
            if "request_id" in reply and reply["request_id"] == frame["request_id"]:
                socket.frames.pop()
                return reply

    async def send(self, step: Step) -> None:
        await self.worker.run_all()
        socket = await self.socket(step.user, step.endpoint)
        await socket.communicator.send_to(text_data=json.dumps(self.with_server_ids(step.frame)))
        while True:
            assert await socket.read(TIMEOUT), f"{step}: no reply"
            reply = socket.frames[-1]
            if reply.get("request_id", object()) == step.frame["request_id"]:
                break
        assert reply["type"] != "error", f"{step}: the server answered {reply}"

    async def receive(self, step: Step) -> None:
        socket = self.sockets.get((step.user, step.endpoint))
        assert socket is not None, f"{step}: the page shows a frame on a socket it never opened"
        deadline = asyncio.get_running_loop().time() + TIMEOUT
        passed_over = []
        while True:
            while socket.frames:
                frame = socket.frames.popleft()
                if not _same_kind(step.frame, frame):
                    passed_over.append(frame)
                    continue
                self.learn_pickup_ids(step.frame, frame)
                found = mismatches(self.with_server_ids(step.frame), frame)
                if found:
                    shown = json.dumps(frame, indent=2)
                    self.problems.append(f"{step}:\n  " + "\n  ".join(found) + f"\n{shown}")
                return
            if asyncio.get_running_loop().time() > deadline:
                pytest.fail(
                    f"{step}: no frame like {json.dumps(step.frame)} arrived; passed over: "
                    f"{json.dumps(passed_over)}"
                )
            if not await socket.read(0.02):
                await self.worker.run_one()

    async def close(self) -> None:
        for socket in self.sockets.values():
            await socket.communicator.disconnect()


@pytest.fixture
async def walk(monkeypatch):
    worker = Worker()
    monkeypatch.setattr(
        PlatformTask, "apply_async", lambda task, *a, **kw: worker.publish(task, *a, **kw)
    )
    monkeypatch.setattr(push, "group_sender", LayerBridge(asyncio.get_running_loop()))
    await database_sync_to_async(call_command)("seed_demo", stdout=io.StringIO())
    walk = Walk(worker)
    yield walk
    await walk.close()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("worker_thread_connections")
async def test_the_quickstart_walkthrough_plays_as_documented(walk):
    steps = walkthrough_steps(QUICKSTART.read_text())
    # The page's first step: the notification streams are open before anything happens.
    for user in dict.fromkeys(s.user for s in steps if s.endpoint == "notifications"):
        await walk.socket(user, "notifications")
    for step in steps:
        if step.direction == "send":
            await walk.send(step)
        else:
            await walk.receive(step)
    assert not walk.problems, "the page differs from what the server sends:\n" + "\n".join(
        walk.problems
    )
