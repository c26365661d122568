"""WebSocket limits: a frame rate per socket (error frames, then 4429), a cap on the sockets one
user holds open (4409), and frames over 64 KB (1009).

The rate limiter reads ``connection_limits.monotonic``, which these tests replace with a clock
they move by hand, so nothing sleeps. The socket cap is counted in the process with the in-memory
channel layer of the consumer tests, and in Redis with the Redis channel layer: the tests of the
count run against both (Redis on 127.0.0.1:6379), and ``tests/e2e/test_security.py`` against two
uvicorn processes.
"""

import asyncio
import json
import uuid
from collections import Counter

import pytest
from channels.db import database_sync_to_async
from channels.layers import InMemoryChannelLayer
from channels_redis.core import RedisChannelLayer

from pickups.models import PickupRequest
from procurement_system import connection_limits
from procurement_system.connection_limits import (
    FrameRateLimiter,
    RedisSockets,
    SocketSlot,
    local_sockets,
    sockets_of,
)
from procurement_system.websocket import (
    CLOSE_MESSAGE_TOO_BIG,
    CLOSE_RATE_LIMITED,
    CLOSE_TOO_MANY_SOCKETS,
)
from tests.conftest import require_service
from tests.consumers import ask, connect, token_for
from tests.factories import UserFactory

REDIS = "redis://127.0.0.1:6379/15"  # a database of its own


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(autouse=True)
def no_sockets_counted():
    """Sockets that other tests left open stay out of these, and these leave none behind."""
    local_sockets.users.clear()
    yield
    local_sockets.users.clear()


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(connection_limits, "monotonic", clock)
    return clock


# --- the token bucket ---------------------------------------------------------------------------


def limiter(clock, rate=2.0, burst=3, max_refused=2, window=10.0) -> FrameRateLimiter:
    return FrameRateLimiter(
        rate=rate, burst=burst, max_refused=max_refused, window=window, clock=clock
    )


def test_a_burst_passes_then_frames_are_refused_until_tokens_come_back():
    clock = Clock()
    frames = limiter(clock)
    assert [frames.allow() for _ in range(4)] == [True, True, True, False]
    clock.advance(0.49)
    assert frames.allow() is False  # 0.98 of a token
    clock.advance(0.01)
    assert frames.allow() is True
    clock.advance(60)  # a long pause refills to the burst, not beyond
    assert [frames.allow() for _ in range(4)] == [True, True, True, False]


def test_the_sustained_rate_is_let_through():
    clock = Clock()
    frames = limiter(clock, rate=20, burst=1)
    allowed = 0
    for _ in range(200):  # ten seconds at exactly 20 a second
        clock.advance(0.05)
        allowed += frames.allow()
    assert allowed == 200
    assert not frames.abusive


def test_more_refusals_than_allowed_within_the_window_is_abuse():
    clock = Clock()
    frames = limiter(clock, rate=1, burst=1, max_refused=2, window=10)
    assert frames.allow()
    assert not frames.allow() and not frames.abusive
    assert not frames.allow() and not frames.abusive
    assert not frames.allow() and frames.abusive  # the third refusal within 10 s


def test_refusals_older_than_the_window_are_forgotten():
    clock = Clock()
    frames = limiter(clock, rate=0.01, burst=1, max_refused=2, window=10)
    frames.allow()
    frames.allow(), frames.allow()  # two refusals
    clock.advance(10.01)
    assert not frames.allow()
    assert not frames.abusive  # one refusal in the last 10 s


def test_a_rate_of_zero_turns_the_limit_off():
    frames = limiter(Clock(), rate=0, burst=1)
    assert all(frames.allow() for _ in range(1000))


def test_the_limiter_reads_its_settings(settings):
    settings.WEBSOCKET_RATE, settings.WEBSOCKET_BURST = 5.0, 7
    settings.WEBSOCKET_MAX_REFUSED, settings.WEBSOCKET_REFUSED_WINDOW_SECONDS = 3, 4.0
    frames = FrameRateLimiter.from_settings()
    assert (frames.rate, frames.burst, frames.max_refused, frames.window) == (5.0, 7, 3, 4.0)


