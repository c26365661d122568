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
"""

from collections import defaultdict, deque

from channels_redis.core import RedisChannelLayer
from redis.asyncio import BlockingConnectionPool

RECEIVE_BATCH = 100


class PooledRedisChannelLayer(RedisChannelLayer):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Process-wide queue name -> messages taken from it in a batch, not yet handed out.
        self._taken: defaultdict[str, deque] = defaultdict(deque)

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
        self._taken.clear()
        await super().flush()
