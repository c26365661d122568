"""A channels-redis layer whose Redis pool waits for a free connection instead of failing.

redis-py's asyncio ``ConnectionPool`` raises ``MaxConnectionsError`` once its 100 connections are
in use, so a burst of a thousand sockets joining their groups at once fails with the stock layer.
``BlockingConnectionPool`` keeps the connection count bounded and makes the burst queue up for a
connection (for ``timeout`` seconds at most) instead.
"""

from channels_redis.core import RedisChannelLayer
from redis.asyncio import BlockingConnectionPool


class PooledRedisChannelLayer(RedisChannelLayer):
    def create_pool(self, index: int) -> BlockingConnectionPool:
        host = dict(self.hosts[index])
        address = host.pop("address")
        return BlockingConnectionPool.from_url(address, **host)
