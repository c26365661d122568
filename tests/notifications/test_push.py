"""Pushes go through one long-lived event loop per process, and stay best effort."""

import asyncio
import copy
import logging
import os
import threading
import uuid

import pytest
from channels import DEFAULT_CHANNEL_LAYER
from channels.layers import channel_layers

import procurement_system.settings as production
from notifications import push
from notifications.push import GroupSender, push_to_user, push_to_users, user_group
from tests.conftest import require_service


class RecordingLayer:
    """A channel layer that notes where each group message was sent from, and can fail."""

    def __init__(self, broken: set[str] = frozenset(), stuck: set[str] = frozenset()) -> None:
        self.broken = broken
        self.stuck = stuck
        self.sent: list[tuple[str, dict]] = []
        self.threads: set[int] = set()
        self.loops: set[int] = set()
        self.made = 0  # how many senders made this layer for their loop

    async def group_send(self, group: str, message: dict) -> None:
        if group in self.broken:
            raise ConnectionError("Redis is down")
        if group in self.stuck:
            await asyncio.Event().wait()  # never set: only the sender's timeout ends it
        self.threads.add(threading.get_ident())
        self.loops.add(id(asyncio.get_running_loop()))
        self.sent.append((group, message))


@pytest.fixture
def sender(monkeypatch):
    """A sender of the test's own, used by push_to_user; its loop stops after the test."""
    sender = GroupSender()
    monkeypatch.setattr(push, "group_sender", sender)
    yield sender
    sender.close()


@pytest.fixture
def layer(monkeypatch):
    """The layer every sender makes for its loop, counting how many it made."""
    layer = RecordingLayer()

    def make_backend(alias: str) -> RecordingLayer:
        assert alias == DEFAULT_CHANNEL_LAYER
        layer.made += 1
        return layer

    monkeypatch.setattr(channel_layers, "make_backend", make_backend)
    return layer


@pytest.fixture
def redis_layer(settings):
    """The production Redis layer, under a key prefix of this test's own."""
    require_service("Redis", 6379)
    layers = copy.deepcopy(production.CHANNEL_LAYERS)
    layers[DEFAULT_CHANNEL_LAYER]["CONFIG"]["prefix"] = f"test-push-{uuid.uuid4().hex}"
    settings.CHANNEL_LAYERS = layers


def notification(number: int) -> dict:
    return {"id": number, "kind": "pickup.offered", "message": f"Pickup #{number}", "data": {}}


async def listening(users: list[int]) -> tuple[object, dict[int, str]]:
    """A layer of this loop, with one channel per user joined to the user's group."""
    listener = channel_layers.make_backend(DEFAULT_CHANNEL_LAYER)
    channels = {}
    for user_id in users:
        channels[user_id] = await listener.new_channel()
        await listener.group_add(user_group(user_id), channels[user_id])
    return listener, channels


async def received(listener, channel: str) -> dict:
    async with asyncio.timeout(5):
        return await listener.receive(channel)


@pytest.mark.usefixtures("redis_layer")
def test_a_push_reaches_a_channel_in_the_users_group(sender):
    async def scenario() -> dict:
        listener, channels = await listening([7])
        try:
            # In a thread: the sender is for sync code and refuses a thread that runs a loop.
            assert await asyncio.to_thread(push_to_user, 7, notification(1)) is True
            return await received(listener, channels[7])
        finally:
            await listener.flush()  # the test's prefix only

    message = asyncio.run(scenario())
    assert message == {"type": "notification.message", "notification": notification(1)}


@pytest.mark.usefixtures("redis_layer")
def test_push_to_users_delivers_each_item_to_its_user(sender):
    users = [11, 12, 13]

    async def scenario() -> tuple[list[bool], dict[int, dict]]:
        listener, channels = await listening(users)
        try:
            items = [(user_id, notification(user_id)) for user_id in users]
            results = await asyncio.to_thread(push_to_users, items)
            return results, {u: await received(listener, channels[u]) for u in users}
        finally:
            await listener.flush()

    results, messages = asyncio.run(scenario())
    assert results == [True, True, True]
    assert {u: m["notification"]["id"] for u, m in messages.items()} == {11: 11, 12: 12, 13: 13}


