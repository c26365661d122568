"""The channels-redis layer, with a pool that waits and a receive that takes messages in batches.

redis-py's asyncio ``ConnectionPool`` raises ``MaxConnectionsError`` once its 100 connections are
in use, so a burst of a thousand sockets joining their groups at once fails with the stock layer.
``BlockingConnectionPool`` keeps the connection count bounded and makes the burst queue up for a
connection (for ``timeout`` seconds at most) instead.

channels-redis keeps one Redis queue for all the sockets of a process and takes one message off
it per round of four Redis commands (its crash-safe backup queue included). A notification to
each of thousands of sockets waits in that queue behind the others, so a web process delivered
only a few hundred a second. Here, once a message has been taken as usual, up to
``RECEIVE_BATCH`` more that are already waiting come along in one ``ZPOPMIN``, and the next
receives are answered from them without going to Redis. Those few are held in the process's
memory rather than in the backup queue; should the process die holding them, they are lost like
the messages already in its sockets' buffers, which is what the stored notifications are for
(sockets fill any gap from the database).

channels-redis also has every waiting socket of a process contend for one lock to read that
queue: each socket waits on two futures (the lock, and its own buffer) and gives the lock future
up whenever a message reaches it, which costs time in proportion to the sockets open. With
thousands open, an idle socket made every delivery slower. Here one reader task per process
queue reads it and hands each message to its socket's buffer; a socket only waits on its own
buffer. Should the reader fail (Redis away), every socket waiting gets the error, as each would
have with the stock layer, and the next receive starts a new reader.

``group_send_many`` sends many group messages at once (the notifications workers push one event
to thousands of users): the groups' members are read in one pipeline and the messages are added
by channels-redis' own group-send script, called once per batch instead of once per group, so a
thousand groups take a few Redis round trips instead of four thousand.
"""

import asyncio
import logging
import time
from collections import defaultdict, deque
from collections.abc import Sequence

from channels_redis.core import RedisChannelLayer
from redis.asyncio import BlockingConnectionPool

logger = logging.getLogger(__name__)

RECEIVE_BATCH = 100
#: Channel keys given to one call of the group-send script.
SEND_BATCH = 1000
#: Between the scores of two messages of one batch: a microsecond, which a score (a double
#: holding the Unix time) still tells apart.
SCORE_STEP = 1e-6

# channels-redis' group_send script, with a score of its own for each message: add each message
# to its channel's queue unless the queue is at capacity; returns how many were over. A key may
# come more than once; its messages are read in the order of their scores, which rise.
_GROUP_SEND = """
local over_capacity = 0
local n = #KEYS
local expiry = ARGV[#ARGV]
for i=1,n do
    if redis.call('ZCOUNT', KEYS[i], '-inf', '+inf') < tonumber(ARGV[n + i]) then
        redis.call('ZADD', KEYS[i], ARGV[2 * n + i], ARGV[i])
        redis.call('EXPIRE', KEYS[i], expiry)
    else
        over_capacity = over_capacity + 1
    end
end
return over_capacity
"""


