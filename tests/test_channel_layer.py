"""The channel layer against the real Redis: receiving in batches loses nothing and keeps order."""

import asyncio
import copy
import uuid

import pytest
from channels import DEFAULT_CHANNEL_LAYER

from procurement_system import channel_layer as module
from procurement_system import settings as production
from tests.conftest import require_service


@pytest.fixture
def layer():
    require_service("Redis", 6379)
    config = copy.deepcopy(production.CHANNEL_LAYERS[DEFAULT_CHANNEL_LAYER]["CONFIG"])
    config["prefix"] = f"test-layer-{uuid.uuid4().hex}"
    return module.PooledRedisChannelLayer(**config)


async def test_a_burst_to_many_sockets_arrives_whole_in_order_in_few_redis_rounds(
    layer, monkeypatch
):
    """250 sockets of one process, 3 messages each sent at once: every socket gets its three,
    in order, while Redis is asked for a message (the blocking pop) a few times, not 750."""
    blocking_pops = 0
    single = module.RedisChannelLayer.receive_single

    async def counted(self, channel):
        nonlocal blocking_pops
        blocking_pops += 1
        return await single(self, channel)

    monkeypatch.setattr(module.RedisChannelLayer, "receive_single", counted)
    channels = [await layer.new_channel() for _ in range(250)]
    for i, channel in enumerate(channels):
        await layer.group_add(f"g{i}", channel)
    for round_ in range(3):
        for i in range(len(channels)):
            await layer.group_send(f"g{i}", {"type": "t", "n": round_})

    async def three(channel: str) -> list[int]:
        return [(await layer.receive(channel))["n"] for _ in range(3)]

    async with asyncio.timeout(20):
        got = await asyncio.gather(*(three(c) for c in channels))
    assert got == [[0, 1, 2]] * len(channels)
    assert blocking_pops <= 50  # one by one would be 750
    await layer.flush()


async def test_plain_channels_are_received_one_by_one_as_before(layer):
    await layer.send("plain.channel", {"type": "t", "n": 1})
    await layer.send("plain.channel", {"type": "t", "n": 2})
    async with asyncio.timeout(5):
        assert (await layer.receive("plain.channel"))["n"] == 1
        assert (await layer.receive("plain.channel"))["n"] == 2
    assert not layer._taken
    await layer.flush()


async def test_each_socket_waits_on_its_own_buffer_filled_by_one_reader(layer):
    """A thousand sockets of one process waiting at once: one reader task reads the process
    queue, not a lock taken in turn by each socket."""
    channels = [await layer.new_channel() for _ in range(1000)]
    waiting = [asyncio.create_task(layer.receive(c)) for c in channels]
    await asyncio.sleep(0)  # every receive is waiting now
    assert len(layer._readers) == 1
    for i, channel in enumerate(channels):
        await layer.send(channel, {"type": "t", "n": i})
    async with asyncio.timeout(20):
        got = await asyncio.gather(*waiting)
    assert [m["n"] for m in got] == list(range(1000))
    await layer.flush()


async def test_a_failed_reader_fails_the_waiting_sockets_and_the_next_receive_recovers(
    layer, monkeypatch
):
    channels = [await layer.new_channel() for _ in range(3)]
    single = module.PooledRedisChannelLayer.receive_single

    async def redis_away(self, channel):
        raise ConnectionError("Redis is away")

    monkeypatch.setattr(module.PooledRedisChannelLayer, "receive_single", redis_away)
    async with asyncio.timeout(5):
        outcomes = await asyncio.gather(
            *(layer.receive(c) for c in channels), return_exceptions=True
        )
    assert [type(o) for o in outcomes] == [ConnectionError] * 3

    monkeypatch.setattr(module.PooledRedisChannelLayer, "receive_single", single)
    await layer.send(channels[0], {"type": "t", "n": 1})
    async with asyncio.timeout(5):
        assert (await layer.receive(channels[0]))["n"] == 1
    await layer.flush()


async def test_many_group_messages_reach_every_member_in_a_few_redis_rounds(layer, monkeypatch):
    """300 groups (users), some with two sockets, one with none, and one plain channel: each
    member gets its group's message, and Redis sees a handful of round trips, not 1,200."""
    channels = [await layer.new_channel() for _ in range(400)]
    groups = {f"u{i}": [channels[i]] for i in range(300)}
    for i in range(100):  # a second socket for the first hundred users
        groups[f"u{i}"].append(channels[300 + i])
    groups["nobody"] = []
    groups["plain"] = ["plain.channel"]
    for group, members in groups.items():
        for channel in members:
            await layer.group_add(group, channel)
    executed = 0
    pipeline = type(layer.connection(0).pipeline())
    execute = pipeline.execute

    async def counted(self, *args, **kwargs):
        nonlocal executed
        executed += 1
        return await execute(self, *args, **kwargs)

    monkeypatch.setattr(pipeline, "execute", counted)
    await layer.group_send_many([(g, {"type": "t", "to": g}) for g in groups])
    assert executed <= 3  # the members, and the expired messages of each batch's queues

    async with asyncio.timeout(20):
        got = await asyncio.gather(*(layer.receive(c) for c in channels))
        plain = await layer.receive("plain.channel")
    expected = {c: g for g, members in groups.items() for c in members}
    assert [m["to"] for m in got] == [expected[c] for c in channels]
    assert plain["to"] == "plain"
    await layer.flush()


async def test_a_queue_at_capacity_refuses_what_group_send_many_adds(layer):
    layer.capacity = 2
    channel = await layer.new_channel()
    await layer.group_add("g", channel)
    await layer.group_send_many([("g", {"type": "t", "n": n}) for n in range(4)])
    async with asyncio.timeout(5):
        got = [(await layer.receive(channel))["n"] for _ in range(2)]
    assert got == [0, 1]
    assert await layer.connection(0).zcard(layer.prefix + layer.non_local_name(channel)) == 0
    await layer.flush()


async def test_a_socket_gets_the_messages_of_one_call_in_the_order_given(layer):
    channel = await layer.new_channel()
    await layer.group_add("g", channel)
    await layer.group_send_many([("g", {"type": "t", "n": n}) for n in range(50)])
    await layer.group_send_many([("g", {"type": "t", "n": n}) for n in range(50, 60)])
    async with asyncio.timeout(5):
        got = [(await layer.receive(channel))["n"] for _ in range(60)]
    assert got == list(range(60))
    await layer.flush()
