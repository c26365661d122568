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
decremented, so no count can drift. Each socket's moment is pushed on every third of
``WEBSOCKET_SLOT_TTL_SECONDS`` by one task per process, which once a second sends those due in
one Redis pipeline (a task per socket cost a task's memory per socket and, at 10,000 sockets, 250
separate Redis calls a second), so the sockets of a process that crashed, which never said
goodbye, stop counting at most that long after it died. The trade-off: for up to that long after
a crash a user may be refused sockets they no longer hold, and a process whose event loop stalls
for longer than two thirds of it may let a socket lapse, which lets one more in meanwhile. With
the in-memory channel layer (one process; the tests) the same count is kept in the process.
"""

import asyncio
import logging
import time
import weakref
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


class Refresher:
    """Keeps the places of this process's open sockets fresh (of one store, for one TTL): one
    task for all of them. Each place is pushed on every third of the TTL from when it was taken;
    once a second (``TICK``) the task pushes those that are due, in one batch, so that ten
    thousand sockets cost a small batch a second rather than one burst. The task ends when the
    last socket has gone and starts again with the next."""

    TICK = 1.0

    def __init__(self, sockets: "RedisSockets | LocalSockets", ttl: float) -> None:
        self.sockets = sockets
        self.ttl = ttl
        self.slots: dict[SocketSlot, float] = {}  # each slot's next refresh (time.monotonic)
        self.task: asyncio.Task | None = None

    def add(self, slot: "SocketSlot") -> None:
        self.slots[slot] = time.monotonic() + self.ttl / 3
        loop = asyncio.get_running_loop()
        if self.task is None or self.task.done() or self.task.get_loop() is not loop:
            self.task = loop.create_task(self._run())

    def discard(self, slot: "SocketSlot") -> None:
        self.slots.pop(slot, None)

    async def _run(self) -> None:
        while self.slots:
            await asyncio.sleep(min(self.TICK, self.ttl / 3))
            now = time.monotonic()
            due = [slot for slot, at in self.slots.items() if at <= now]
            for slot in due:
                self.slots[slot] = now + self.ttl / 3
            places = [(s.user_id, s.channel_name, s.limit) for s in due if s.held]
            if not places:
                continue
            try:
                await self.sockets.take_all(places, self.ttl)
            except Exception:
                logger.exception("could not refresh the places of %s sockets", len(places))


class _Store:
    def __init__(self) -> None:
        self.refreshers: dict[float, Refresher] = {}

    def refresher(self, ttl: float) -> Refresher:
        if ttl not in self.refreshers:
            self.refreshers[ttl] = Refresher(self, ttl)
        return self.refreshers[ttl]

    async def take(self, user_id: int, name: str, limit: int, ttl: float) -> bool:
        raise NotImplementedError

    async def take_all(self, places: list[tuple[int, str, int]], ttl: float) -> None:
        """``take`` each ``(user_id, name, limit)`` again: pushes its moment on, or takes its
        place again if it lapsed meanwhile and there is room."""
        for user_id, name, limit in places:
            await self.take(user_id, name, limit, ttl)


class RedisSockets(_Store):
    """Each user's open sockets as a sorted set in the Redis of the channel layer."""

    #: Places refreshed in one pipeline.
    BATCH = 500

    def __init__(self, layer) -> None:
        super().__init__()
        self.layer = layer

    def _client(self, key: str):
        return self.layer.connection(self.layer.consistent_hash(key))

    def key(self, user_id: int) -> str:
        return f"{self.layer.prefix}:ws-sockets:{user_id}"

    async def take(self, user_id: int, name: str, limit: int, ttl: float) -> bool:
        key = self.key(user_id)
        script = self._client(key).register_script(_TAKE)
        return bool(await script(keys=[key], args=[name, limit, ttl]))

    async def take_all(self, places: list[tuple[int, str, int]], ttl: float) -> None:
        by_client: dict[int, list[tuple[str, str, int]]] = {}
        for user_id, name, limit in places:
            key = self.key(user_id)
            index = self.layer.consistent_hash(key)
            by_client.setdefault(index, []).append((key, name, limit))
        for index, batch in by_client.items():
            client = self.layer.connection(index)
            script = client.register_script(_TAKE)
            for start in range(0, len(batch), self.BATCH):
                pipe = client.pipeline(transaction=False)
                for key, name, limit in batch[start : start + self.BATCH]:
                    await script(keys=[key], args=[name, limit, ttl], client=pipe)
                await pipe.execute()

    async def give_back(self, user_id: int, name: str) -> None:
        key = self.key(user_id)
        await self._client(key).zrem(key, name)


class LocalSockets(_Store):
    """The same count in this process, for the in-memory channel layer (which reaches no other
    process either). Every step runs without an ``await``, so it is atomic on the event loop."""

    def __init__(self) -> None:
        super().__init__()
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


_redis_stores: "weakref.WeakKeyDictionary[object, RedisSockets]" = weakref.WeakKeyDictionary()


def sockets_of(layer) -> RedisSockets | LocalSockets:
    """The store of the sockets counted through ``layer``: one per layer, so that one refresher
    serves all the sockets of the process."""
    if hasattr(layer, "consistent_hash") and hasattr(layer, "connection"):
        if layer not in _redis_stores:
            _redis_stores[layer] = RedisSockets(layer)
        return _redis_stores[layer]
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
        self.refresher = self.sockets.refresher(self.ttl)

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
            self.refresher.add(self)
        return self.held

    async def release(self) -> None:
        self.refresher.discard(self)
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