def test_production_defaults():
    from procurement_system import settings as production

    assert production.WEBSOCKET_MAX_FRAME_BYTES == 64 * 1024
    assert (production.WEBSOCKET_RATE, production.WEBSOCKET_BURST) == (20.0, 40)
    assert production.WEBSOCKET_MAX_REFUSED == 20
    assert production.WEBSOCKET_REFUSED_WINDOW_SECONDS == 10.0
    assert production.WEBSOCKET_MAX_PER_USER == 20
    assert production.WEBSOCKET_SLOT_TTL_SECONDS == 120


# --- the rate limit on a socket -----------------------------------------------------------------


@pytest.fixture
def slow(settings):
    """Two frames a second, bursts of three; the third refusal within 10 s closes."""
    settings.WEBSOCKET_RATE, settings.WEBSOCKET_BURST = 2.0, 3
    settings.WEBSOCKET_MAX_REFUSED, settings.WEBSOCKET_REFUSED_WINDOW_SECONDS = 2, 10.0


def create_frame(request_id: str) -> dict:
    return {"action": "create", "request_id": request_id, "data": {"address": "x"}}


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("worker_thread_connections", "slow")
async def test_frames_over_the_rate_get_rate_limited_and_are_not_processed(customer, clock):
    key = await database_sync_to_async(token_for)(customer)
    socket = await connect("/ws/pickups/", key)
    for n in range(3):
        assert (await ask(socket, {"action": "ping", "request_id": f"p{n}"}))["type"] == "pong"
    refused = await ask(socket, create_frame("c1"))
    assert refused == {
        "type": "error",
        "request_id": "c1",
        "code": "rate_limited",
        "message": "Too many frames: at most 2 a second, 3 at once. This frame was not "
        "processed; wait and send it again.",
    }
    # Not processed: a valid create would have made a pickup (and an invalid one, an error).
    assert await database_sync_to_async(PickupRequest.objects.count)() == 0
    clock.advance(0.5)  # one frame's worth
    assert (await ask(socket, {"action": "ping", "request_id": "p3"}))["type"] == "pong"
    # Whatever a refused frame holds, the error is rate_limited; request_id when it has one.
    assert (await ask(socket, "not json"))["request_id"] is None
    await socket.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("worker_thread_connections", "slow")
async def test_a_client_that_keeps_going_is_closed_with_4429(customer, clock):
    key = await database_sync_to_async(token_for)(customer)
    socket = await connect("/ws/pickups/", key)
    for _ in range(3):
        await ask(socket, {"action": "ping"})
    for _ in range(2):
        assert (await ask(socket, {"action": "ping"}))["code"] == "rate_limited"
    await socket.send_to(text_data=json.dumps({"action": "ping"}))
    assert await socket.receive_output() == {"type": "websocket.close", "code": CLOSE_RATE_LIMITED}
    # Frames already on their way are dropped, not answered.
    await socket.send_to(text_data=json.dumps({"action": "ping"}))
    assert await socket.receive_nothing(timeout=0.2)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("worker_thread_connections", "slow")
async def test_a_client_that_backs_off_stays_connected(customer, clock):
    key = await database_sync_to_async(token_for)(customer)
    socket = await connect("/ws/notifications/", key)
    for _ in range(5):  # a burst, two refused, a pause long enough to forget them
        for _ in range(5):
            await ask(socket, {"action": "ping"})
        clock.advance(10.5)
    assert (await ask(socket, {"action": "ping"}))["type"] == "pong"
    await socket.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("worker_thread_connections", "slow")
