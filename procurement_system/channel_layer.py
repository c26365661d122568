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
"""

import asyncio
import logging
from collections import defaultdict, deque

from channels_redis.core import RedisChannelLayer
from redis.asyncio import BlockingConnectionPool

logger = logging.getLogger(__name__)

RECEIVE_BATCH = 100


class PooledRedisChannelLayer(RedisChannelLayer):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Process-wide queue name -> messages taken from it in a batch, not yet handed out.
        self._taken: defaultdict[str, deque] = defaultdict(deque)
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