def test_many_sends_run_on_one_loop_in_one_thread(sender, layer):
    for number in range(20):
        assert push_to_user(number, notification(number)) is True
    thread = sender.thread
    assert push_to_users([(1, notification(21)), (2, notification(22))]) == [True, True]
    assert sender.thread is thread and thread.is_alive() and thread.daemon
    assert layer.made == 1  # one layer, made for that loop, not get_channel_layer()'s
    assert len(layer.loops) == 1
    assert layer.threads == {thread.ident} != {threading.get_ident()}
    assert len(layer.sent) == 22


def test_a_broken_group_fails_alone(sender, layer, caplog):
    layer.broken = {user_group(2)}
    items = [(1, notification(1)), (2, notification(2)), (3, notification(3))]
    with caplog.at_level(logging.WARNING, logger="notifications.push"):
        assert push_to_users(items) == [True, False, True]
    assert [group for group, _ in layer.sent] == [user_group(1), user_group(3)]
    [warning] = caplog.records
    assert warning.getMessage() == "push of notification 2 to user 2 failed"
    assert isinstance(warning.exc_info[1], ConnectionError)


def test_a_stuck_group_times_out_without_holding_up_the_others(sender, layer, settings, caplog):
    settings.NOTIFICATION_PUSH_TIMEOUT_SECONDS = 0.2
    layer.stuck = {user_group(1)}
    with caplog.at_level(logging.WARNING, logger="notifications.push"):
        assert push_to_users([(1, notification(1)), (2, notification(2))]) == [False, True]
    assert layer.sent == [(user_group(2), push._notification_message(notification(2)))]
    [warning] = caplog.records
    assert isinstance(warning.exc_info[1], TimeoutError)


def test_a_failing_layer_makes_push_to_user_false_and_logs(sender, layer, caplog):
    layer.broken = {user_group(3)}
    with caplog.at_level(logging.WARNING, logger="notifications.push"):
        assert push_to_user(3, notification(5)) is False
    [warning] = caplog.records
    assert warning.levelno == logging.WARNING
    assert warning.getMessage() == "push of notification 5 to user 3 failed"
    with pytest.raises(ConnectionError):
        sender.send(user_group(3), {"type": "notification.message"}, timeout=1)


def test_a_layer_that_cannot_be_made_makes_push_to_user_false(sender, monkeypatch, caplog):
    def make_backend(alias: str):
        raise ValueError("no such channel layer backend")

    monkeypatch.setattr(channel_layers, "make_backend", make_backend)
    with caplog.at_level(logging.WARNING, logger="notifications.push"):
        assert push_to_users([(1, notification(1)), (2, notification(2))]) == [False, False]
    assert len(caplog.records) == 2
    assert sender.thread is None  # no loop left behind without a layer: the next send tries again


def test_sending_from_inside_an_event_loop_is_refused(sender, layer):
    async def from_async_code() -> None:
        with pytest.raises(RuntimeError, match="await channel_layer.group_send"):
            sender.send(user_group(1), {"type": "notification.message"}, timeout=1)
        assert push_to_user(1, notification(1)) is False  # best effort: refused, not raised

    asyncio.run(from_async_code())
    assert sender.thread is None and layer.sent == []


def test_after_a_fork_the_child_starts_a_loop_of_its_own(sender, layer):
    assert push_to_user(1, notification(1)) is True
    parent_thread = sender.thread

    push._forget_parent_loops()  # what os.register_at_fork runs in a forked child

    assert sender.thread is None
    assert push_to_user(2, notification(2)) is True
    assert sender.thread is not parent_thread and sender.thread.is_alive()
    assert layer.made == 2  # a layer for the new loop too
    assert len(layer.threads) == 2


def test_a_real_fork_sends_from_a_thread_of_the_childs_own(sender, layer):
    assert push_to_user(1, notification(1)) is True
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report through the pipe, and leave without pytest's cleanup
        try:
            forgot = sender.thread is None
            pushed = push_to_user(2, notification(2))
            ran = sender.thread is not None and sender.thread.ident in layer.threads
            os.write(write_end, b"ok" if forgot and pushed and ran else b"failed")
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        report = pipe.read()
    os.waitpid(pid, 0)
    assert report == b"ok"


def test_close_stops_the_thread_and_the_next_send_starts_another(sender, layer):
    assert push_to_user(1, notification(1)) is True
    first = sender.thread
    sender.close()
    assert sender.thread is None and not first.is_alive()
    assert push_to_user(2, notification(2)) is True
    assert sender.thread.is_alive() and sender.thread is not first
