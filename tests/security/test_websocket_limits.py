"""WebSocket limits: a frame rate per socket (error frames, then 4429), a cap on the sockets one
user holds open (4409) counted in the shared cache, and frames over 64 KB (1009).

The rate limiter reads ``connection_limits.monotonic``, which these tests replace with a clock
they move by hand, so nothing sleeps. The socket cap is counted in the default cache: a local
memory cache here, Redis across processes in production (``tests/e2e/test_security.py``).
"""

import asyncio
import json
from types import SimpleNamespace

import pytest
from channels.db import database_sync_to_async
from django.core.cache import caches
from django.core.cache.backends import base as cache_base
from django.core.cache.backends import locmem

from pickups.models import PickupRequest
from procurement_system import connection_limits
from procurement_system.connection_limits import FrameRateLimiter, SocketSlot
from procurement_system.websocket import (
    CLOSE_MESSAGE_TOO_BIG,
    CLOSE_RATE_LIMITED,
    CLOSE_TOO_MANY_SOCKETS,
)
from tests.consumers import ask, connect, token_for
from tests.factories import UserFactory


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(autouse=True)
def empty_cache():
    """Slots left by other tests' sockets stay out of these, and these leave none behind."""
    caches["default"].clear()
    yield
    caches["default"].clear()


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(connection_limits, "monotonic", clock)
    return clock


@pytest.fixture
def cache_clock(monkeypatch):
    """Wall-clock time as the local memory cache sees it (expiry), moved by hand."""
    import time

    clock = Clock(time.time())
    fake = SimpleNamespace(time=clock)
    monkeypatch.setattr(locmem, "time", fake)
    monkeypatch.setattr(cache_base, "time", fake)
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


# --- the slots themselves (what several processes share) ----------------------------------------


async def test_slots_are_shared_by_every_process_through_the_cache():
    """Two processes are two ``SocketSlot`` sets over one cache; neither may take a held slot."""
    process_a = [SocketSlot(7, f"a.{n}", limit=3, ttl=60) for n in range(2)]
    process_b = [SocketSlot(7, f"b.{n}", limit=3, ttl=60) for n in range(2)]
    taken = [await slot.acquire() for slot in (*process_a, *process_b)]
    assert taken == [True, True, True, False]
    assert len({slot.key for slot in (*process_a, process_b[0])}) == 3
    await process_a[0].release()
    assert await process_b[1].acquire()
    assert not await SocketSlot(7, "c.0", limit=3, ttl=60).acquire()
    assert await SocketSlot(8, "c.1", limit=3, ttl=60).acquire()  # another user's own slots
    for slot in (*process_a, *process_b):
        await slot.release()
    assert caches["default"].get_many(SocketSlot(7, "x", limit=3).keys()) == {}


async def test_a_crashed_process_frees_its_slots_when_they_expire(cache_clock):
    crashed = [SocketSlot(7, f"dead.{n}", limit=2, ttl=60) for n in range(2)]
    for slot in crashed:
        assert await slot.acquire()
        slot._keeper.cancel()  # the process died: no refresh, no release
    assert not await SocketSlot(7, "new.0", limit=2, ttl=60).acquire()
    cache_clock.advance(59)
    assert not await SocketSlot(7, "new.1", limit=2, ttl=60).acquire()
    cache_clock.advance(2)
    fresh = SocketSlot(7, "new.2", limit=2, ttl=60)
    assert await fresh.acquire()
    await fresh.release()


async def test_an_open_socket_keeps_its_slot_by_refreshing_it(cache_clock):
    slot = SocketSlot(7, "alive", limit=1, ttl=60)
    assert await slot.acquire()
    slot._keeper.cancel()  # driven by hand here
    for _ in range(5):
        cache_clock.advance(40)  # every third of the TTL... and a bit late
        await slot.refresh()
    assert not await SocketSlot(7, "other", limit=1, ttl=60).acquire()
    # A slot that lapsed anyway (a stalled process) is taken again while it is free.
    caches["default"].delete(slot.key)
    await slot.refresh()
    assert caches["default"].get(slot.key) == "alive"
    await slot.release()


async def test_the_keeper_refreshes_on_its_own(monkeypatch):
    refreshed = []
    slot = SocketSlot(7, "alive", limit=1, ttl=0.3)  # refreshed every 0.1 s

    async def refresh():
        refreshed.append(True)
        if len(refreshed) == 2:
            raise ConnectionError("Redis restarting")  # logged; the keeper keeps going

    monkeypatch.setattr(slot, "refresh", refresh)
    assert await slot.acquire()
    await asyncio.sleep(0.45)
    assert len(refreshed) >= 3
    keeper = slot._keeper
    await slot.release()
    await asyncio.sleep(0)
    assert keeper.cancelled()


async def test_release_leaves_a_slot_that_went_to_another_socket():
    mine = SocketSlot(7, "mine", limit=1, ttl=60)
    assert await mine.acquire()
    caches["default"].set(mine.key, "someone-else", 60)  # mine lapsed and was taken meanwhile
    key = mine.key
    await mine.release()
    assert caches["default"].get(key) == "someone-else"


async def test_no_cap_when_the_limit_is_zero():
    slots = [SocketSlot(7, f"s.{n}", limit=0, ttl=60) for n in range(50)]
    assert all([await slot.acquire() for slot in slots])
    assert caches["default"].get("ws-slot:7:0") is None


async def test_an_unreachable_cache_lets_users_in_and_says_so(monkeypatch, caplog):
    def down():
        raise ConnectionError("Redis is down")

    slot = SocketSlot(7, "s", limit=1, ttl=60)
    monkeypatch.setattr(slot, "_take", down)
    assert await slot.acquire()
    assert "socket slots unavailable" in caplog.text
    await slot.release()
