"""The security guarantees against the real stack: uvicorn, Redis, RabbitMQ, a Celery worker and
Flower, started from the Procfile as ``make run`` starts them, in production mode.

A stack of its own, with small WebSocket limits (a rate of 5 frames a second, 3 sockets per
user, slots that lapse 3 s after a crash) so that each limit is reached in a moment; a second
uvicorn process shows that the socket cap holds across processes.
"""

import asyncio
import json
import pickle
import secrets
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid

import pika
import pytest
import websockets

from tests.conftest import require_service
from tests.e2e.stack import REPO, Flower, Stack, free_port, procfile_commands, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio]

LIMITS = {
    "WEBSOCKET_RATE": "5",
    "WEBSOCKET_BURST": "5",
    "WEBSOCKET_MAX_REFUSED": "3",
    "WEBSOCKET_MAX_PER_USER": "3",
    "WEBSOCKET_SLOT_TTL_SECONDS": "3",
}
# Production mode over plain HTTP on 127.0.0.1: a real key, and no HTTPS redirect or secure-only
# cookies (there is no TLS in front).
PRODUCTION_OVER_HTTP = {
    "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
    "DJANGO_SECURE_SSL_REDIRECT": "false",
    "DJANGO_SESSION_COOKIE_SECURE": "false",
    "DJANGO_CSRF_COOKIE_SECURE": "false",
}
PURGE_TASK = "procurement_system.tasks.purge_task_results_task"


@pytest.fixture(scope="module")
def secure_stack(tmp_path_factory):
    require_service("RabbitMQ", 5672)
    require_service("Redis", 6379)
    stack = Stack(
        tmp_path_factory.mktemp("security"),
        processes=("web", "maintenance"),
        env={**PRODUCTION_OVER_HTTP, **LIMITS},
    )
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def keys(secure_stack):
    return secure_stack.tokens("alice", "victor", "vera", "vince")


