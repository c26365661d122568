import json

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from notifications.push import user_group
from notifications.selectors import notifications_after
from notifications.services import notification_store
from tests.consumers import ask, connect, token_for
from tests.factories import UserFactory

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.asyncio,
    pytest.mark.usefixtures("worker_thread_connections"),
]


@pytest.fixture
def user(db):
    return UserFactory(username="vera")


@database_sync_to_async
def stored(user, count: int, start: int = 0) -> list[dict]:
    for i in range(start, start + count):
        notification_store(
            user_id=user.pk,
            kind="pickup.offered",
            message=f"n{i}",
            data={"i": i},
            event_key=f"e{i}",
        )
    return notifications_after(user_id=user.pk, after=start, limit=count)


async def inbox(key: str):
    """A notifications socket that has joined its group and read where it starts: without
    ``?after`` that is "now" as of the join, which follows the handshake, so a test waits for
    it (a ping's pong) before it stores what it expects to hear about."""
    socket = await connect("/ws/notifications/", key)
    assert (await ask(socket, {"action": "ping", "request_id": "joined"}))["type"] == "pong"
    return socket


async def push(user, notification: dict) -> None:
    await get_channel_layer().group_send(
        user_group(user.pk), {"type": "notification.message", "notification": notification}
    )


async def received_ids(communicator, until_id: int) -> list[int]:
    ids = []
    while not ids or ids[-1] < until_id:
        frame = json.loads(await communicator.receive_from(timeout=5))
        assert frame["type"] == "notification", frame
        ids.append(frame["notification"]["id"])
    return ids


async def test_anonymous_socket_is_closed_with_4401():
    communicator = await connect("/ws/notifications/")
    assert (await communicator.receive_output())["code"] == 4401


async def test_live_notifications_arrive_once_and_in_order(user):
    key = await database_sync_to_async(token_for)(user)
    socket = await inbox(key)
    rows = await stored(user, 3)
    for row in rows:
        await push(user, row)
    await push(user, rows[1])  # a duplicate (a redelivered task)
    assert await received_ids(socket, 3) == [1, 2, 3]
    assert await socket.receive_nothing(timeout=0.2)


async def test_a_lost_live_message_is_filled_from_the_database(user):
    key = await database_sync_to_async(token_for)(user)
    socket = await inbox(key)
    rows = await stored(user, 4)
    await push(user, rows[0])
    await push(user, rows[3])  # 2 and 3 were dropped by the channel layer
    assert await received_ids(socket, 4) == [1, 2, 3, 4]


async def test_connect_with_after_replays_what_was_missed(user):
    await stored(user, 5)
    key = await database_sync_to_async(token_for)(user)
    socket = await connect("/ws/notifications/?after=2", key)
    assert await received_ids(socket, 5) == [3, 4, 5]
    assert json.loads(await socket.receive_from()) == {
        "type": "replay.done",
        "request_id": None,
        "last_id": 5,
    }


async def test_replay_action_and_then_live_without_overlap(user):
    key = await database_sync_to_async(token_for)(user)
    socket = await inbox(key)
    rows = await stored(user, 3)
    await socket.send_to(text_data=json.dumps({"action": "replay", "after": 0, "request_id": "r"}))
    assert await received_ids(socket, 3) == [1, 2, 3]
    assert json.loads(await socket.receive_from()) == {
        "type": "replay.done",
        "request_id": "r",
        "last_id": 3,
    }
    for row in rows:  # the same three arriving live afterwards are duplicates
        await push(user, row)
    more = await stored(user, 1, start=3)
    await push(user, more[0])
    assert await received_ids(socket, 4) == [4]


async def test_replay_is_sent_in_batches(user, settings):
    settings.NOTIFICATION_REPLAY_BATCH = 2
    await stored(user, 5)
    key = await database_sync_to_async(token_for)(user)
    socket = await connect("/ws/notifications/?after=0", key)
    assert await received_ids(socket, 5) == [1, 2, 3, 4, 5]