class PooledRedisChannelLayer(RedisChannelLayer):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Process-wide queue name -> messages taken from it in a batch, not yet handed out.
        self._taken: defaultdict[str, deque] = defaultdict(deque)
        self._last_score = 0.0
        # Process-wide queue name -> the task reading it into the sockets' buffers.
        self._readers: dict[str, asyncio.Task] = {}

    async def receive(self, channel: str) -> dict:
        """The next message for ``channel``; a socket's channel of this process waits on its own
        buffer, which the process queue's single reader fills."""
        if "!" not in channel:
            return await super().receive(channel)
        assert self.require_valid_channel_name(channel)
        self._start_reader(self.non_local_name(channel))
        try:
            message = await self.receive_buffer[channel].get()
        except asyncio.CancelledError:
            # The socket is gone: so is its buffer (the stock layer does the same).
            self.receive_buffer.pop(channel, None)
            raise
        if isinstance(message, _ReaderFailed):
            self.receive_buffer.pop(channel, None)
            raise message.error
        return message

    async def group_send_many(self, messages: Sequence[tuple[str, dict]]) -> None:
        """``group_send`` of every ``(group, message)``, in a few Redis round trips."""
        members = await self._members([group for group, _ in messages])
        entries: defaultdict[int, list[tuple[bytes, bytes, int]]] = defaultdict(list)
        for (_, message), names in zip(messages, members, strict=True):
            by_connection, key_message, key_capacity = self._map_channel_keys_to_connection(
                names, message
            )
            for index, keys in by_connection.items():
                entries[index].extend((k, key_message[k], key_capacity[k]) for k in keys)
        for index, queued in entries.items():
            connection = self.connection(index)
            script = connection.register_script(_GROUP_SEND)
            for start in range(0, len(queued), SEND_BATCH):
                batch = queued[start : start + SEND_BATCH]
                keys = [key for key, _, _ in batch]
                pipe = connection.pipeline(transaction=False)
                for key in set(keys):  # messages past their expiry go first, as group_send does
                    pipe.zremrangebyscore(key, min=0, max=int(time.time()) - int(self.expiry))
                await pipe.execute()
                args = [m for _, m, _ in batch] + [c for _, _, c in batch] + self._scores(len(keys))
                over = await script(keys=keys, args=[*args, self.expiry])
                if over:
                    logger.info("%s of %s channel messages over capacity", over, len(keys))

    def _scores(self, count: int) -> list[float]:
        """``count`` rising scores from now on, above every score this layer gave before (the
        queues are read lowest score first, so a socket gets its messages in the order sent)."""
        first = max(time.time(), self._last_score + SCORE_STEP)
        self._last_score = first + (count - 1) * SCORE_STEP
        return [first + i * SCORE_STEP for i in range(count)]

    async def _members(self, groups: list[str]) -> list[list[str]]:
        """The channel names in each group, its lapsed members dropped first."""
        members: list[list[str]] = [[] for _ in groups]
        by_connection: defaultdict[int, list[int]] = defaultdict(list)
        for position, group in enumerate(groups):
            assert self.require_valid_group_name(group), "Group name not valid"
            by_connection[self.consistent_hash(group)].append(position)
        lapsed = int(time.time()) - self.group_expiry
        for index, positions in by_connection.items():
            pipe = self.connection(index).pipeline(transaction=False)
            for position in positions:
                key = self._group_key(groups[position])
                pipe.zremrangebyscore(key, min=0, max=lapsed)
                pipe.zrange(key, 0, -1)
            replies = await pipe.execute()
            for position, names in zip(positions, replies[1::2], strict=True):
                members[position] = [name.decode() for name in names]
        return members

    def _start_reader(self, queue: str) -> None:
        loop = asyncio.get_running_loop()
        reader = self._readers.get(queue)
        if reader is None or reader.done() or reader.get_loop() is not loop:
            self._readers[queue] = loop.create_task(self._read(queue))

    async def _read(self, queue: str) -> None:
        try:
            while True:
                to, message = await self.receive_single(queue)
                for channel in to if isinstance(to, list) else [to]:
                    self.receive_buffer[channel].put_nowait(message)
        except Exception as error:
            logger.warning("reading the channel layer's %s failed: %r", queue, error)
            failed = _ReaderFailed(error)
            for channel, buffer in list(self.receive_buffer.items()):
                if channel.startswith(queue):
                    buffer.put_nowait(failed)

    def create_pool(self, index: int) -> BlockingConnectionPool:
        host = dict(self.hosts[index])
        address = host.pop("address")
        return BlockingConnectionPool.from_url(address, **host)

    async def receive_single(self, channel: str) -> tuple:
        """The next message of the process's queue ``channel``: one taken before, or one from
        Redis as channels-redis takes it, with the rest of what waits there taken along."""
        if "!" not in channel:  # a plain channel several processes share: no batching
            return await super().receive_single(channel)
        taken = self._taken[channel]
        if taken:
            return taken.popleft()
        first = await super().receive_single(channel)
        connection = self.connection(self.consistent_hash(channel))
        waiting = await connection.zpopmin(self.prefix + channel, RECEIVE_BATCH)
        taken.extend(self._unpack(channel, content) for content, _ in waiting)
        return first

    def _unpack(self, channel: str, content: bytes) -> tuple:
        message = self.deserialize(content)
        return message.pop("__asgi_channel__", channel), message

    async def flush(self) -> None:
        for reader in self._readers.values():
            reader.cancel()
        self._readers.clear()
        self._taken.clear()
        await super().flush()


class _ReaderFailed:
    """Put in the buffers of the sockets waiting when the process queue's reader failed."""

    def __init__(self, error: Exception) -> None:
        self.error = error
