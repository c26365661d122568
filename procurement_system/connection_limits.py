"""Limits on WebSocket connections: frames per socket, and open sockets per user.

``FrameRateLimiter`` is a token bucket per socket: ``WEBSOCKET_RATE`` frames a second sustained,
bursts of ``WEBSOCKET_BURST``. A frame over it is refused (not processed); a socket that has more
than ``WEBSOCKET_MAX_REFUSED`` frames refused within ``WEBSOCKET_REFUSED_WINDOW_SECONDS`` is
abusing the server and the consumer closes it. It lives in the socket's own task, so it needs no
lock and no shared store; it reads a monotonic clock, never the wall clock.

``SocketSlot`` caps the sockets one user holds open at once (``WEBSOCKET_MAX_PER_USER``), across
every web process: with the Redis channel layer, each user has a sorted set in the layer's Redis
of the channel names of their open sockets, each scored with the moment it lapses. A Lua script
drops the lapsed names, counts the rest and adds the new socket only if there is room, all in one
atomic step, by Redis's own clock; closing the socket removes its name. Nothing is incremented or
decremented, so no count can drift. A socket pushes its moment on every third of
``WEBSOCKET_SLOT_TTL_SECONDS``, so the sockets of a process that crashed, which never said
goodbye, stop counting at most that long after it died. The trade-off: for up to that long after
a crash a user may be refused sockets they no longer hold, and a process whose event loop stalls
for longer than two thirds of it may let a socket lapse, which lets one more in meanwhile. With
the in-memory channel layer (one process; the tests) the same count is kept in the process.
"""

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable

from django.conf import settings

logger = logging.getLogger(__name__)


def monotonic() -> float:
    """The clock of the rate limiter and of the in-process socket count (tests replace it)."""
    return time.monotonic()


class FrameRateLimiter:
    """A token bucket for one socket's incoming frames, and a tally of the frames it refused.

    A ``rate`` of zero or less turns the limit off.
    """

    def __init__(
        self,
        *,
        rate: float,
        burst: int,
        max_refused: int,
        window: float,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self.max_refused = max_refused
        self.window = window
        self._clock = clock
        self.tokens = float(self.burst)
        self.updated = self._now()
        self.refused: deque[float] = deque(maxlen=max(0, max_refused) + 1)

    @classmethod
    def from_settings(cls) -> "FrameRateLimiter":
        return cls(
            rate=settings.WEBSOCKET_RATE,
            burst=settings.WEBSOCKET_BURST,
            max_refused=settings.WEBSOCKET_MAX_REFUSED,
            window=settings.WEBSOCKET_REFUSED_WINDOW_SECONDS,
        )

    def _now(self) -> float:
        return self._clock() if self._clock is not None else monotonic()

    def allow(self) -> bool:
        """Take a token for one frame: False if the frame must be refused."""
        if self.rate <= 0:
            return True
        now = self._now()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1 - 1e-9:  # a client exactly at the rate, despite float rounding
            self.tokens = max(0.0, self.tokens - 1)
            return True
        self.refused.append(now)
        return False

    @property
    def abusive(self) -> bool:
        """More than ``max_refused`` frames were refused within the last ``window`` seconds."""
        now = self._now()
        while self.refused and self.refused[0] <= now - self.window:
            self.refused.popleft()
        return len(self.refused) > self.max_refused


# Drop the lapsed sockets, then add (or refresh) this one if it is counted already or there is
# room; one atomic step. KEYS[1]: the user's set; ARGV: channel name, limit, seconds to live.
_TAKE = """
local now = redis.call('TIME')
now = tonumber(now[1]) + tonumber(now[2]) / 1000000
local ttl = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[1])
    and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('EXPIRE', KEYS[1], math.ceil(ttl) + 1)
return 1
"""


class RedisSockets:
    """Each user's open sockets as a sorted set in the Redis of the channel layer."""

    def __init__(self, layer) -> None:
        self.layer = layer

    def _client(self, key: str):
        return self.layer.connection(self.layer.consistent_hash(key))

    def key(self, user_id: int) -> str:
        return f"{self.layer.prefix}:ws-sockets:{user_id}"

    async def take(self, user_id: int, name: str, limit: int, ttl: float) -> bool:
        key = self.key(user_id)
        script = self._client(key).register_script(_TAKE)
        return bool(await script(keys=[key], args=[name, limit, ttl]))

    async def give_back(self, user_id: int, name: str) -> None:
        key = self.key(user_id)
        await self._client(key).zrem(key, name)


class LocalSockets:
    """The same count in this process, for the in-memory channel layer (which reaches no other
    process either). Every step runs without an ``await``, so it is atomic on the event loop."""

    def __init__(self) -> None:
        self.users: dict[int, dict[str, float]] = {}

    async def take(self, user_id: int, name: str, limit: int, ttl: float) -> bool:
        now = monotonic()
        sockets = {n: t for n, t in self.users.get(user_id, {}).items() if t > now}
        self.users[user_id] = sockets
        if name not in sockets and len(sockets) >= limit:
            return False
        sockets[name] = now + ttl
        return True

    async def give_back(self, user_id: int, name: str) -> None:
        sockets = self.users.get(user_id, {})
        sockets.pop(name, None)
        if not sockets:
            self.users.pop(user_id, None)


local_sockets = LocalSockets()


def sockets_of(layer) -> RedisSockets | LocalSockets:
    if hasattr(layer, "consistent_hash") and hasattr(layer, "connection"):
        return RedisSockets(layer)
    return local_sockets


class SocketSlot:
    """A socket's place among its user's at most ``limit`` open sockets, kept while it is open.

    A ``limit`` of zero or less turns the cap off. A store that cannot be reached does not keep
    users out: the socket is let in uncounted, and the failure is logged.
    """

    def __init__(
        self,
        user_id: int,
        channel_name: str,
        channel_layer,
        *,
        limit: int | None = None,
        ttl: float | None = None,
    ) -> None:
        self.user_id = user_id
        self.channel_name = channel_name
        self.sockets = sockets_of(channel_layer)
        self.limit = settings.WEBSOCKET_MAX_PER_USER if limit is None else limit
        self.ttl = settings.WEBSOCKET_SLOT_TTL_SECONDS if ttl is None else ttl
        self.held = False
        self._keeper: asyncio.Task | None = None

    async def acquire(self) -> bool:
        """Take a place and keep it fresh; False when the user's sockets are all open."""
        if self.limit <= 0:
            return True
        try:
            self.held = await self.sockets.take(
                self.user_id, self.channel_name, self.limit, self.ttl
            )
        except Exception:
            logger.exception("socket count unavailable; user %s let in uncounted", self.user_id)
            return True
        if self.held:
            self._keeper = asyncio.create_task(self._keep())
        return self.held

    async def release(self) -> None:
        if self._keeper is not None:
            self._keeper.cancel()
            self._keeper = None
        if not self.held:
            return
        self.held = False
        try:
            await self.sockets.give_back(self.user_id, self.channel_name)
        except Exception:
            logger.exception("could not uncount a socket of user %s; it lapses", self.user_id)

    async def refresh(self) -> None:
        """Push the moment the place lapses on; take it again if it lapsed meanwhile and there
        is room."""
        if self.held:
            await self.sockets.take(self.user_id, self.channel_name, self.limit, self.ttl)

    async def _keep(self) -> None:
        while True:
            await asyncio.sleep(self.ttl / 3)
            try:
                await self.refresh()
            except Exception:
                logger.exception("could not refresh a socket of user %s", self.user_id)