async def test_each_socket_has_its_own_bucket(customer, clock):
    key = await database_sync_to_async(token_for)(customer)
    first, second = await connect("/ws/pickups/", key), await connect("/ws/pickups/", key)
    for _ in range(3):
        await ask(first, {"action": "ping"})
    assert (await ask(first, {"action": "ping"}))["code"] == "rate_limited"
    assert (await ask(second, {"action": "ping"}))["type"] == "pong"
    await first.disconnect(), await second.disconnect()


# --- frames over 64 KB --------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("worker_thread_connections")
@pytest.mark.parametrize("binary", [False, True])
async def test_a_frame_over_64_kb_closes_with_1009(customer, binary):
    key = await database_sync_to_async(token_for)(customer)
    socket = await connect("/ws/pickups/", key)
    frame = json.dumps({"action": "ping", "pad": "é" * 32_768})  # 65536 + bytes in UTF-8
    if binary:
        await socket.send_to(bytes_data=frame.encode())
    else:
        await socket.send_to(text_data=frame)
    assert await socket.receive_output() == {
        "type": "websocket.close",
        "code": CLOSE_MESSAGE_TOO_BIG,
    }


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("worker_thread_connections")
async def test_a_frame_of_exactly_64_kb_is_read(customer):
    key = await database_sync_to_async(token_for)(customer)
    socket = await connect("/ws/pickups/", key)
    head = json.dumps({"action": "ping", "request_id": "big", "pad": ""})
    frame = head[:-2] + "x" * (65536 - len(head)) + '"}'
    assert len(frame.encode()) == 65536
    assert await ask(socket, frame) == {"type": "pong", "request_id": "big"}
    await socket.disconnect()


# --- the cap on sockets per user ----------------------------------------------------------------


@pytest.fixture
def two_per_user(settings):
    settings.WEBSOCKET_MAX_PER_USER = 2