async def test_mark_read_reports_the_unread_count(user):
    await stored(user, 3)
    key = await database_sync_to_async(token_for)(user)
    socket = await inbox(key)
    reply = await ask(socket, {"action": "mark_read", "ids": [1, 3], "request_id": "m"})
    assert reply == {
        "type": "notifications.read",
        "request_id": "m",
        "ids": [1, 3],
        "unread_count": 1,
    }


async def test_others_notifications_are_not_seen(user):
    other = await database_sync_to_async(UserFactory)()
    await stored(other, 2)
    key = await database_sync_to_async(token_for)(user)
    socket = await connect("/ws/notifications/?after=0", key)
    assert json.loads(await socket.receive_from())["type"] == "replay.done"
    assert (await ask(socket, {"action": "mark_read", "ids": [1, 2]}))["ids"] == []


@pytest.mark.parametrize(
    "frame",
    [
        {"action": "replay"},
        {"action": "replay", "after": -1},
        {"action": "replay", "after": "x"},
        {"action": "mark_read", "ids": "1"},
        {"action": "mark_read", "ids": []},
        {"action": "mark_read", "ids": [0]},
    ],
)
async def test_bad_frames_get_validation_errors(user, frame):
    key = await database_sync_to_async(token_for)(user)
    socket = await inbox(key)
    assert (await ask(socket, frame))["code"] == "validation_error"
    assert (await ask(socket, {"action": "ping"}))["type"] == "pong"


@pytest.mark.parametrize("after", ["abc", "-1", "%C2%B2", "1" * 30])
async def test_bad_after_on_connect_is_reported_and_the_socket_starts_live(user, after):
    await stored(user, 2)
    key = await database_sync_to_async(token_for)(user)
    socket = await connect(f"/ws/notifications/?after={after}", key)
    assert json.loads(await socket.receive_from())["code"] == "bad_request"
    rows = await stored(user, 1, start=2)
    await push(user, rows[0])
    assert await received_ids(socket, 3) == [3]  # no replay of the history


async def test_replay_beyond_the_newest_does_not_swallow_later_notifications(user):
    await stored(user, 2)
    key = await database_sync_to_async(token_for)(user)
    socket = await inbox(key)
    done = await ask(socket, {"action": "replay", "after": 500})
    assert done == {"type": "replay.done", "request_id": None, "last_id": 2}
    rows = await stored(user, 1, start=2)
    await push(user, rows[0])
    assert await received_ids(socket, 3) == [3]


async def test_a_channel_over_capacity_loses_nothing(user, settings):
    """channels drops group messages for a channel that is full; the socket still delivers every
    notification once and in order, filling the gap from the database at the next one."""
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 2}}
    }
    key = await database_sync_to_async(token_for)(user)
    socket = await inbox(key)
    assert (await ask(socket, {"action": "ping", "request_id": "p"}))["type"] == "pong"
    burst = await stored(user, 10)
    for notification in burst:  # no await yields to the consumer: the channel fills at 2
        await push(user, notification)
    [last] = await stored(user, 1, start=10)
    await push(user, last)
    ids = await received_ids(socket, until_id=last["id"])
    assert ids == list(range(1, 12))
    assert await socket.receive_nothing(timeout=0.2)


async def test_a_socket_that_cannot_leave_its_groups_still_closes_cleanly(
    user, monkeypatch, caplog, settings
):
    """Thousands of sockets closing at once can exhaust the Redis pool: a group the socket
    cannot leave is logged and lapses, and the rest of the cleanup (its place among the user's
    sockets above all) still happens."""
    settings.WEBSOCKET_MAX_PER_USER = 1
    key = await database_sync_to_async(token_for)(user)
    socket = await inbox(key)

    async def unavailable(group: str, channel: str) -> None:
        raise ConnectionError("No connection available.")

    monkeypatch.setattr(get_channel_layer(), "group_discard", unavailable)
    await socket.disconnect()  # raises what the consumer raised, if anything
    monkeypatch.undo()

    assert f"could not leave Notifications_{user.pk}" in caplog.text
    assert "could not leave Token_" in caplog.text
    again = await inbox(key)  # the one socket allowed: the first one's place was given back
    await again.disconnect()
