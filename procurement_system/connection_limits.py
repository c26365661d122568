"""Limits on WebSocket connections: frames per socket, and open sockets per user.

``FrameRateLimiter`` is a token bucket per socket: ``WEBSOCKET_RATE`` frames a second sustained,
bursts of ``WEBSOCKET_BURST``. A frame over it is refused (not processed); a socket that has more
than ``WEBSOCKET_MAX_REFUSED`` frames refused within ``WEBSOCKET_REFUSED_WINDOW_SECONDS`` is
abusing the server and the consumer closes it. It lives in the socket's own task, so it needs no
lock and no shared store; it reads a monotonic clock, never the wall clock.

``SocketSlot`` caps the sockets one user holds open at once (``WEBSOCKET_MAX_PER_USER``), across
every web process: the user has that many numbered slots in the default cache (Redis in
production, shared by all processes), and a socket holds one of them for as long as it is open.
Taking a slot is the cache's ``add`` (Redis ``SET NX``), so two processes can never take the same
slot, and no count can drift. Each slot expires after ``WEBSOCKET_SLOT_TTL_SECONDS`` unless its
socket refreshes it (every third of that), so the slots of a process that crashed, whose sockets
never said goodbye, come free after at most that long. The trade-off: for up to that long after
a crash a user may be refused sockets they no longer hold, and a process whose event loop stalls
for longer than two thirds of it may let a slot lapse, which lets one more socket in.
"""

import asyncio
import functools
import logging
import time
from collections import deque
from collections.abc import Callable

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import BaseCache, caches

logger = logging.getLogger(__name__)


@functools.cache
def slot_cache() -> BaseCache:
    """The default cache, one client for the whole process.

    ``caches["default"]`` is a client per async context: every socket would open a Redis
    connection pool of its own and keep it for as long as it is open.
    """
    return caches.create_connection("default")


def monotonic() -> float:
    """The clock of the rate limiter (tests replace it)."""
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


class SocketSlot:
    """One of a user's ``limit`` socket slots, held in the default cache while the socket is open.

    A ``limit`` of zero or less turns the cap off. A cache that cannot be reached does not keep
    users out: the socket is let in without a slot, and the failure is logged.
    """

    def __init__(
        self,
        user_id: int,
        channel_name: str,
        *,
        limit: int | None = None,
        ttl: int | None = None,
    ) -> None:
        self.user_id = user_id
        self.channel_name = channel_name
        self.limit = settings.WEBSOCKET_MAX_PER_USER if limit is None else limit
        self.ttl = settings.WEBSOCKET_SLOT_TTL_SECONDS if ttl is None else ttl
        self.key: str | None = None
        self._keeper: asyncio.Task | None = None

    def keys(self) -> list[str]:
        return [f"ws-slot:{self.user_id}:{index}" for index in range(self.limit)]

    async def acquire(self) -> bool:
        """Take a free slot and keep it fresh; False when the user holds them all."""
        if self.limit <= 0:
            return True
        try:
            self.key = await sync_to_async(self._take, thread_sensitive=False)()
        except Exception:
            logger.exception("socket slots unavailable; user %s let in uncounted", self.user_id)
            return True
        if self.key is None:
            return False
        self._keeper = asyncio.create_task(self._keep())
        return True

    async def release(self) -> None:
        if self._keeper is not None:
            self._keeper.cancel()
            self._keeper = None
        if self.key is None:
            return
        key, self.key = self.key, None
        try:
            await sync_to_async(self._give_back, thread_sensitive=False)(key)
        except Exception:
            logger.exception("could not free socket slot %s; it expires on its own", key)

    async def refresh(self) -> None:
        """Push the slot's expiry on; take it again if it lapsed meanwhile (and is still free)."""
        if self.key is not None:
            await sync_to_async(self._touch, thread_sensitive=False)(self.key)

    async def _keep(self) -> None:
        while True:
            await asyncio.sleep(self.ttl / 3)
            try:
                await self.refresh()
            except Exception:
                logger.exception("could not refresh socket slot %s", self.key)

    # The cache calls, run in a worker thread (Django's cache API is synchronous).

    def _take(self) -> str | None:
        cache = slot_cache()
        keys = self.keys()
        held = cache.get_many(keys)
        for key in keys:
            if key not in held and cache.add(key, self.channel_name, timeout=self.ttl):
                return key
        return None

    def _touch(self, key: str) -> None:
        cache = slot_cache()
        if not cache.touch(key, timeout=self.ttl):
            cache.add(key, self.channel_name, timeout=self.ttl)

    def _give_back(self, key: str) -> None:
        cache = slot_cache()
        if cache.get(key) == self.channel_name:  # not a slot that lapsed and went to another
            cache.delete(key)