async def closed_with(socket) -> int:
    output = await socket.receive_output()
    assert output["type"] == "websocket.close"
    return output["code"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("worker_thread_connections", "two_per_user")
async def test_one_socket_over_the_cap_closes_with_4409_on_either_endpoint(customer):
    key = await database_sync_to_async(token_for)(customer)
    pickups = await connect("/ws/pickups/", key)
    inbox = await connect("/ws/notifications/", key)
    for path in ("/ws/pickups/", "/ws/notifications/"):
        refused = await connect(path, key)
        assert await closed_with(refused) == CLOSE_TOO_MANY_SOCKETS
        await refused.send_to(text_data=json.dumps({"action": "ping"}))
        assert await refused.receive_nothing(timeout=0.1)  # never served
    # The sockets already open are untouched; another user is not affected.
    assert (await ask(pickups, {"action": "ping"}))["type"] == "pong"
    assert (await ask(inbox, {"action": "ping"}))["type"] == "pong"
    bob = await database_sync_to_async(UserFactory)(username="bob")
    bobs = await connect("/ws/pickups/", await database_sync_to_async(token_for)(bob))
    assert (await ask(bobs, {"action": "ping"}))["type"] == "pong"
    for socket in (pickups, inbox, bobs):
        await socket.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("worker_thread_connections", "two_per_user")
async def test_closing_a_socket_frees_its_slot(customer):
    key = await database_sync_to_async(token_for)(customer)
    first, second = await connect("/ws/pickups/", key), await connect("/ws/pickups/", key)
    await first.disconnect()
    third = await connect("/ws/pickups/", key)
    assert (await ask(third, {"action": "ping"}))["type"] == "pong"
    # A refused socket held no slot, so its goodbye frees none.
    refused = await connect("/ws/pickups/", key)
    assert await closed_with(refused) == CLOSE_TOO_MANY_SOCKETS
    await refused.disconnect()
    assert await closed_with(await connect("/ws/pickups/", key)) == CLOSE_TOO_MANY_SOCKETS
    await second.disconnect(), await third.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("worker_thread_connections")
async def test_a_session_socket_counts_like_a_token_socket(customer, settings):
    from django.test import Client

    settings.WEBSOCKET_MAX_PER_USER = 1
    browser = Client()
    await database_sync_to_async(browser.force_login)(customer)
    cookie = f"sessionid={browser.cookies['sessionid'].value}".encode()
    first = await connect("/ws/pickups/", headers=[(b"cookie", cookie)])
    assert (await ask(first, {"action": "ping"}))["type"] == "pong"
    second = await connect("/ws/notifications/", headers=[(b"cookie", cookie)])
    assert await closed_with(second) == CLOSE_TOO_MANY_SOCKETS
    await first.disconnect()


# --- the count itself (what several processes share) ------------------------------------------


class Store:
    """The count as several processes see it, and a way to let time pass for it."""

    def __init__(self, kind: str, clock: Clock) -> None:
        self.kind = kind
        self.clock = clock
        self.prefix = f"test-{uuid.uuid4().hex[:8]}"
        self.layers = []

    def process(self):
        """The channel layer of one more process."""
        if self.kind == "local":
            return InMemoryChannelLayer()  # one process only: the in-memory layer reaches no other
        layer = RedisChannelLayer(hosts=[REDIS], prefix=self.prefix)
        self.layers.append(layer)
        return layer

    def slot(self, layer, name: str, user_id: int = 7, limit: int = 2, ttl: float = 1.0):
        return SocketSlot(user_id, name, layer, limit=limit, ttl=ttl)

    async def wait(self, seconds: float) -> None:
        if self.kind == "local":
            self.clock.advance(seconds)
        else:
            await asyncio.sleep(seconds)  # Redis's own clock

    async def close(self) -> None:
        for layer in self.layers:
            keys = [RedisSockets(layer).key(user) for user in (7, 8)]
            await layer.connection(0).delete(*keys)
            await layer.flush()


@pytest.fixture(params=["local", "redis"])
async def store(request, clock):
    if request.param == "redis":
        require_service("Redis", 6379)
    store = Store(request.param, clock)
    yield store
    await store.close()


def test_the_redis_layer_counts_in_redis_and_the_in_memory_layer_in_the_process():
    layer = RedisChannelLayer(hosts=[REDIS])
    assert isinstance(sockets_of(layer), RedisSockets)
    assert sockets_of(InMemoryChannelLayer()) is local_sockets


async def test_the_count_is_shared_by_every_process(store):
    one, two = store.process(), store.process()
    first = [store.slot(one, "a.1", limit=3), store.slot(one, "a.2", limit=3)]
    second = [store.slot(two, "b.1", limit=3), store.slot(two, "b.2", limit=3)]
    taken = [await slot.acquire() for slot in (*first, *second)]
    assert taken == [True, True, True, False]
    await first[0].release()
    assert await second[1].acquire()
    assert not await store.slot(one, "c.1", limit=3).acquire()
    assert await store.slot(two, "c.2", user_id=8, limit=3).acquire()  # another user's own
    for slot in (*first, *second):
        await slot.release()
    assert await store.slot(one, "d.1", limit=1, user_id=8).acquire() is False  # c.2 is open
    for user in (7, 8):
        await store.slot(one, "x", user_id=user).release()  # never held: changes nothing


async def test_a_crashed_process_stops_counting_when_its_sockets_lapse(store):
    layer = store.process()
    crashed = [store.slot(layer, f"dead.{n}") for n in range(2)]
    for slot in crashed:
        assert await slot.acquire()
        slot.refresher.discard(slot)  # the process died: no refresh, no release
    assert not await store.slot(store.process(), "new.1").acquire()
    await store.wait(1.1)  # the TTL
    fresh = store.slot(store.process(), "new.2")
    assert await fresh.acquire()
    await fresh.release()


async def test_an_open_socket_keeps_counting_by_refreshing(store):
    layer = store.process()
    slot = store.slot(layer, "alive", limit=1, ttl=2.0)
    assert await slot.acquire()
    slot.refresher.discard(slot)  # driven by hand here
    for _ in range(2):
        await store.wait(1.3)  # two thirds of the TTL, and a bit
        await slot.refresh()
    assert not await store.slot(layer, "other", limit=1, ttl=2.0).acquire()
    await slot.release()
    assert await store.slot(layer, "other", limit=1, ttl=2.0).acquire()


async def test_refreshing_all_the_sockets_at_once_keeps_each_counted(store):
    layer = store.process()
    slots = [store.slot(layer, f"s.{n}") for n in range(2)]
    slots.append(store.slot(layer, "t.0", user_id=8, limit=1))
    for slot in slots:
        assert await slot.acquire()
        slot.refresher.discard(slot)  # driven by hand here
    await store.wait(0.7)
    places = [(slot.user_id, slot.channel_name, slot.limit) for slot in slots]
    await slots[0].sockets.take_all(places, 1.0)
    await store.wait(0.5)  # past the first TTL, within the pushed one
    assert not await store.slot(layer, "s.new").acquire()
    assert not await store.slot(layer, "t.new", user_id=8, limit=1).acquire()
    await store.wait(0.6)  # past the pushed one too
    assert await store.slot(layer, "t.new", user_id=8, limit=1).acquire()


async def test_a_socket_that_lapsed_counts_again_on_refresh_if_there_is_room(store):
    layer = store.process()
    slot = store.slot(layer, "stalled", limit=1)
    assert await slot.acquire()
    slot.refresher.discard(slot)
    await store.wait(1.1)  # its process stalled past the TTL
    newcomer = store.slot(layer, "newcomer", limit=1)
    assert await newcomer.acquire()
    await slot.refresh()  # no room: stays uncounted, and the newcomer keeps its place
    await newcomer.release()
    await slot.refresh()  # room again
    assert not await store.slot(layer, "third", limit=1).acquire()
    await slot.release()


async def test_no_cap_when_the_limit_is_zero(store):
    layer = store.process()
    slots = [store.slot(layer, f"s.{n}", limit=0) for n in range(50)]
    assert all([await slot.acquire() for slot in slots])
    assert await store.slot(layer, "counted", limit=1).acquire()  # none of the 50 counted


async def test_one_task_refreshes_every_open_socket_of_the_process(monkeypatch):
    layer = InMemoryChannelLayer()
    slots = [SocketSlot(7, name, layer, limit=2, ttl=0.3) for name in ("a", "b")]  # every 0.1 s
    refresher = slots[0].refresher
    assert slots[1].refresher is refresher
    refreshed: Counter = Counter()
    goal: dict[str, int] = {}
    reached = asyncio.Event()
    failed_once = False

    async def take_all(places, ttl):
        nonlocal failed_once
        refreshed.update(name for _, name, _ in places)
        if all(refreshed[name] >= count for name, count in goal.items()):
            reached.set()
        if not failed_once:
            failed_once = True
            raise ConnectionError("Redis restarting")  # logged; the next round comes all the same

    async def until(**counts: int) -> None:
        goal.clear()
        goal.update(counts)
        reached.clear()
        async with asyncio.timeout(5):
            await reached.wait()

    monkeypatch.setattr(refresher.sockets, "take_all", take_all)
    for slot in slots:
        assert await slot.acquire()
    task = refresher.task
    await until(a=3, b=3)
    assert refresher.task is task  # one task for both

    await slots[0].release()
    released_at = refreshed["a"]
    await until(b=refreshed["b"] + 2)
    assert refreshed["a"] == released_at

    await slots[1].release()
    async with asyncio.timeout(5):
        await task  # no socket left: the task ends
    await slots[0].acquire()
    assert refresher.task is not task and not refresher.task.done()  # the next socket starts one
    await slots[0].release()


async def test_an_unreachable_store_lets_users_in_and_says_so(caplog):
    layer = RedisChannelLayer(hosts=["redis://127.0.0.1:1/0"])  # nothing listens there
    slot = SocketSlot(7, "s", layer, limit=1)
    assert await slot.acquire()
    assert "socket count unavailable" in caplog.text
    await slot.release()  # held nothing: asks nothing