def spawn(stack: Stack, name: str, command: str, **env: str) -> subprocess.Popen:
    log = open(stack.workdir / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        ["bash", "-c", f"exec {command}"],
        cwd=REPO,
        env={**stack.env, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def status_of(url: str, headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def answers(url: str, process: subprocess.Popen) -> bool:
    """Whether ``process``, which must still run, answers ``url`` at all."""
    if process.poll() is not None:
        raise RuntimeError(f"the process exited with {process.returncode}")
    try:
        return status_of(url) > 0
    except OSError:
        return False


async def connect(url: str, key: str | None = None, **kwargs):
    headers = {"Authorization": f"Token {key}"} if key else {}
    return await websockets.connect(url, additional_headers=headers, open_timeout=10, **kwargs)


async def ask(ws, frame: dict) -> dict:
    await ws.send(json.dumps(frame))
    return json.loads(await asyncio.wait_for(ws.recv(), 10))


async def close_code(ws) -> int:
    with pytest.raises(websockets.ConnectionClosed) as closed:
        while True:
            await asyncio.wait_for(ws.recv(), 10)
    return closed.value.rcvd.code


# --- WebSocket ----------------------------------------------------------------------------------


async def test_a_foreign_origin_is_refused_and_the_sites_own_let_in(secure_stack, keys):
    url = f"{secure_stack.ws}/ws/pickups/"
    with pytest.raises(websockets.InvalidStatus) as refused:
        await connect(url, keys["alice"], origin="https://evil.example")
    assert refused.value.response.status_code == 403
    ws = await connect(url, keys["alice"], origin=f"http://localhost:{secure_stack.port}")
    assert (await ask(ws, {"action": "ping"}))["type"] == "pong"
    await ws.close()


async def test_no_or_a_wrong_token_closes_with_4401(secure_stack):
    for key in (None, "not-a-token"):
        ws = await connect(f"{secure_stack.ws}/ws/notifications/", key)
        assert await close_code(ws) == 4401


async def test_a_frame_over_64_kb_closes_with_1009(secure_stack, keys):
    ws = await connect(f"{secure_stack.ws}/ws/pickups/", keys["alice"], max_size=None)
    await ws.send(json.dumps({"action": "ping", "pad": "x" * 65_536}))
    assert await close_code(ws) == 1009


async def test_frames_over_the_rate_are_refused_then_the_socket_closed(secure_stack, keys):
    ws = await connect(f"{secure_stack.ws}/ws/pickups/", keys["victor"])
    # Five at once pass; the next are refused, unprocessed; the fourth refusal closes.
    frames = [{"action": "ping", "request_id": f"p{n}"} for n in range(9)]
    await asyncio.gather(*(ws.send(json.dumps(frame)) for frame in frames))
    replies = [json.loads(await asyncio.wait_for(ws.recv(), 10)) for _ in range(8)]
    assert [r["type"] for r in replies] == ["pong"] * 5 + ["error"] * 3
    assert {r["code"] for r in replies[5:]} == {"rate_limited"}
    assert [r["request_id"] for r in replies[5:]] == ["p5", "p6", "p7"]
    assert await close_code(ws) == 4429
    # A client that keeps to the rate is served.
    ws = await connect(f"{secure_stack.ws}/ws/pickups/", keys["victor"])
    for n in range(12):
        assert (await ask(ws, {"action": "ping"}))["type"] == "pong", n
        await asyncio.sleep(0.25)
    await ws.close()


async def test_the_socket_cap_holds_across_processes_and_survives_a_crash(secure_stack, keys):
    """Three sockets per user over two uvicorn processes sharing Redis; a killed process's
    slots come free once they lapse."""
    port = free_port()
    second = spawn(secure_stack, "web2", procfile_commands()["web"], WEB_PORT=str(port))
    try:
        await asyncio.to_thread(
            wait_until,
            lambda: answers(f"http://127.0.0.1:{port}/health/", second),
            timeout=30,
            what="the second uvicorn",
        )
        first_url = f"{secure_stack.ws}/ws/pickups/"
        second_url = f"ws://127.0.0.1:{port}/ws/notifications/"
        key = keys["vince"]
        here = [await connect(first_url, key), await connect(first_url, key)]
        there = [await connect(second_url, key)]
        for url in (first_url, second_url):
            assert await close_code(await connect(url, key)) == 4409
        for ws in (*here, *there):  # the open ones are untouched
            assert (await ask(ws, {"action": "ping"}))["type"] == "pong"
        # Closing one on the first process lets one in on the second.
        await here.pop().close()
        there.append(await wait_for_a_slot(second_url, key))

        # The second process dies without closing its sockets: its two slots lapse in 3 s.
        second.send_signal(signal.SIGKILL)
        second.wait(timeout=10)
        killed_at = time.monotonic()
        assert await close_code(await connect(first_url, key)) == 4409
        replacements = [await wait_for_a_slot(first_url, key, timeout=15) for _ in range(2)]
        assert time.monotonic() - killed_at < 15
        assert await close_code(await connect(first_url, key)) == 4409
        for ws in (*here, *there, *replacements):
            await asyncio.wait_for(ws.close(), 10)
    finally:
        stop(second)


async def wait_for_a_slot(url: str, key: str, timeout: float = 10):
    """A socket that stays open: retried while the cap closes it with 4409."""
    deadline = time.monotonic() + timeout
    while True:
        ws = await connect(url, key)
        try:
            reply = await ask(ws, {"action": "ping"})
        except websockets.ConnectionClosed as closed:
            assert closed.rcvd.code == 4409
            if time.monotonic() > deadline:
                raise TimeoutError("no slot came free") from None
            await asyncio.sleep(0.2)
            continue
        assert reply["type"] == "pong"
        return ws


# --- Celery: JSON only --------------------------------------------------------------------------


class Booby:
    """Unpickling this creates ``path``: proof that the payload was deserialized."""

    def __init__(self, path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


async def test_a_pickle_message_is_refused_by_the_worker_and_nothing_runs(secure_stack):
    trap = secure_stack.workdir / "pwned"
    task_id = str(uuid.uuid4())
    queue = f"{secure_stack.prefix}maintenance"
    connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1"))
    try:
        connection.channel().basic_publish(
            exchange="",
            routing_key=queue,
            body=pickle.dumps(Booby(trap)),
            properties=pika.BasicProperties(
                content_type="application/x-python-serialize",
                content_encoding="binary",
                delivery_mode=2,
                headers={"task": PURGE_TASK, "id": task_id, "lang": "py", "argsrepr": "()"},
            ),
        )
    finally:
        connection.close()
    refusal = "Refusing to deserialize untrusted content of type pickle"
    await asyncio.to_thread(
        wait_until,
        lambda: refusal in secure_stack.log("maintenance"),
        timeout=30,
        what="the worker to refuse the pickle message",
    )
    log = secure_stack.log("maintenance")
    assert "Received invalid task message" in log
    assert f"{PURGE_TASK}[{task_id}] received" not in log
    assert not trap.exists()
    assert secure_stack.queue_depth("maintenance") == 0  # discarded, not requeued


# --- Flower -------------------------------------------------------------------------------------


async def test_flower_requires_its_credentials(secure_stack):
    credentials = f"ops:{secrets.token_urlsafe(12)}"
    flower = Flower(secure_stack, credentials=credentials)
    try:
        await asyncio.to_thread(flower.start)
        for path in ("/", "/workers", "/api/workers", "/api/tasks"):
            assert flower.status(path) == 401, path
            assert flower.status(path, "ops:wrong") == 401, path
            assert flower.status(path, "admin:demo-pass-123") == 401, path
        assert flower.status("/api/workers?refresh=false", credentials) == 200
    finally:
        flower.stop()
