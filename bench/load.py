"""The load generator's parts: WebSocket clients that record when each frame arrives, an
open-loop clock, and latency summaries.

Open loop: each request is sent at its scheduled moment by a task of its own, whatever the
server is doing with the earlier ones, and its latency counts from that moment, so a slow
server shows up as latency instead of quietly slowing the offered load down (coordinated
omission).
"""

import asyncio
import itertools
import json
import math
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import websockets

_ids = itertools.count(1)


def now() -> float:
    return time.monotonic()


def summary(values_ms: list[float]) -> dict:
    """Count, p50, p95, p99 and max of latencies in milliseconds (nearest-rank percentiles)."""
    if not values_ms:
        return {"count": 0, "p50": None, "p95": None, "p99": None, "max": None}
    ordered = sorted(values_ms)

    def rank(q: float) -> float:
        return round(ordered[max(0, math.ceil(q * len(ordered)) - 1)], 2)

    return {
        "count": len(ordered),
        "p50": rank(0.50),
        "p95": rank(0.95),
        "p99": rank(0.99),
        "max": round(ordered[-1], 2),
    }


@dataclass
class Client:
    """One socket. Every frame is handed to ``on_frame`` with its arrival time; replies to our
    own requests also resolve the future ``request`` awaits."""

    url: str
    token: str
    on_frame: Callable[["Client", dict, float], None] | None = None
    ws: object = None
    pending: dict = field(default_factory=dict)
    reader: asyncio.Task | None = None
    closed_by_server: str | None = None  # the close code and reason, if the server closed it
    send_failures: int = 0
    closing: bool = False  # we are closing it

    async def connect(self, timeout: float = 30) -> None:
        self.ws = await websockets.connect(
            self.url,
            additional_headers={"Authorization": f"Token {self.token}"},
            open_timeout=timeout,
            # Many thousands of idle sockets: no client pings, small buffers.
            ping_interval=None,
            max_queue=64,
            compression=None,
        )
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                arrived = now()
                frame = json.loads(raw)
                waiter = self.pending.pop(frame.get("request_id"), None)
                if waiter is not None and not waiter.done():
                    waiter.set_result((frame, arrived))
                if self.on_frame is not None:
                    self.on_frame(self, frame, arrived)
        except websockets.ConnectionClosed as closed:
            if not self.closing:
                self.closed_by_server = f"{closed.rcvd.code if closed.rcvd else None} {closed}"

    async def send(self, action: str, request_id: str | None = None, **fields) -> str:
        request_id = request_id or f"r{next(_ids)}"
        try:
            await self.ws.send(json.dumps({"action": action, "request_id": request_id, **fields}))
        except websockets.ConnectionClosed:
            self.send_failures += 1
            raise
        return request_id

    async def request(self, action: str, timeout: float = 30, **fields) -> tuple[dict, float]:
        """Send and wait for the reply: (frame, arrival time)."""
        request_id = f"r{next(_ids)}"
        waiter = asyncio.get_running_loop().create_future()
        self.pending[request_id] = waiter
        await self.send(action, request_id, **fields)
        return await asyncio.wait_for(waiter, timeout)

    async def close(self) -> None:
        self.closing = True
        if self.ws is not None:
            await self.ws.close()
        if self.reader is not None:
            await self.reader


async def connect_all(clients: list[Client], *, parallel: int) -> list[BaseException | None]:
    """Open every client's socket, at most ``parallel`` handshakes at a time; each one's error,
    or None."""
    gate = asyncio.Semaphore(parallel)

    async def one(client: Client) -> BaseException | None:
        async with gate:
            try:
                await client.connect()
            except (TimeoutError, OSError, websockets.InvalidHandshake) as error:
                return error
            return None

    return await asyncio.gather(*(one(c) for c in clients))


async def open_loop(rate: float, duration: float, fire: Callable[[int, float], object]) -> int:
    """Call ``fire(i, scheduled_at)`` (a coroutine function) at ``rate`` per second for
    ``duration`` seconds, each call in a task of its own; wait for them all; return how many."""
    total = int(rate * duration)
    start = now() + 0.05
    tasks = []
    for i in range(total):
        at = start + i / rate
        delay = at - now()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(fire(i, at)))
    await asyncio.gather(*tasks, return_exceptions=True)
    return total


class Inbox:
    """What notification sockets received: per (user, notification id) the arrival times, to
    count each notification's first arrival, and duplicates."""

    def __init__(self) -> None:
        self.seen: dict[tuple[int, int], int] = defaultdict(int)
        self.waiters: dict[tuple[str, int], list[Callable[[float], None]]] = defaultdict(list)
        self.arrivals: list[float] = []

    def frame(self, user_id: int, frame: dict, arrived: float) -> dict | None:
        """Record a notification frame; return the notification when it is its first arrival."""
        if frame.get("type") != "notification":
            return None
        notification = frame["notification"]
        key = (user_id, notification["id"])
        self.seen[key] += 1
        if self.seen[key] > 1:
            return None
        self.arrivals.append(arrived)
        return notification

    @property
    def duplicates(self) -> int:
        return sum(count - 1 for count in self.seen.values())
